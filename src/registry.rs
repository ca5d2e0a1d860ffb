//! The local certificate-status registry (`kakunin.certificate_status`) and the
//! trust-store generation, read with one kept plan per backend.

use std::cell::Cell;

use kakunin_core::binding::{effective_status, Binding, CertStatus};
use pgrx::prelude::*;

use crate::error::{spi_failed, KakuninError, OrRaise};
use crate::privilege;
use crate::spi_read::{self, Visibility};

/// What one probe tells about a certificate.
pub struct Lookup {
    pub trust_generation: i64,
    pub registry: Option<CertStatus>,
}

thread_local! {
    static LOOKUP_PLAN: Cell<pgrx::pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// One index probe: the trust-store generation and the registry entry for `serial`.
/// Runs in the caller's snapshot, so a committed status change is seen by the
/// next statement of every session.
pub fn lookup(serial: &str, visibility: Visibility) -> Lookup {
    let arg = serial.into_datum().unwrap_or(pgrx::pg_sys::Datum::from(0));
    let rows = spi_read::query(
        visibility,
        &LOOKUP_PLAN,
        c"SELECT t.generation, s.status
          FROM kakunin.trust_store_state t
          LEFT JOIN kakunin.certificate_status s ON s.serial OPERATOR(pg_catalog.=) $1",
        &[pgrx::pg_sys::TEXTOID],
        &[arg],
        |row| (row.get::<i64>(1), row.get::<String>(2)),
    );
    let (generation, status) = rows.into_iter().next().unwrap_or((None, None));
    Lookup {
        trust_generation: generation.unwrap_or(0),
        // An unknown word in the registry (only a superuser could write one past
        // the CHECK constraint) fails closed as revoked.
        registry: status.map(|s| CertStatus::parse(&s).unwrap_or(CertStatus::Revoked)),
    }
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

thread_local! {
    static STATEMENT_STATUS: Cell<Option<(u64, i64, CertStatus)>> = const { Cell::new(None) };
}

/// Live status of the bound certificate for the current statement: the registry
/// is read once per statement (and per binding), then served from memory.
pub fn bound_status(binding: &Binding) -> CertStatus {
    // SAFETY: reads the statement start time of the current (or leader's) statement.
    let statement = unsafe { pgrx::pg_sys::GetCurrentStatementStartTimestamp() };
    let epoch = crate::binding_setting::epoch();
    if let Some((e, s, status)) = STATEMENT_STATUS.get() {
        if e == epoch && s == statement {
            return status;
        }
    }
    let status = effective_status(
        lookup(&binding.serial, Visibility::Statement).registry,
        binding.not_after,
        pg_timestamp_to_unix(statement),
    );
    STATEMENT_STATUS.set(Some((epoch, statement, status)));
    status
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
    let status = status
        .ok_or(KakuninError::NullArgument("status"))
        .or_raise();
    let parsed = match CertStatus::parse(status) {
        Some(CertStatus::Expired) | None => KakuninError::InvalidArgument(format!(
            "status must be one of active, suspended, retired, revoked (got \"{}\")",
            status.chars().take(40).collect::<String>()
        ))
        .raise(),
        Some(s) => s,
    };
    let actor = privilege::current_user_name();
    privilege::as_extension_owner(|| {
        let result = if parsed == CertStatus::Active {
            Spi::run_with_args(
                "DELETE FROM kakunin.certificate_status WHERE serial OPERATOR(pg_catalog.=) $1",
                &[serial.as_str().into()],
            )
        } else {
            Spi::run_with_args(
                "INSERT INTO kakunin.certificate_status (serial, status, reason, changed_at, changed_by)
                 VALUES ($1, $2, $3, pg_catalog.now(), $4)
                 ON CONFLICT (serial) DO UPDATE
                 SET status = excluded.status, reason = excluded.reason,
                     changed_at = excluded.changed_at, changed_by = excluded.changed_by",
                &[
                    serial.as_str().into(),
                    parsed.as_str().into(),
                    reason.into(),
                    actor.as_str().into(),
                ],
            )
        };
        result.unwrap_or_else(|e| spi_failed("write kakunin.certificate_status", e))
    });
    pgrx::JsonB(serde_json::json!({"serial": serial, "status": parsed.as_str(), "reason": reason}))
}
