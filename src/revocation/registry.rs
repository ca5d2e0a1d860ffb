//! The local status registry: `kakunin.certificate_status` and
//! `kakunin.agent_status`, their one writer ([`state`], [`apply_crl`]) and the
//! rule every statement is applied under ([`SUPERSEDES`]), the cached read
//! ([`registry_status`]) and the administrator's functions.

use std::cell::Cell;

use kakunin_core::binding::{worst, CertStatus};
use pgrx::prelude::*;

use crate::pg::error::{required, spi_failed, KakuninError, Result, SqlResult};
use crate::pg::invalidation::{EpochCache, Read};
use crate::pg::spi;
use crate::pg::{privilege, time};

thread_local! {
    static STATUS_PLAN: Cell<pgrx::pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    /// "serial\0agent" -> registry entry.
    static STATUS_CACHE: EpochCache<String, Option<CertStatus>> = EpochCache::new(4096);
}

/// The registry's status for the certificate (`serial` under `issuer`, the hex
/// of its issuer's Name: rows for that issuer and issuer-less rows) and its
/// agent: the most severe of all their rows, None when there is none (so
/// active), served from a
/// per-backend cache while no invalidation of the registry has arrived.
pub fn registry_status(
    serial: &str,
    issuer: &str,
    agent_id: &str,
    read: Read,
) -> Option<CertStatus> {
    let cache_key = format!("{serial}\0{issuer}\0{agent_id}");
    if let Some(status) = STATUS_CACHE.with(|c| c.get(&cache_key)) {
        return status;
    }
    let datum = |s: &str| s.into_datum().unwrap_or(pgrx::pg_sys::Datum::from(0));
    let args = [datum(serial), datum(agent_id), datum(issuer)];
    let status = spi::query(
        read.visibility,
        &STATUS_PLAN,
        c"SELECT status FROM kakunin.certificate_status
          WHERE serial OPERATOR(pg_catalog.=) $1 AND issuer OPERATOR(pg_catalog.=) ANY (ARRAY['', $3])
          UNION ALL
          SELECT status FROM kakunin.agent_status WHERE agent_id OPERATOR(pg_catalog.=) $2",
        &[
            pgrx::pg_sys::TEXTOID,
            pgrx::pg_sys::TEXTOID,
            pgrx::pg_sys::TEXTOID,
        ],
        &args,
        |row| row.get::<String>(1),
    )
    .into_iter()
    .flatten()
    // An unknown word in the registry (only a superuser could write one past the
    // CHECK constraint) fails closed as revoked.
    .map(|s| CertStatus::parse(&s).unwrap_or(CertStatus::Revoked))
    .reduce(worst);
    STATUS_CACHE.with(|c| c.insert(cache_key, read, status));
    status
}

/// The status an administrator may set: active (clears), suspended, retired, revoked.
fn settable_status(status: Option<&str>) -> Result<CertStatus> {
    let status = required(status, "status")?;
    match CertStatus::parse(status) {
        Some(CertStatus::Expired | CertStatus::Unknown) | None => {
            Err(KakuninError::InvalidArgument(format!(
                "status must be one of active, suspended, retired, revoked (got \"{}\")",
                status.chars().take(40).collect::<String>()
            )))
        }
        Some(s) => Ok(s),
    }
}

/// Who made a statement about a status through [`state`] (CRLs are applied
/// in bulk by [`apply_crl`], under the same rule).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Source {
    Admin,
    Webhook,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Admin => "admin",
            Source::Webhook => "webhook",
        }
    }
}

/// What a statement is about: a certificate (its serial, and the hex of its
/// issuer's Name, or "" for the serial under every issuer) or a whole agent.
pub enum Subject<'a> {
    Certificate { serial: &'a str, issuer: &'a str },
    Agent(&'a str),
}

/// The one rule every writer of the registry applies, as the condition under
/// which a source's new statement replaces its stored one (`c` the stored
/// row, `excluded` the new): a revocation by the CA (webhook, CRL) is final,
/// as RFC 5280 has no un-revoke; an older statement never replaces a newer
/// one; an administrator may correct what an administrator set. Each source
/// keeps its own row (an `active` row remembers a reinstatement's time), and
/// a status is the most severe of all rows ([`registry_status`]).
pub const SUPERSEDES: &str =
    "(c.status OPERATOR(pg_catalog.<>) 'revoked' OR c.source OPERATOR(pg_catalog.=) 'admin')
     AND c.stated_at OPERATOR(pg_catalog.<=) excluded.stated_at";

/// Records `source`'s statement that `subject` has `status` (`active`
/// clears), made at `stated_at` (unix seconds), if it supersedes that
/// source's stored statement; true if it did. The table's trigger tells every
/// backend to re-read it.
pub fn state(
    subject: Subject<'_>,
    source: Source,
    status: CertStatus,
    stated_at: i64,
    reason: Option<&str>,
    actor: &str,
) -> bool {
    let mut args: Vec<pgrx::datum::DatumWithOid<'_>> = vec![
        source.as_str().into(),
        status.as_str().into(),
        reason.into(),
        (stated_at as f64).into(),
        actor.into(),
    ];
    // The subject's key columns follow the five values above, as $6 (and $7).
    let (table, key_columns, keys) = match subject {
        Subject::Certificate { serial, issuer } => {
            args.extend([serial.into(), issuer.into()]);
            ("certificate_status", "serial, issuer", "$6, $7")
        }
        Subject::Agent(agent) => {
            args.push(agent.into());
            ("agent_status", "agent_id", "$6")
        }
    };
    let sql = format!(
        "INSERT INTO kakunin.{table} AS c ({key_columns}, source, status, reason, stated_at, changed_at, changed_by)
         VALUES ({keys}, $1, $2, $3, pg_catalog.to_timestamp($4), pg_catalog.now(), $5)
         ON CONFLICT ({key_columns}, source) DO UPDATE
         SET status = excluded.status, reason = excluded.reason, stated_at = excluded.stated_at,
             changed_at = excluded.changed_at, changed_by = excluded.changed_by
         WHERE {SUPERSEDES}
         RETURNING true"
    );
    // No row back: the stored statement stands.
    privilege::as_extension_owner(|| {
        spi::connect_mut(|client| client.update(&sql, None, &args).map(|t| !t.is_empty()))
    })
    .unwrap_or_else(|e| spi_failed(&format!("write kakunin.{table}"), e))
}

