//! "Is this API key still good?" — the same question as for a serial, asked
//! of a key's whole lineage: the key, the keys it was derived from, the
//! certificate at its root and the agent (issue 14). Keys are written by
//! `api_keys`; this reads them.

use std::cell::Cell;

use kakunin_core::binding::{worst, CertStatus};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{crl, registry};
use crate::pg::invalidation::{EpochCache, Read};
use crate::pg::{privilege, spi};

/// What decides a key's status: the key and the keys it was derived from
/// (nearest first), and the certificate at the root of that lineage, if any.
#[derive(Clone)]
struct KeyState {
    owner_id: String,
    /// Any key of the lineage revoked, or a parent missing (fail closed).
    revoked: bool,
    /// The earliest expiry along the lineage, in microseconds since the Unix
    /// epoch (a timestamp's own precision: a key never works a second late
    /// or stops one early).
    expires_at: Option<i64>,
    /// Serial and issuer (hex of its Name) of the certificate the lineage was
    /// derived from.
    root_serial: Option<String>,
    root_issuer: Option<String>,
}

/// How many keys deep a lineage is followed; a deeper one counts as broken.
const MAX_LINEAGE: i32 = 16;

/// Live state of a key: revoked (itself, or any key it was derived from),
/// expired (the earliest expiry along its lineage; a rotation may have
/// shortened one), or the status of its agent and of the certificate its
/// lineage was derived from, the most severe winning. Read as the extension
/// owner (the lineage may hold keys RLS hides from the caller) and cached per
/// invalidation epoch. `now_micros`: microseconds since the Unix epoch.
pub fn key_status(key_id: &str, read: Read, now_micros: i64) -> CertStatus {
    thread_local! {
        static PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
        /// key id -> state (None: the key is missing)
        static CACHE: EpochCache<String, Option<KeyState>> = EpochCache::new(4096);
    }
    let state = match CACHE.with(|c| c.get(key_id)) {
        Some(state) => state,
        None => {
            let arg = key_id.into_datum().unwrap_or(pg_sys::Datum::from(0));
            let depth = MAX_LINEAGE.into_datum().unwrap_or(pg_sys::Datum::from(0));
            let rows = privilege::as_extension_owner(|| {
                spi::query(
                    read.visibility,
                    &PLAN,
                    c"WITH RECURSIVE lineage AS (
                          SELECT k.owner_id, k.revoked_at, k.expires_at, k.parent_key_id, k.parent_serial,
                                 k.parent_issuer, 1 AS depth
                          FROM kakunin.api_keys k WHERE k.key_id OPERATOR(pg_catalog.=) $1::uuid
                        UNION ALL
                          SELECT p.owner_id, p.revoked_at, p.expires_at, p.parent_key_id, p.parent_serial,
                                 p.parent_issuer, l.depth OPERATOR(pg_catalog.+) 1
                          FROM lineage l JOIN kakunin.api_keys p ON p.key_id OPERATOR(pg_catalog.=) l.parent_key_id
                          WHERE l.depth OPERATOR(pg_catalog.<) $2)
                      SELECT owner_id, revoked_at IS NOT NULL,
                             CASE WHEN expires_at IS NULL THEN NULL
                                  WHEN pg_catalog.isfinite(expires_at)
                                  THEN (extract(epoch FROM expires_at) OPERATOR(pg_catalog.*) 1000000)::int8
                                  WHEN expires_at OPERATOR(pg_catalog.>) 'epoch' THEN 9223372036854775807
                                  ELSE -9223372036854775807 END,
                             parent_key_id IS NOT NULL, parent_serial, parent_issuer
                      FROM lineage ORDER BY depth",
                    &[pg_sys::TEXTOID, pg_sys::INT4OID],
                    &[arg, depth],
                    |row| {
                        (
                            row.get::<String>(1).unwrap_or_default(),
                            row.get::<bool>(2).unwrap_or(true),
                            row.get::<i64>(3),
                            row.get::<bool>(4).unwrap_or(true),
                            row.get::<String>(5),
                            row.get::<String>(6),
                        )
                    },
                )
            });
            let state = rows.first().map(|(owner_id, ..)| KeyState {
                owner_id: owner_id.clone(),
                // The last key read still names a parent: it is missing, or the
                // lineage is deeper than we follow.
                revoked: rows.iter().any(|r| r.1) || rows.last().is_some_and(|r| r.3),
                expires_at: rows.iter().filter_map(|r| r.2).min(),
                root_serial: rows.last().and_then(|r| r.4.clone()),
                root_issuer: rows.last().and_then(|r| r.5.clone()),
            });
            CACHE.with(|c| c.insert(key_id.to_string(), read, state.clone()));
            state
        }
    };
    // A deleted key fails closed.
    let Some(state) = state else {
        return CertStatus::Revoked;
    };
    if state.revoked {
        return CertStatus::Revoked;
    }
    let registry = registry::registry_status(
        state.root_serial.as_deref().unwrap_or(""),
        state.root_issuer.as_deref().unwrap_or(""),
        &state.owner_id,
        read,
    );
    let own = match state.expires_at {
        Some(t) if t <= now_micros => CertStatus::Expired,
        _ => CertStatus::Active,
    };
    // A stale CRL for the root certificate's issuer says nothing can be known
    // about it: `unknown`, as for the certificate itself.
    let stale = state
        .root_issuer
        .as_deref()
        .and_then(|issuer| hex::decode(issuer).ok())
        .and_then(|issuer| crl::stale_status(&issuer, read, now_micros.div_euclid(1_000_000)));
    let own = stale.map_or(own, |s| worst(own, s));
    registry.map_or(own, |r| worst(own, r))
}
