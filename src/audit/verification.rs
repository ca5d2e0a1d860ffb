//! `kakunin.verify_audit_log()`, inclusion and consistency proofs, and the
//! evidence bundle an outside auditor checks offline with `verify-evidence`.

use kakunin_core::audit::EntryRef;
use kakunin_core::canonical_json;
use kakunin_core::log_verification::{Failure, LogVerifier, NodeDigests, StoredCheckpoint};
use kakunin_core::merkle::{consistency_proof_from_nodes, inclusion_proof_from_nodes, Hash};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Value};
use std::ops::{ControlFlow, Range};

use super::checkpoints::root;
use super::{entry_at, node_at, sequencer, tree_size, ENTRY_COLUMNS};
use crate::pg::error::{self, required, spi_failed, KakuninError, SqlResult};
use crate::pg::privilege;
use crate::pg::spi::{self, Visibility};

fn hex_list(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

/// `kakunin.verify_audit_log() → jsonb {ok, entries, checkpoints, first_bad_seq, reason}`:
/// recomputes every leaf and the tree, and checks every checkpoint's root and
/// signature. It verifies what is integrated; called by a `kakunin_admin`
/// member in a writable transaction, it integrates first (see `sequencer`).
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn verify_audit_log() -> pgrx::JsonB {
    if privilege::writable() && privilege::is_admin() {
        sequencer::integrate();
    }
    pgrx::JsonB(privilege::as_extension_owner(verify))
}

/// Rows copied out of SPI into one buffer, so that another thread can hash
/// them while this one reads the next batch.
#[derive(Default)]
struct Batch {
    text: String,
    rows: Vec<BatchRow>,
}

struct BatchRow {
    seq: u64,
    ts_micros: i64,
    /// Byte ranges in `text`.
    tenant_id: Option<Range<usize>>,
    actor_id: Range<usize>,
    request_id: Option<Range<usize>>,
    action: Range<usize>,
    payload: Range<usize>,
    /// None when absent or not 32 bytes: it can match no leaf.
    stored_leaf: Option<Hash>,
}

const VERIFY_BATCH: usize = 10_000;

impl Batch {
    fn add(&mut self, entry: &EntryRef, stored_leaf: Option<&[u8]>) {
        let mut put = |s: &str| {
            let start = self.text.len();
            self.text.push_str(s);
            start..self.text.len()
        };
        let row = BatchRow {
            seq: entry.seq,
            ts_micros: entry.ts_micros,
            tenant_id: entry.tenant_id.map(&mut put),
            actor_id: put(entry.actor_id),
            request_id: entry.request_id.map(&mut put),
            action: put(entry.action),
            payload: put(entry.payload),
            stored_leaf: stored_leaf.and_then(|l| l.try_into().ok()),
        };
        self.rows.push(row);
    }

    fn entry(&self, row: &BatchRow) -> EntryRef<'_> {
        let text = |r: &Range<usize>| &self.text[r.clone()];
        EntryRef {
            seq: row.seq,
            ts_micros: row.ts_micros,
            tenant_id: row.tenant_id.as_ref().map(text),
            actor_id: text(&row.actor_id),
            request_id: row.request_id.as_ref().map(text),
            action: text(&row.action),
            payload: text(&row.payload),
        }
    }
}

