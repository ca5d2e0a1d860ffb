//! The local certificate-status registry (`kakunin.certificate_status`) and the
//! status caches (per invalidation epoch, per statement).

use std::cell::Cell;

use kakunin_core::binding::{effective_status, worst, Binding, CertStatus};
use pgrx::prelude::*;

use crate::error::{spi_failed, KakuninError, OrRaise};
use crate::invalidation::{self, EpochCache};
use crate::privilege;
use crate::spi_plans::{self, Visibility};

thread_local! {
    static STATUS_PLAN: Cell<pgrx::pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    /// "serial\0agent" -> registry entry.
    static STATUS_CACHE: EpochCache<String, Option<CertStatus>> = EpochCache::new(4096);
}

/// The epoch a value read now may be cached under. A value read in the
/// statement's snapshot is only as fresh as that snapshot, which predates the
/// invalidations this statement's `refresh` drained (`epoch_before`); a
/// `Latest` read takes a new snapshot after them.
pub fn tag_for(visibility: Visibility, epoch_before: u64) -> u64 {
    match visibility {
        Visibility::Statement => epoch_before,
        Visibility::Latest | Visibility::Write => invalidation::epoch(),
    }
}

/// The registry's status for the certificate (`serial` under `issuer`, the hex
/// of its issuer's Name: rows for that issuer and issuer-less rows) and its
/// agent: the most severe of all their rows, None when there is none (so
/// active), served from a
/// per-backend cache while no invalidation of the registry has arrived.
/// `epoch_before` is [`invalidation::epoch`] before the caller's `refresh`.
pub fn registry_status(
    serial: &str,
    issuer: &str,
    agent_id: &str,
    visibility: Visibility,
    epoch_before: u64,
) -> Option<CertStatus> {
    let cache_key = format!("{serial}\0{issuer}\0{agent_id}");
    if let Some(status) = STATUS_CACHE.with(|c| c.get(&cache_key)) {
        return status;
    }
    let datum = |s: &str| s.into_datum().unwrap_or(pgrx::pg_sys::Datum::from(0));
    let args = [datum(serial), datum(agent_id), datum(issuer)];
    let status = spi_plans::query(
        visibility,
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
    STATUS_CACHE.with(|c| c.insert(cache_key, tag_for(visibility, epoch_before), status));
    status
}

pub fn now_unix() -> i64 {
    now_unix_micros().div_euclid(1_000_000)
}

/// PostgreSQL timestamps count microseconds from 2000-01-01.
pub fn pg_timestamp_to_unix(ts: pgrx::pg_sys::TimestampTz) -> i64 {
    pg_timestamp_to_unix_micros(ts).div_euclid(1_000_000)
}

/// Microseconds since the Unix epoch: the precision of a `timestamptz`.
pub fn pg_timestamp_to_unix_micros(ts: pgrx::pg_sys::TimestampTz) -> i64 {
    ts.saturating_add(946_684_800_000_000)
}

pub fn now_unix_micros() -> i64 {
    // SAFETY: GetCurrentTimestamp only reads the clock.
    pg_timestamp_to_unix_micros(unsafe { pgrx::pg_sys::GetCurrentTimestamp() })
}

thread_local! {
    static STATEMENT_STATUS: Cell<Option<(u64, i64, CertStatus)>> = const { Cell::new(None) };
}

/// Live status of the bound certificate (or API key) for the current statement. The first
/// call of each statement drains pending invalidations, so a status change
/// committed before the statement began is seen; the registry itself is read
/// only when an invalidation says it may have changed.
pub fn bound_status(binding: &Binding) -> CertStatus {
    // SAFETY: reads the statement start time of the current (or leader's) statement.
    let statement = unsafe { pgrx::pg_sys::GetCurrentStatementStartTimestamp() };
    let binding_epoch = crate::binding_setting::epoch();
    if let Some((e, s, status)) = STATEMENT_STATUS.get() {
        if e == binding_epoch && s == statement {
            return status;
        }
    }
    let before = invalidation::epoch();
    invalidation::refresh();
    let now = pg_timestamp_to_unix(statement);
    let status = match &binding.key_id {
        Some(key_id) => crate::api_keys::key_status(
            key_id,
            Visibility::Statement,
            before,
            pg_timestamp_to_unix_micros(statement),
        ),
        None => {
            let status = effective_status(
                registry_status(
                    &binding.serial,
                    &binding.issuer,
                    &binding.agent_id,
                    Visibility::Statement,
                    before,
                ),
                binding.not_after,
                now,
            );
            // A stale CRL for the issuer makes the status unknown, as at bind.
            let issuer = hex::decode(&binding.issuer).unwrap_or_default();
            crate::crl::stale_status(&issuer, Visibility::Statement, before, now)
                .map_or(status, |stale| worst(status, stale))
        }
    };
    // A verdict fixed at bind (the verify endpoint's) is never softened.
    let status = binding
        .bound_status
        .as_deref()
        .and_then(CertStatus::parse)
        .map_or(status, |fixed| worst(status, fixed));
    STATEMENT_STATUS.set(Some((binding_epoch, statement, status)));
    status
}

/// The status an administrator may set: active (clears), suspended, retired, revoked.
fn settable_status(status: Option<&str>) -> CertStatus {
    let status = status
        .ok_or(KakuninError::NullArgument("status"))
        .or_raise();
    match CertStatus::parse(status) {
        Some(CertStatus::Expired | CertStatus::Unknown) | None => {
            KakuninError::InvalidArgument(format!(
                "status must be one of active, suspended, retired, revoked (got \"{}\")",
                status.chars().take(40).collect::<String>()
            ))
            .raise()
        }
        Some(s) => s,
    }
}

/// Who made a statement about a status through [`state`] (CRLs are applied
/// in bulk by `crl::load_crl`, under the same rule).
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
        spi_plans::connect_mut(|client| client.update(&sql, None, &args).map(|t| !t.is_empty()))
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
) -> pgrx::JsonB {
    privilege::require_admin("kakunin.set_certificate_status");
    let serial = serial
        .ok_or(KakuninError::NullArgument("serial"))
        .or_raise();
    let serial = kakunin_core::serial::normalize(serial)
        .map_err(|e| KakuninError::InvalidArgument(e.to_string()))
        .or_raise();
    let status = settable_status(status);
    let actor = privilege::current_user_name();
    let subject = Subject::Certificate {
        serial: &serial,
        issuer: "",
    };
    state(subject, Source::Admin, status, now_unix(), reason, &actor);
    let set = serde_json::json!({"serial": serial, "status": status.as_str(), "reason": reason});
    crate::audit::admin_act("kakunin.certificate_status.set", set.clone());
    pgrx::JsonB(set)
}

/// `kakunin.set_agent_status(agent_id, status, reason)`: the same for every
/// certificate and API key of an agent.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn set_agent_status(
    agent_id: Option<&str>,
    status: Option<&str>,
    reason: default!(Option<&str>, "NULL"),
) -> pgrx::JsonB {
    privilege::require_admin("kakunin.set_agent_status");
    let agent_id = agent_id
        .ok_or(KakuninError::NullArgument("agent_id"))
        .or_raise();
    let status = settable_status(status);
    let actor = privilege::current_user_name();
    state(
        Subject::Agent(agent_id),
        Source::Admin,
        status,
        now_unix(),
        reason,
        &actor,
    );
    let set =
        serde_json::json!({"agent_id": agent_id, "status": status.as_str(), "reason": reason});
    crate::audit::admin_act("kakunin.agent_status.set", set.clone());
    pgrx::JsonB(set)
}
