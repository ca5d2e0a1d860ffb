//! The rows of an API key: `kakunin.api_keys` (the key), `kakunin.api_key_usage`
//! (its last use) and `kakunin.api_key_events` (what happened to it). This
//! module is their one writer; every write runs as the extension owner after
//! `functions` checked the caller. Only SHA-256 of a secret is stored, in a
//! column granted to no role.

use std::cell::Cell;

use kakunin_core::api_key;
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::identity::binding;
use crate::pg::error::{spi_failed, KakuninError, Result};
use crate::pg::privilege;
use crate::pg::spi::{self, Visibility};

/// A stored key, as verification reads it.
pub struct KeyRow {
    pub secret_hash: Vec<u8>,
    pub owner_id: String,
    pub tenant_id: Option<String>,
    pub capabilities: Vec<String>,
    /// Raw JSON, parsed only once the secret matched, so that a wrong secret
    /// costs no more than an unknown id.
    pub claims: String,
    pub expires_at: Option<i64>,
    /// Seconds since the key was last recorded as used (None: never).
    pub idle_seconds: Option<i64>,
}

thread_local! {
    static FETCH_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// One index probe by key id, as the owner (the hash column is granted to nobody).
pub fn fetch(key_id: &[u8; 16]) -> Option<KeyRow> {
    let arg = pgrx::Uuid::from_bytes(*key_id)
        .into_datum()
        .unwrap_or(pg_sys::Datum::from(0));
    privilege::as_extension_owner(|| {
        spi::query(
            Visibility::Latest,
            &FETCH_PLAN,
            c"SELECT k.secret_hash, k.owner_id, k.tenant_id, k.capabilities, k.claims::text,
                     extract(epoch FROM k.expires_at)::float8,
                     extract(epoch FROM pg_catalog.now() - u.last_used_at)::float8
              FROM kakunin.api_keys k LEFT JOIN kakunin.api_key_usage u ON u.key_id OPERATOR(pg_catalog.=) k.key_id
              WHERE k.key_id OPERATOR(pg_catalog.=) $1",
            &[pg_sys::UUIDOID],
            &[arg],
            |row| KeyRow {
                secret_hash: row.get::<Vec<u8>>(1).unwrap_or_default(),
                owner_id: row.get::<String>(2).unwrap_or_default(),
                tenant_id: row.get::<String>(3),
                capabilities: row.get::<Vec<String>>(4).unwrap_or_default(),
                claims: row.get::<String>(5).unwrap_or_default(),
                expires_at: row.get::<f64>(6).map(|t| t as i64),
                idle_seconds: row.get::<f64>(7).map(|t| t as i64),
            },
        )
        .into_iter()
        .next()
    })
}

impl KeyRow {
    pub fn claims_json(&self) -> Value {
        serde_json::from_str(&self.claims).unwrap_or_else(|_| json!({}))
    }
}

/// Records a management event (created, rotated, revoked, claims_updated).
/// Skipped in read-only transactions and on a standby, where verification must
/// still work.
pub fn record(key_id: Option<&[u8; 16]>, event: &str, reason: Option<&str>) {
    if privilege::writable() {
        insert_event(key_id, event, reason, 1);
    }
}

fn insert_event(key_id: Option<&[u8; 16]>, event: &str, reason: Option<&str>, occurrences: i64) {
    let actor = privilege::current_user_name();
    let agent = binding::current().map(|b| b.agent_id.clone());
    let key = key_id.map(|k| pgrx::Uuid::from_bytes(*k));
    privilege::as_extension_owner(|| {
        spi::run(
            "INSERT INTO kakunin.api_key_events (key_id, event, actor, agent_id, reason, occurrences)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                key.into(),
                event.into(),
                actor.as_str().into(),
                agent.into(),
                reason.into(),
                occurrences.into(),
            ],
        )
    })
    .unwrap_or_else(|e| spi_failed("record an API key event", e));
}

/// Failed verifications of one (stored key, reason) are recorded at most once
/// a minute per backend; the row counts the failures it stands for. A failure
/// that names no stored key (malformed, unknown id) concerns no owner and is
/// not recorded at all, so garbage from anyone writes nothing; rows older
/// than [`FAILURE_RETENTION`] are pruned as new ones arrive.
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
const FAILURE_RETENTION: &str = "30 days";

