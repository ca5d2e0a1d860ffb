//! Keeping the tree current without waiting on anyone: the worker's step
//! (integrate if the sequencer is free, then sign a checkpoint if one is
//! due), `kakunin.audit_integrate()` for `kakunin_admin`, and
//! `kakunin.audit_lag()` to see what is not placed yet.

use pgrx::prelude::*;

use super::{checkpoints, sequencer};
use crate::pg::error::spi_failed;
use crate::pg::{privilege, spi};

/// Integrates committed entries (and, if `own`, this transaction's) and signs
/// a checkpoint if one is due, unless another sequencer holds the lock (it is
/// doing that work): never waits.
pub fn integrate_if_free(own: bool) {
    if sequencer::try_integrate(own).is_some() {
        privilege::as_extension_owner(checkpoints::checkpoint_if_due);
    }
}

/// `kakunin.audit_lag() → jsonb {unplaced, oldest_unplaced, worker_running}`:
/// committed entries not yet in the tree (as the caller's snapshot sees them),
/// the time of the oldest, and whether the background worker is connected to
/// this database — so a stalled sequencer is visible (issue 15).
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn audit_lag() -> pgrx::JsonB {
    let (unplaced, oldest) = privilege::as_extension_owner(|| {
        spi::connect(|client| {
            let row = client
                .select(
                    "SELECT count(*), extract(epoch FROM min(ts))::float8 FROM kakunin.audit_log WHERE seq IS NULL",
                    Some(1),
                    &[],
                )?
                .first();
            Ok::<_, pgrx::spi::Error>((row.get::<i64>(1)?.unwrap_or(0), row.get::<f64>(2)?))
        })
    })
    .unwrap_or_else(|e| spi_failed("read the audit log", e));
    pgrx::JsonB(serde_json::json!({
        "unplaced": unplaced,
        "oldest_unplaced": oldest.map(|t| kakunin_core::rfc3339(t as i64)),
        "worker_running": worker_running(),
    }))
}

/// `kakunin.audit_integrate() → bigint`: integrates every committed entry not
/// yet in the tree; returns how many. kakunin_admin only (EXECUTE).
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn audit_integrate() -> i64 {
    sequencer::integrate() as i64
}

/// Whether a worker is connected to this database now.
fn worker_running() -> bool {
    spi::select_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity
                        WHERE backend_type OPERATOR(pg_catalog.=) 'kakunin audit sequencer'
                          AND datname OPERATOR(pg_catalog.=) pg_catalog.current_database())",
        &[],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}