/// `kakunin.set_certificate_status(serial, status, reason)`: records a
/// suspension, retirement or revocation, or (`active`) clears one.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn set_certificate_status(
    serial: Option<&str>,
    status: Option<&str>,
    reason: default!(Option<&str>, "NULL"),
) -> SqlResult<pgrx::JsonB> {
    privilege::require_admin("kakunin.set_certificate_status")?;
    let serial = kakunin_core::serial::normalize(required(serial, "serial")?)
        .map_err(|e| KakuninError::InvalidArgument(e.to_string()))?;
    let status = settable_status(status)?;
    let actor = privilege::current_user_name();
    let subject = Subject::Certificate {
        serial: &serial,
        issuer: "",
    };
    state(
        subject,
        Source::Admin,
        status,
        time::now_unix(),
        reason,
        &actor,
    );
    let set = serde_json::json!({"serial": serial, "status": status.as_str(), "reason": reason});
    crate::audit::append::admin_act("kakunin.certificate_status.set", set.clone());
    Ok(pgrx::JsonB(set))
}

/// `kakunin.set_agent_status(agent_id, status, reason)`: the same for every
/// certificate and API key of an agent.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn set_agent_status(
    agent_id: Option<&str>,
    status: Option<&str>,
    reason: default!(Option<&str>, "NULL"),
) -> SqlResult<pgrx::JsonB> {
    privilege::require_admin("kakunin.set_agent_status")?;
    let agent_id = required(agent_id, "agent_id")?;
    let status = settable_status(status)?;
    let actor = privilege::current_user_name();
    state(
        Subject::Agent(agent_id),
        Source::Admin,
        status,
        time::now_unix(),
        reason,
        &actor,
    );
    let set =
        serde_json::json!({"agent_id": agent_id, "status": status.as_str(), "reason": reason});
    crate::audit::append::admin_act("kakunin.agent_status.set", set.clone());
    Ok(pgrx::JsonB(set))
}

/// One entry of a CRL as the registry records it.
pub struct CrlEntry {
    pub serial: String,
    /// `revoked`, or `suspended` for certificateHold (RFC 5280 §5.3.1), the
    /// one reason a CA may lift.
    pub status: CertStatus,
    pub reason: String,
}

/// Records a CRL of `issuer` (hex of its Name) as the `crl` source's
/// statements, made at its thisUpdate (`this_update`, unix seconds), under
/// [`SUPERSEDES`]: a CRL speaks for its issuer only, and a hold it no longer
/// lists is lifted. Returns how many entries changed a stored status.
pub fn apply_crl(issuer: &str, this_update: i64, entries: &[CrlEntry]) -> usize {
    let serials: Vec<&str> = entries.iter().map(|e| e.serial.as_str()).collect();
    let reasons: Vec<&str> = entries.iter().map(|e| e.reason.as_str()).collect();
    let statuses: Vec<&str> = entries.iter().map(|e| e.status.as_str()).collect();
    privilege::as_extension_owner(|| {
        spi::connect_mut(|client| {
            client.update(
                &format!(
                    "UPDATE kakunin.certificate_status AS c
                     SET status = 'active', reason = 'crl: hold lifted', stated_at = excluded.stated_at,
                         changed_at = pg_catalog.now(), changed_by = 'crl'
                     FROM (SELECT pg_catalog.to_timestamp($3) AS stated_at) AS excluded
                     WHERE c.source OPERATOR(pg_catalog.=) 'crl' AND c.issuer OPERATOR(pg_catalog.=) $2
                       AND c.status OPERATOR(pg_catalog.=) 'suspended'
                       AND c.serial OPERATOR(pg_catalog.<>) ALL ($1::text[]) AND {SUPERSEDES}"
                ),
                None,
                &[
                    serials.clone().into(),
                    issuer.into(),
                    (this_update as f64).into(),
                ],
            )?;
            client
                .update(
                    &format!(
                        "INSERT INTO kakunin.certificate_status AS c
                             (serial, issuer, source, status, reason, stated_at, changed_at, changed_by)
                         SELECT s, $3, 'crl', st, r, pg_catalog.to_timestamp($4), pg_catalog.now(), 'crl'
                         FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]),
                                         pg_catalog.unnest($5::text[])) AS u(s, r, st)
                         ON CONFLICT (serial, issuer, source) DO UPDATE
                         SET status = excluded.status, reason = excluded.reason, stated_at = excluded.stated_at,
                             changed_at = excluded.changed_at, changed_by = excluded.changed_by
                         WHERE {SUPERSEDES} AND c.status OPERATOR(pg_catalog.<>) excluded.status
                         RETURNING serial"
                    ),
                    None,
                    &[
                        serials.into(),
                        reasons.into(),
                        issuer.into(),
                        (this_update as f64).into(),
                        statuses.into(),
                    ],
                )
                .map(|t| t.len())
        })
    })
    .unwrap_or_else(|e| spi_failed("apply the CRL to the registry", e))
}
