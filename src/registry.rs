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

/// The registry entry for `serial` or its agent (None: neither listed, so
/// active; both listed: the more severe), served from a
/// per-backend cache while no invalidation of the registry has arrived.
/// `epoch_before` is [`invalidation::epoch`] before the caller's `refresh`.
pub fn registry_status(
    serial: &str,
    agent_id: &str,
    visibility: Visibility,
    epoch_before: u64,
) -> Option<CertStatus> {
    let cache_key = format!("{serial}\0{agent_id}");
    if let Some(status) = STATUS_CACHE.with(|c| c.get(&cache_key)) {
        return status;
    }
    let args = [
        serial.into_datum().unwrap_or(pgrx::pg_sys::Datum::from(0)),
        agent_id
            .into_datum()
            .unwrap_or(pgrx::pg_sys::Datum::from(0)),
    ];
    let status = spi_plans::query(
        visibility,
        &STATUS_PLAN,
        c"SELECT status FROM kakunin.certificate_status WHERE serial OPERATOR(pg_catalog.=) $1
          UNION ALL
          SELECT status FROM kakunin.agent_status WHERE agent_id OPERATOR(pg_catalog.=) $2",
        &[pgrx::pg_sys::TEXTOID, pgrx::pg_sys::TEXTOID],
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
    // SAFETY: GetCurrentTimestamp only reads the clock.
    let ts = unsafe { pgrx::pg_sys::GetCurrentTimestamp() };
    pg_timestamp_to_unix(ts)
}

/// PostgreSQL timestamps count microseconds from 2000-01-01.
pub fn pg_timestamp_to_unix(ts: pgrx::pg_sys::TimestampTz) -> i64 {
    ts.div_euclid(1_000_000) + 946_684_800
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

/// Writes (or for `active`, clears) one row of a status table, as the owner.
/// The table's trigger tells every backend to re-read it.
fn write_status(
    table: &str,
    key_column: &str,
    key: &str,
    status: CertStatus,
    reason: Option<&str>,
    actor: &str,
) {
    let result = privilege::as_extension_owner(|| {
        if status == CertStatus::Active {
            spi_plans::run(
                &format!(
                    "DELETE FROM kakunin.{table} WHERE {key_column} OPERATOR(pg_catalog.=) $1"
                ),
                &[key.into()],
            )
        } else {
            spi_plans::run(
                &format!(
                    "INSERT INTO kakunin.{table} ({key_column}, status, reason, changed_at, changed_by)
                     VALUES ($1, $2, $3, pg_catalog.now(), $4)
                     ON CONFLICT ({key_column}) DO UPDATE
                     SET status = excluded.status, reason = excluded.reason,
                         changed_at = excluded.changed_at, changed_by = excluded.changed_by"
                ),
                &[key.into(), status.as_str().into(), reason.into(), actor.into()],
            )
        }
    });
    result.unwrap_or_else(|e| spi_failed(&format!("write kakunin.{table}"), e));
}

/// Records a certificate's status (serial already canonical).
pub fn write_certificate_status(
    serial: &str,
    status: CertStatus,
    reason: Option<&str>,
    actor: &str,
) {
    write_status(
        "certificate_status",
        "serial",
        serial,
        status,
        reason,
        actor,
    );
}

/// Records an agent's status, for all its certificates and keys.
pub fn write_agent_status(agent_id: &str, status: CertStatus, reason: Option<&str>, actor: &str) {
    write_status("agent_status", "agent_id", agent_id, status, reason, actor);
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
    write_certificate_status(&serial, status, reason, &privilege::current_user_name());
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
    write_agent_status(agent_id, status, reason, &privilege::current_user_name());
    let set =
        serde_json::json!({"agent_id": agent_id, "status": status.as_str(), "reason": reason});
    crate::audit::admin_act("kakunin.agent_status.set", set.clone());
    pgrx::JsonB(set)
}