/// (reason, stored key id) -> (when last recorded, failures counted since).
type FailureWindows =
    std::collections::HashMap<(&'static str, [u8; 16]), (std::time::Instant, i64)>;

pub fn record_failure(key_id: Option<&[u8; 16]>, reason: &'static str) {
    let Some(key_id) = key_id else {
        return;
    };
    thread_local! {
        /// (reason, key) -> (last recorded, failures since)
        static WINDOWS: std::cell::RefCell<FailureWindows> = std::cell::RefCell::new(FailureWindows::new());
    }
    if !privilege::writable() {
        return;
    }
    let bucket = (reason, *key_id);
    let occurrences = WINDOWS.with_borrow_mut(|windows| {
        let now = std::time::Instant::now();
        match windows.get_mut(&bucket) {
            Some((at, since)) if now.duration_since(*at) < FAILURE_WINDOW => {
                *since += 1;
                None
            }
            // The failures counted in the closed window go with this record.
            Some((at, since)) => {
                let occurrences = *since + 1;
                (*at, *since) = (now, 0);
                Some(occurrences)
            }
            None => {
                if windows.len() >= 1024 {
                    windows.retain(|_, (at, _)| now.duration_since(*at) < FAILURE_WINDOW);
                }
                windows.insert(bucket, (now, 0));
                Some(1)
            }
        }
    });
    let Some(occurrences) = occurrences else {
        return;
    };
    insert_event(Some(key_id), "verify_failed", Some(reason), occurrences);
    privilege::as_extension_owner(|| {
        spi::run(
            &format!(
                "DELETE FROM kakunin.api_key_events WHERE id IN (
                     SELECT id FROM kakunin.api_key_events
                     WHERE event OPERATOR(pg_catalog.=) 'verify_failed'
                       AND at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) interval '{FAILURE_RETENTION}')
                     LIMIT 100 FOR UPDATE SKIP LOCKED)"
            ),
            &[],
        )
    })
    .unwrap_or_else(|e| spi_failed("prune old API key failures", e));
}

/// Writes `last_used_at` (in `kakunin.api_key_usage`, not the key row, so that
/// revoking the key never waits for this transaction) at most once a minute
/// per key, never blocking on a concurrent writer (SKIP LOCKED; the row exists
/// from the key's creation, so no insert can wait either), and never when
/// read-only. Within the minute a verification stays read-only.
pub fn touch(key_id: &[u8; 16], row: &KeyRow) {
    if !privilege::writable() || row.idle_seconds.is_some_and(|idle| idle < 60) {
        return;
    }
    let key = pgrx::Uuid::from_bytes(*key_id);
    privilege::as_extension_owner(|| {
        spi::run(
            "UPDATE kakunin.api_key_usage SET last_used_at = pg_catalog.now()
             WHERE key_id OPERATOR(pg_catalog.=) (SELECT key_id FROM kakunin.api_key_usage
                             WHERE key_id OPERATOR(pg_catalog.=) $1
                               AND (last_used_at IS NULL
                                    OR last_used_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 minute'))
                             FOR UPDATE SKIP LOCKED)",
            &[key.into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("record the API key's last use", e));
}

/// The credential a key was derived from: it never outlives it or exceeds it.
#[derive(Default)]
pub struct Lineage {
    pub parent_key_id: Option<pgrx::Uuid>,
    pub parent_serial: Option<String>,
    pub parent_issuer: Option<String>,
}

pub fn key_uuid(key_id: &[u8; 16]) -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*key_id)
}

/// What a new key row holds besides its generated id and secret.
pub struct NewKey<'a> {
    pub owner_id: &'a str,
    pub name: &'a str,
    pub capabilities: &'a [String],
    pub expires_at: Option<TimestampWithTimeZone>,
    /// Unix seconds `expires_at` may not pass (the deriving credential's expiry).
    pub expiry_cap: Option<i64>,
    pub claims: &'a Value,
    pub tenant_id: Option<&'a str>,
    pub lineage: Lineage,
}

/// Inserts a new key row and returns (key id, plaintext).
pub fn insert_key(key: NewKey<'_>) -> Result<(pgrx::Uuid, String)> {
    let new = api_key::generate().map_err(KakuninError::InvalidArgument)?;
    let actor = privilege::current_user_name();
    privilege::as_extension_owner(|| {
        spi::run(
            "WITH new_key AS (
                 INSERT INTO kakunin.api_keys
                     (key_id, owner_id, tenant_id, name, secret_hash, capabilities, claims, expires_at, created_by,
                      parent_key_id, parent_serial, parent_issuer)
                 VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb,
                         CASE WHEN $10::float8 IS NULL THEN $8
                              ELSE LEAST(coalesce($8, 'infinity'), pg_catalog.to_timestamp($10)) END,
                         $9, $11, $12, $13)
                 RETURNING key_id)
             INSERT INTO kakunin.api_key_usage (key_id) SELECT key_id FROM new_key",
            &[
                key_uuid(&new.key_id).into(),
                key.owner_id.into(),
                key.tenant_id.into(),
                key.name.into(),
                new.secret_hash.as_slice().into(),
                key.capabilities.to_vec().into(),
                key.claims.to_string().into(),
                key.expires_at.into(),
                actor.as_str().into(),
                key.expiry_cap.map(|t| t as f64).into(),
                key.lineage.parent_key_id.into(),
                key.lineage.parent_serial.into(),
                key.lineage.parent_issuer.into(),
            ],
        )
    })
    .unwrap_or_else(|e| spi_failed("store the API key", e));
    record(Some(&new.key_id), "created", None);
    Ok((key_uuid(&new.key_id), new.plaintext))
}