/// Reads entries in position order in this thread (SPI) and checks them in
/// another (pure Rust: canonical bytes, hashes, tree, signatures), so reading
/// and hashing overlap.
fn verify() -> Value {
    let key = super::checkpoints::verifying_key();
    let checkpoints: Vec<StoredCheckpoint> = spi::connect(|client| {
        client
            .select(
                "SELECT tree_size, root_hash, signature FROM kakunin.audit_checkpoints",
                None,
                &[],
            )?
            .map(|r| {
                Ok(StoredCheckpoint {
                    tree_size: r.get::<i64>(1)?.unwrap_or(0) as u64,
                    root_hash: r.get::<Vec<u8>>(2)?.unwrap_or_default(),
                    signature: r.get::<Vec<u8>>(3)?.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| spi_failed("read the audit checkpoints", e));
    let checkpoint_count = checkpoints.len();

    let (sender, receiver) = std::sync::mpsc::sync_channel::<Batch>(2);
    let checker = std::thread::spawn(move || {
        let mut verifier = LogVerifier::new(checkpoints, key);
        for batch in receiver {
            for row in &batch.rows {
                verifier.push(
                    &batch.entry(row),
                    row.stored_leaf.as_ref().map(|l| l.as_slice()),
                )?;
            }
        }
        verifier.finish()
    });
    let mut batch = Batch::default();
    spi::scan(
        Visibility::Latest,
        &format!(
            "SELECT seq, {ENTRY_COLUMNS} FROM kakunin.audit_log WHERE seq IS NOT NULL ORDER BY seq"
        ),
        &[],
        VERIFY_BATCH as i64,
        |row| {
            let (entry, stored_leaf) = entry_at(row);
            batch.add(&entry, stored_leaf);
            if batch.rows.len() == VERIFY_BATCH {
                // The checker stops at the first failure: nothing more to read.
                if sender.send(std::mem::take(&mut batch)).is_err() {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        },
    );
    let _ = sender.send(batch);
    drop(sender);
    let outcome = checker
        .join()
        .unwrap_or_else(|_| pgrx::error!("kakunin_pg: the audit log checker failed"))
        .and_then(|(entries, implied)| {
            // Every stored interior node the verified entries complete must be
            // what they imply: proofs are built from these nodes (issue 14).
            stored_nodes(entries)
                .and_then(|stored| implied.compare(&stored))
                .map(|()| entries)
                .map_err(|reason| Failure {
                    entries,
                    first_bad_seq: entries.saturating_sub(1),
                    reason,
                })
        });
    match outcome {
        Ok(entries) => {
            json!({"ok": true, "entries": entries, "checkpoints": checkpoint_count, "first_bad_seq": null, "reason": null})
        }
        Err(failure) => json!({
            "ok": false, "entries": failure.entries, "checkpoints": checkpoint_count,
            "first_bad_seq": failure.first_bad_seq, "reason": failure.reason,
        }),
    }
}

/// Digests of the stored interior nodes of the tree of `size` entries, read in
/// (level, idx) order (the primary key's), skipping nodes of a larger tree
/// that a concurrent integration may have added since the entries were read.
fn stored_nodes(size: u64) -> Result<NodeDigests, String> {
    let mut digests = NodeDigests::default();
    let mut bad = None;
    spi::scan(
        Visibility::Latest,
        "SELECT level, idx, hash FROM kakunin.audit_tree
         WHERE (idx OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.*) (1::bigint OPERATOR(pg_catalog.<<) level)
               OPERATOR(pg_catalog.<=) $1
         ORDER BY level, idx",
        &[(
            pg_sys::INT8OID,
            (size as i64).into_datum(),
        )],
        VERIFY_BATCH as i64,
        |row| {
            let level = row.get::<i16>(1).unwrap_or(0) as u32;
            let idx = row.get::<i64>(2).unwrap_or(-1) as u64;
            match digests.push(level, idx, row.bytes(3).unwrap_or_default()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    bad = Some(e);
                    ControlFlow::Break(())
                }
            }
        },
    );
    bad.map_or(Ok(digests), Err)
}

/// A position or size as the caller gave it, refused (`22023`) if negative.
fn non_negative(name: &str, value: i64) -> error::Result<u64> {
    u64::try_from(value).map_err(|_| {
        KakuninError::InvalidArgument(format!("{name} must be 0 or more (got {value})"))
    })
}

fn latest_checkpoint_size() -> Option<u64> {
    spi::select_one::<i64>("SELECT max(tree_size) FROM kakunin.audit_checkpoints", &[])
        .unwrap_or_else(|e| spi_failed("read the audit checkpoints", e))
        .map(|s| s as u64)
}

/// `kakunin.audit_inclusion_proof(seq, tree_size DEFAULT NULL) → jsonb`: the
/// RFC 6962 audit path of entry `seq` in the tree of `tree_size` entries
/// (default: the latest checkpoint's size, so it checks against a signed head).
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn audit_inclusion_proof(
    seq: Option<i64>,
    tree_size: default!(Option<i64>, "NULL"),
) -> SqlResult<pgrx::JsonB> {
    let seq = non_negative("seq", required(seq, "seq")?)?;
    let tree_size = tree_size
        .map(|s| non_negative("tree_size", s))
        .transpose()?;
    Ok(pgrx::JsonB(privilege::as_extension_owner(|| {
        let integrated = super::tree_size();
        let size = tree_size
            .or_else(latest_checkpoint_size)
            .unwrap_or(integrated);
        if size > integrated {
            return Err(KakuninError::InvalidArgument(format!(
                "tree_size {size} exceeds the {integrated} integrated entries"
            )));
        }
        let proof = inclusion_proof_from_nodes(seq, size, &mut node_at)
            .map_err(|e| KakuninError::InvalidArgument(e.to_string()))?;
        Ok(json!({
            "seq": seq,
            "tree_size": size,
            "leaf_hash": hex::encode(node_at(0, seq)),
            "root_hash": hex::encode(root(size)),
            "proof": hex_list(&proof),
        }))
    })?))
}

/// `kakunin.audit_consistency_proof(old_size, new_size) → jsonb`: RFC 6962
/// PROOF(old_size, D[new_size]), so a holder of an old checkpoint can check
/// that the new tree extends it.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn audit_consistency_proof(old_size: Option<i64>, new_size: Option<i64>) -> SqlResult<pgrx::JsonB> {
    let old = non_negative("old_size", required(old_size, "old_size")?)?;
    let new = non_negative("new_size", required(new_size, "new_size")?)?;
    Ok(pgrx::JsonB(privilege::as_extension_owner(|| {
        let integrated = tree_size();
        if new > integrated {
            return Err(KakuninError::InvalidArgument(format!(
                "new_size {new} exceeds the {integrated} integrated entries"
            )));
        }
        let proof = consistency_proof_from_nodes(old, new, &mut node_at)
            .map_err(|e| KakuninError::InvalidArgument(e.to_string()))?;
        Ok(json!({
            "old_size": old,
            "new_size": new,
            "old_root": hex::encode(root(old)),
            "new_root": hex::encode(root(new)),
            "proof": hex_list(&proof),
        }))
    })?))
}

/// `kakunin.export_evidence(from_ts, to_ts) → jsonb`: the entries of the
/// window with an inclusion proof each against a freshly signed checkpoint,
/// and the public key: everything `verify-evidence` needs, nothing to trust.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn export_evidence(
    from_ts: Option<TimestampWithTimeZone>,
    to_ts: Option<TimestampWithTimeZone>,
) -> SqlResult<pgrx::JsonB> {
    let from_ts = required(from_ts, "from_ts")?;
    let to_ts = required(to_ts, "to_ts")?;
    let note = spi::get_one::<String>("SELECT kakunin.audit_checkpoint_note()", &[])
        .unwrap_or_else(|e| spi_failed("sign a checkpoint", e))
        .unwrap_or_default();
    let public_key = spi::get_one::<String>("SELECT kakunin.audit_public_key()", &[])
        .unwrap_or_else(|e| spi_failed("read the audit public key", e))
        .unwrap_or_default();
    Ok(pgrx::JsonB(privilege::as_extension_owner(|| {
        let size = latest_checkpoint_size().unwrap_or(0);
        let mut entries = Vec::new();
        let refused = spi::scan(
            Visibility::Latest,
            &format!(
                "SELECT seq, {ENTRY_COLUMNS} FROM kakunin.audit_log
                 WHERE seq OPERATOR(pg_catalog.<) $1 AND ts OPERATOR(pg_catalog.>=) $2 AND ts OPERATOR(pg_catalog.<) $3
                 ORDER BY seq"
            ),
            &[
                (pgrx::pg_sys::INT8OID, (size as i64).into_datum()),
                (pgrx::pg_sys::TIMESTAMPTZOID, from_ts.into_datum()),
                (pgrx::pg_sys::TIMESTAMPTZOID, to_ts.into_datum()),
            ],
            1_000,
            |row| {
                let entry = entry_at(row).0;
                // Every entry of the window or an error: never a bundle that
                // silently lacks one (issue 15). Only an entry written before
                // the payload limit existed can be refused here.
                let seq = entry.seq;
                let depth = canonical_json::nesting_depth(entry.payload);
                let refused = if depth > canonical_json::MAX_DEPTH {
                    Err(format!(
                        "it nests {depth} levels deep (at most {})",
                        canonical_json::MAX_DEPTH
                    ))
                } else {
                    entry.to_entry().map_err(|e| e.to_string())
                };
                match refused {
                    Ok(entry) => {
                        entries.push(entry);
                        ControlFlow::Continue(())
                    }
                    Err(e) => ControlFlow::Break(KakuninError::InvalidArgument(format!(
                        "audit entry {seq} cannot be exported: its payload is refused ({e})"
                    ))),
                }
            },
        );
        if let Some(refused) = refused {
            return Err(refused);
        }
        let items = entries
            .into_iter()
            .map(|entry| {
                let proof =
                    inclusion_proof_from_nodes(entry.seq, size, &mut node_at).map_err(|e| {
                        KakuninError::InvalidArgument(format!(
                            "no inclusion proof for audit entry {}: {e}",
                            entry.seq
                        ))
                    })?;
                Ok(json!({
                    "seq": entry.seq,
                    "ts_micros": entry.ts_micros,
                    "tenant_id": entry.tenant_id,
                    "actor_id": entry.actor_id,
                    "request_id": entry.request_id,
                    "action": entry.action,
                    "payload": entry.payload,
                    "proof": hex_list(&proof),
                }))
            })
            .collect::<error::Result<Vec<Value>>>()?;
        Ok(json!({
            "format": "kakunin-evidence/v1",
            "verifier_key": public_key,
            "checkpoint": note,
            "entries": items,
        }))
    })?))
}
