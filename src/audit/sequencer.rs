//! The sequencer.
//!
//! An append (`append`) is a plain INSERT (RLS applies) and takes no lock
//! shared with other writers. The sequencer gives committed entries their
//! positions: under
//! one lock, it reads the entries not yet integrated that its snapshot sees
//! (committed ones, so a rolled-back append leaves no hole), numbers them
//! gaplessly after the current tree size (commit order between integrations,
//! arrival order within one), stores their leaf hashes and the tree nodes they
//! complete, all in one transaction.
//!
//! The lock is a row lock on `kakunin.audit_sequencer`, which only the
//! extension owner may lock (an advisory lock could be taken by any role and
//! stalled the log, issue 14). It is held until the holder's transaction
//! ends, so it is taken only where no other role's SQL can keep that
//! transaction open: in the background worker's own transactions, and in
//! `kakunin.audit_integrate()` / `audit_checkpoint()` and the readers when a
//! `kakunin_admin` member calls them (waiting at most [`LOCK_WAIT`]). Appends
//! never integrate: even at its pre-commit, an appending transaction can be
//! made to wait by its author (an ON COMMIT action on a table another session
//! locks), which would hold the lock for as long. Readers called by other
//! roles read what is integrated; `kakunin.audit_lag()` shows what is not.

use std::time::{Duration, Instant};

use std::ops::ControlFlow;

use kakunin_core::audit::EntryRef;
use kakunin_core::merkle::Frontier;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::guard::as_sequencer;
use super::{entry_at, node_at, tree_size, ENTRY_COLUMNS};
use crate::pg::error::spi_failed;
use crate::pg::privilege;
use crate::pg::spi::{self, Visibility};

const BATCH: i64 = 20_000;
/// How long an explicit integration waits for another sequencer (which holds
/// the lock for one integration, never across user SQL) before `55P03`.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Takes the sequencer lock if it is free, as the extension owner. A catalog
/// still at 0.2.0 or older (before `ALTER EXTENSION kakunin_pg UPDATE`) has no
/// `kakunin.audit_sequencer` and keeps the advisory lock it was built with.
fn try_lock() -> bool {
    let sql = if spi::get_one::<bool>(
        "SELECT pg_catalog.to_regclass('kakunin.audit_sequencer') IS NOT NULL",
        &[],
    )
    .unwrap_or_else(|e| spi_failed("find the sequencer lock", e))
    .unwrap_or(false)
    {
        "SELECT true FROM kakunin.audit_sequencer FOR UPDATE SKIP LOCKED"
    } else {
        "SELECT pg_catalog.pg_try_advisory_xact_lock(x'6b6b6e5f61756474'::bigint)"
    };
    // SKIP LOCKED answers no row while another sequencer holds it: busy.
    spi::connect_mut(|client| {
        let rows = client.update(sql, Some(1), &[])?;
        if rows.is_empty() {
            return Ok(false);
        }
        rows.first().get_one::<bool>().map(|b| b.unwrap_or(false))
    })
    .unwrap_or_else(|e| spi_failed("take the sequencer lock", e))
}

/// Integrates what this transaction's snapshot sees (and, if `own`, its own
/// entries) unless another sequencer holds the lock, as the extension owner;
/// None when busy. Never waits.
pub fn try_integrate(own: bool) -> Option<u64> {
    privilege::as_extension_owner(|| try_lock().then(|| integrate_locked(own)))
}

/// Waits (at most [`LOCK_WAIT`], cancellably) for the sequencer lock, then
/// integrates as the extension owner, this transaction's own entries included.
pub fn integrate() -> u64 {
    privilege::as_extension_owner(|| {
        let deadline = Instant::now() + LOCK_WAIT;
        while !try_lock() {
            if Instant::now() >= deadline {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
                    format!(
                        "the audit sequencer stayed busy for {} s; try again",
                        LOCK_WAIT.as_secs()
                    ),
                    "Another transaction is integrating audit entries; it holds the sequencer only until it commits."
                );
            }
            pgrx::check_for_interrupts!();
            std::thread::sleep(Duration::from_millis(10));
        }
        integrate_locked(true)
    })
}