/// A key as its manager sees it (no hash).
pub struct ManagedKey {
    pub owner_id: String,
    pub tenant_id: Option<String>,
    pub name: String,
    pub capabilities: Vec<String>,
    pub claims: Value,
    pub revoked: bool,
    pub expires_at: Option<TimestampWithTimeZone>,
    pub lineage: Lineage,
}

/// Reads a key the caller may manage: RLS on `kakunin.api_keys` (owner or
/// admin) decides visibility, exactly as for a plain SELECT.
pub fn visible_key(key_id: pgrx::Uuid) -> Result<ManagedKey> {
    let row = spi::connect(|client| {
        let table = client.select(
            "SELECT owner_id, tenant_id, name, capabilities, claims::text, revoked_at IS NOT NULL,
                    expires_at, parent_key_id, parent_serial, parent_issuer
             FROM kakunin.api_keys WHERE key_id OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[key_id.into()],
        )?;
        if table.is_empty() {
            return Ok(None);
        }
        let row = table.first();
        Ok::<_, pgrx::spi::Error>(Some(ManagedKey {
            owner_id: row.get::<String>(1)?.unwrap_or_default(),
            tenant_id: row.get::<String>(2)?,
            name: row.get::<String>(3)?.unwrap_or_default(),
            capabilities: row.get::<Vec<String>>(4)?.unwrap_or_default(),
            claims: row
                .get::<String>(5)?
                .and_then(|c| serde_json::from_str(&c).ok())
                .unwrap_or_else(|| json!({})),
            revoked: row.get::<bool>(6)?.unwrap_or(true),
            expires_at: row.get::<TimestampWithTimeZone>(7)?,
            lineage: Lineage {
                parent_key_id: row.get::<pgrx::Uuid>(8)?,
                parent_serial: row.get::<String>(9)?,
                parent_issuer: row.get::<String>(10)?,
            },
        }))
    })
    .unwrap_or_else(|e| spi_failed("read kakunin.api_keys", e));
    row.ok_or_else(|| {
        KakuninError::Privilege(format!(
            "API key {key_id} does not exist or is not yours to manage"
        ))
    })
}

/// Revokes a key; false if it was already revoked.
pub fn revoke(key_id: pgrx::Uuid, reason: Option<&str>) -> bool {
    let changed = privilege::as_extension_owner(|| {
        spi::connect_mut(|client| {
            client
                .update(
                    "UPDATE kakunin.api_keys SET revoked_at = pg_catalog.now(), revoked_reason = $2
                     WHERE key_id OPERATOR(pg_catalog.=) $1 AND revoked_at IS NULL",
                    None,
                    &[key_id.into(), reason.into()],
                )
                .map(|t| t.len())
        })
    })
    .unwrap_or_else(|e| spi_failed("revoke the API key", e));
    if changed > 0 {
        record(Some(key_id.as_bytes()), "revoked", reason);
    }
    changed > 0
}

/// Marks `key_id` as replaced by `new_id`: it keeps working for `grace` only.
pub fn retire_rotated(key_id: pgrx::Uuid, new_id: pgrx::Uuid, grace: Option<Interval>) {
    privilege::as_extension_owner(|| {
        spi::run(
            "UPDATE kakunin.api_keys
             SET rotated_to = $2,
                 expires_at = LEAST(coalesce(expires_at, 'infinity'),
                                  pg_catalog.now() + GREATEST(coalesce($3, interval '0'), interval '0'))
             WHERE key_id OPERATOR(pg_catalog.=) $1",
            &[key_id.into(), new_id.into(), grace.into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("retire the rotated API key", e));
    record(
        Some(key_id.as_bytes()),
        "rotated",
        Some(&format!("replaced by {new_id}")),
    );
}

/// The claims of a key, read as the owner (a parent may be hidden from the caller).
pub fn claims_of(key_id: pgrx::Uuid) -> Value {
    privilege::as_extension_owner(|| {
        spi::get_one::<pgrx::JsonB>(
            "SELECT claims FROM kakunin.api_keys WHERE key_id OPERATOR(pg_catalog.=) $1",
            &[key_id.into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("read kakunin.api_keys", e))
    .map(|c| c.0)
    .unwrap_or_else(|| json!({}))
}

/// Replaces a key's claims.
pub fn set_claims(key_id: pgrx::Uuid, claims: &Value) {
    privilege::as_extension_owner(|| {
        spi::run(
            "UPDATE kakunin.api_keys SET claims = $2::jsonb WHERE key_id OPERATOR(pg_catalog.=) $1",
            &[key_id.into(), claims.to_string().into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("update the API key's claims", e));
    record(Some(key_id.as_bytes()), "claims_updated", None);
}
