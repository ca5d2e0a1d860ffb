//! The tamper-evident audit log (RFC 6962 Merkle tree, C2SP checkpoints).
//!
//! - `append`: entries enter the log (`kakunin.audit`, administrative acts).
//! - `autonomous`: an entry that must survive the caller's rollback.
//! - `guard`: the `kakunin.audit_guard` trigger: append-only, bounded payloads.
//! - `sequencer`: gives committed entries their positions in the tree.
//! - `checkpoints`: signed tree heads and C2SP notes.
//! - `maintenance`: integration without waiting, its lag, `audit_integrate`.
//! - `verification`: `kakunin.verify_audit_log`, proofs and evidence export.
//! - `worker`: the optional background worker that runs maintenance.
//!
//! This module holds the readers of the stored tree every part shares. Audit
//! imports only `pg/` and `gucs`: it sees the binding only through the
//! column defaults of `kakunin.audit_log` (SQL), and the sequencer knows
//! nothing of checkpoints, maintenance or the worker.

pub mod append;
pub mod autonomous;
pub mod checkpoints;
pub mod guard;
pub mod maintenance;
pub mod sequencer;
pub mod verification;
pub mod worker;

use std::cell::Cell;

use kakunin_core::audit::EntryRef;
use kakunin_core::merkle::Hash;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::error::spi_failed;
use crate::pg::spi::{self, Visibility};
use crate::pg::time;

/// Called once from `_PG_init`.
pub fn init() {
    worker::register();
}

thread_local! {
    static LEAF_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    static NODE_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// Reads a perfect-subtree node of the stored tree: level 0 is an entry's leaf
/// hash, higher levels are in `kakunin.audit_tree`. One kept-plan index probe.
pub fn node_at(level: u32, idx: u64) -> Hash {
    let idx_datum = (idx as i64).into_datum().unwrap_or(pg_sys::Datum::from(0));
    let rows = if level == 0 {
        spi::query(
            Visibility::Latest,
            &LEAF_PLAN,
            c"SELECT leaf_hash FROM kakunin.audit_log WHERE seq OPERATOR(pg_catalog.=) $1",
            &[pg_sys::INT8OID],
            &[idx_datum],
            |row| row.get::<Vec<u8>>(1),
        )
    } else {
        let level_datum = (level as i16)
            .into_datum()
            .unwrap_or(pg_sys::Datum::from(0));
        spi::query(
            Visibility::Latest,
            &NODE_PLAN,
            c"SELECT hash FROM kakunin.audit_tree
              WHERE level OPERATOR(pg_catalog.=) $1 AND idx OPERATOR(pg_catalog.=) $2",
            &[pg_sys::INT2OID, pg_sys::INT8OID],
            &[level_datum, idx_datum],
            |row| row.get::<Vec<u8>>(1),
        )
    };
    // A missing node is a damaged tree: fail loudly rather than prove nonsense.
    rows.into_iter()
        .flatten()
        .next()
        .and_then(|h| h.try_into().ok())
        .unwrap_or_else(|| {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!("the audit tree is missing node (level {level}, index {idx})")
            );
        })
}

/// The columns [`entry_at`] reads, after a first column that is the entry's
/// position (or, for entries not yet integrated, its id).
pub const ENTRY_COLUMNS: &str =
    "ts, tenant_id, actor_id, request_id, action, payload::text, leaf_hash";

/// The entry in a row of `SELECT <key>, ENTRY_COLUMNS`, borrowed from the row
/// (its `seq` is the key column), and its stored leaf hash if it has one.
pub fn entry_at(row: &spi::Row) -> (EntryRef<'_>, Option<&[u8]>) {
    let ts = row
        .get::<pgrx::datum::TimestampWithTimeZone>(2)
        .map_or(0, |ts| time::unix_micros(pg_sys::TimestampTz::from(ts)));
    (
        EntryRef {
            seq: row.get::<i64>(1).unwrap_or(-1) as u64,
            ts_micros: ts,
            tenant_id: row.text(3),
            actor_id: row.text(4).unwrap_or_default(),
            request_id: row.text(5),
            action: row.text(6).unwrap_or_default(),
            payload: row.text(7).unwrap_or("null"),
        },
        row.bytes(8),
    )
}

/// Number of integrated entries (the tree size).
pub fn tree_size() -> u64 {
    spi::select_one::<i64>(
        "SELECT coalesce(max(seq) + 1, 0) FROM kakunin.audit_log",
        &[],
    )
    .unwrap_or_else(|e| spi_failed("read the audit log size", e))
    .unwrap_or(0) as u64
}