/// Integrates what this transaction's snapshot sees: committed entries and,
/// if `own`, this transaction's own. Appends pass `own = false`, so an
/// entry is placed only once committed and positions follow commit order
/// (between integrations; within one, arrival order). An explicit integration
/// places the caller's own entries too, so a transaction can prove what it
/// wrote before it commits (if it rolls back, their positions roll back too).
fn integrate_locked(own: bool) -> u64 {
    let mut size = tree_size();
    let mut frontier = Frontier::from_nodes(size, &mut node_at);
    let mut total = 0;
    let mut scratch = Vec::new();
    let mut after_id = 0i64;
    loop {
        // The key column is the id: these entries have no position yet.
        let (mut ids, mut seqs, mut leaves) = (Vec::new(), Vec::new(), Vec::new());
        let (mut levels, mut idxs, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        let mut fetched = 0;
        spi::scan(
            Visibility::Latest,
            &format!(
                "SELECT id, {ENTRY_COLUMNS}, xmin FROM kakunin.audit_log
                 WHERE seq IS NULL AND id OPERATOR(pg_catalog.>) {after_id} ORDER BY id LIMIT {BATCH}"
            ),
            &[],
            BATCH,
            |row| {
                fetched += 1;
                let (entry, _) = entry_at(row);
                after_id = entry.seq as i64;
                let xmin = row.get::<pg_sys::TransactionId>(9).unwrap_or_default();
                // SAFETY: a plain lookup in this backend's transaction state.
                if !own && unsafe { pg_sys::TransactionIdIsCurrentTransactionId(xmin) } {
                    return ControlFlow::Continue(());
                }
                let Ok(leaf) = EntryRef { seq: size, ..entry }.leaf_hash(&mut scratch) else {
                    return ControlFlow::Break(entry.seq);
                };
                for (level, idx, hash) in frontier.push_completing(leaf) {
                    levels.push(level as i16);
                    idxs.push(idx as i64);
                    hashes.push(hash.to_vec());
                }
                ids.push(entry.seq as i64);
                seqs.push(size as i64);
                leaves.push(leaf.to_vec());
                size += 1;
                ControlFlow::Continue(())
            },
        )
        .inspect(|id| {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!("audit entry id {id} has a payload that is not JSON")
            );
        });
        if fetched == 0 {
            return total;
        }
        total += ids.len() as u64;
        // Bounds the join to this batch's range of the pending index.
        let (first_id, last_id) = (ids.first().copied(), ids.last().copied());
        as_sequencer(|| {
            spi::connect_mut(|client| {
                client.update(
                    "UPDATE kakunin.audit_log a SET seq = u.seq, leaf_hash = u.h
                     FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::bigint[]),
                                     pg_catalog.unnest($3::bytea[])) AS u(id, seq, h)
                     WHERE a.id OPERATOR(pg_catalog.=) u.id AND a.seq IS NULL
                       AND a.id OPERATOR(pg_catalog.>=) $4 AND a.id OPERATOR(pg_catalog.<=) $5",
                    None,
                    &[ids.into(), seqs.into(), leaves.into(), first_id.into(), last_id.into()],
                )?;
                client.update(
                    "INSERT INTO kakunin.audit_tree (level, idx, hash)
                     SELECT * FROM ROWS FROM (pg_catalog.unnest($1::smallint[]),
                                              pg_catalog.unnest($2::bigint[]), pg_catalog.unnest($3::bytea[]))",
                    None,
                    &[levels.into(), idxs.into(), hashes.into()],
                )?;
                Ok::<_, pgrx::spi::Error>(())
            })
        })
        .unwrap_or_else(|e| spi_failed("integrate audit entries", e));
    }
}
