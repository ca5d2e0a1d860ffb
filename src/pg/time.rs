//! The clock in the units the extension reasons in: seconds (certificate
//! validity, RFC 5280 `Time`) and microseconds (a `timestamptz`'s precision)
//! since the Unix epoch.

use pgrx::pg_sys;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const UNIX_TO_PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Microseconds since the Unix epoch of a PostgreSQL timestamp.
pub fn unix_micros(ts: pg_sys::TimestampTz) -> i64 {
    ts.saturating_add(UNIX_TO_PG_EPOCH_MICROS)
}

/// Seconds since the Unix epoch of a PostgreSQL timestamp (rounded down).
pub fn unix_seconds(ts: pg_sys::TimestampTz) -> i64 {
    unix_micros(ts).div_euclid(1_000_000)
}

/// Now, in microseconds since the Unix epoch.
pub fn now_unix_micros() -> i64 {
    // SAFETY: GetCurrentTimestamp only reads the clock.
    unix_micros(unsafe { pg_sys::GetCurrentTimestamp() })
}

/// Now, in seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    now_unix_micros().div_euclid(1_000_000)
}

/// When the running statement started (of the leader, in a parallel worker).
pub fn statement_start() -> pg_sys::TimestampTz {
    // SAFETY: reads the statement start time of the current (or leader's) statement.
    unsafe { pg_sys::GetCurrentStatementStartTimestamp() }
}
