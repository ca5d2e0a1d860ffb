//! `kakunin.verify_audit_log()`, inclusion and consistency proofs, and the
//! evidence bundle an outside auditor checks offline with `verify-evidence`.

use kakunin_core::audit::{self, Entry};
use kakunin_core::merkle::{
    consistency_proof_from_nodes, inclusion_proof_from_nodes, Frontier, Hash,
};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use serde_json::{json, Value};

use super::checkpoints::root;
use super::{node_at, read_entry, sequencer, tree_size, ENTRY_COLUMNS};
use crate::error::{spi_failed, KakuninError, OrRaise};
use crate::privilege;

fn hex_list(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

/// `kakunin.verify_audit_log() → jsonb {ok, entries, checkpoints, first_bad_seq, reason}`:
/// recomputes every leaf and the tree, and checks every checkpoint's root and
/// signature. Read-only on a standby or in a read-only transaction (it then
/// verifies what is integrated; elsewhere it integrates first).
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn verify_audit_log() -> pgrx::JsonB {
    if privilege::writable() {
        sequencer::integrate();
    }
    pgrx::JsonB(privilege::as_extension_owner(verify))
}

fn verify() -> Value {
    let key = super::checkpoints::verifying_key();
    let checkpoints: Vec<(u64, Vec<u8>, Vec<u8>)> = Spi::connect(|client| {
        client
            .select("SELECT tree_size, root_hash, signature FROM kakunin.audit_checkpoints ORDER BY tree_size", None, &[])?
            .map(|r| Ok((r.get::<i64>(1)?.unwrap_or(0) as u64, r.get::<Vec<u8>>(2)?.unwrap_or_default(), r.get::<Vec<u8>>(3)?.unwrap_or_default())))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| spi_failed("read the audit checkpoints", e));

    let fail = |entries: u64, seq: Option<u64>, reason: String| json!({"ok": false, "entries": entries, "checkpoints": checkpoints.len(), "first_bad_seq": seq, "reason": reason});
    let mut frontier = Frontier::new();
    let next_checkpoint = std::cell::Cell::new(0usize);
    // Checks every checkpoint whose size the frontier has just reached.
    let check_checkpoints = |frontier: &Frontier| -> Option<Value> {
        while let Some((size, root_hash, signature)) = checkpoints.get(next_checkpoint.get()) {
            if *size != frontier.size() {
                return None;
            }
            let bad = size.saturating_sub(1);
            if frontier.root().as_slice() != root_hash.as_slice() {
                return Some(fail(
                    frontier.size(),
                    Some(bad),
                    format!("checkpoint at tree size {size} no longer matches the entries"),
                ));
            }
            let signed = key.as_ref().is_some_and(|(public, name)| {
                let body = audit::Checkpoint {
                    origin: name.clone(),
                    tree_size: *size,
                    root: frontier.root(),
                }
                .body();
                audit::verify_signature(public, body.as_bytes(), signature)
            });
            if !signed {
                return Some(fail(
                    frontier.size(),
                    Some(bad),
                    format!("checkpoint at tree size {size} has an invalid signature"),
                ));
            }
            next_checkpoint.set(next_checkpoint.get() + 1);
        }
        None
    };
    let result = Spi::connect(|client| {
        if let Some(failure) = check_checkpoints(&frontier) {
            return Ok(Some(failure));
        }
        let mut cursor = client.open_cursor(
            &format!(
                "SELECT seq, {ENTRY_COLUMNS} FROM kakunin.audit_log WHERE seq IS NOT NULL ORDER BY seq"
            ),
            &[],
        );
        loop {
            let batch = cursor.fetch(10_000)?;
            if batch.is_empty() {
                break;
            }
            for row in batch {
                let (entry, stored) = read_entry(&row)?;
                let expected = frontier.size();
                if entry.seq != expected {
                    let why = if entry.seq < expected {
                        "duplicated"
                    } else {
                        "missing"
                    };
                    let bad = if entry.seq < expected {
                        entry.seq
                    } else {
                        expected
                    };
                    return Ok(Some(fail(
                        expected,
                        Some(bad),
                        format!("seq {bad} is {why}"),
                    )));
                }
                let leaf = entry.leaf_hash();
                if leaf.as_slice() != stored.as_slice() {
                    return Ok(Some(fail(
                        expected,
                        Some(entry.seq),
                        format!("entry {} no longer matches its leaf hash", entry.seq),
                    )));
                }
                frontier.push(leaf);
                if let Some(failure) = check_checkpoints(&frontier) {
                    return Ok(Some(failure));
                }
            }
        }
        if let Some((size, _, _)) = checkpoints.get(next_checkpoint.get()) {
            let bad = frontier.size();
            return Ok(Some(fail(
                bad,
                Some(bad),
                format!("checkpoint at tree size {size} covers entries that are missing"),
            )));
        }
        Ok::<_, pgrx::spi::Error>(None)
    })
    .unwrap_or_else(|e| spi_failed("verify the audit log", e));
    result.unwrap_or_else(|| {
        json!({"ok": true, "entries": frontier.size(), "checkpoints": checkpoints.len(), "first_bad_seq": null, "reason": null})
    })
}

fn latest_checkpoint_size() -> Option<u64> {
    crate::spi_plans::select_one::<i64>("SELECT max(tree_size) FROM kakunin.audit_checkpoints", &[])
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
) -> pgrx::JsonB {
    let seq = seq.ok_or(KakuninError::NullArgument("seq")).or_raise();
    pgrx::JsonB(privilege::as_extension_owner(|| {
        let integrated = super::tree_size();
        let size = tree_size
            .map(|s| s as u64)
            .or_else(latest_checkpoint_size)
            .unwrap_or(integrated);
        if size > integrated {
            KakuninError::InvalidArgument(format!(
                "tree_size {size} exceeds the {integrated} integrated entries"
            ))
            .raise();
        }
        let proof = inclusion_proof_from_nodes(seq as u64, size, &mut node_at)
            .map_err(|e| KakuninError::InvalidArgument(e.to_string()))
            .or_raise();
        json!({
            "seq": seq,
            "tree_size": size,
            "leaf_hash": hex::encode(node_at(0, seq as u64)),
            "root_hash": hex::encode(root(size)),
            "proof": hex_list(&proof),
        })
    }))
}

/// `kakunin.audit_consistency_proof(old_size, new_size) → jsonb`: RFC 6962
/// PROOF(old_size, D[new_size]), so a holder of an old checkpoint can check
/// that the new tree extends it.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn audit_consistency_proof(old_size: Option<i64>, new_size: Option<i64>) -> pgrx::JsonB {
    let old = old_size
        .ok_or(KakuninError::NullArgument("old_size"))
        .or_raise() as u64;
    let new = new_size
        .ok_or(KakuninError::NullArgument("new_size"))
        .or_raise() as u64;
    pgrx::JsonB(privilege::as_extension_owner(|| {
        let integrated = tree_size();
        if new > integrated {
            KakuninError::InvalidArgument(format!(
                "new_size {new} exceeds the {integrated} integrated entries"
            ))
            .raise();
        }
        let proof = consistency_proof_from_nodes(old, new, &mut node_at)
            .map_err(|e| KakuninError::InvalidArgument(e.to_string()))
            .or_raise();
        json!({
            "old_size": old,
            "new_size": new,
            "old_root": hex::encode(root(old)),
            "new_root": hex::encode(root(new)),
            "proof": hex_list(&proof),
        })
    }))
}

/// `kakunin.export_evidence(from_ts, to_ts) → jsonb`: the entries of the
/// window with an inclusion proof each against a freshly signed checkpoint,
/// and the public key: everything `verify-evidence` needs, nothing to trust.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn export_evidence(
    from_ts: Option<TimestampWithTimeZone>,
    to_ts: Option<TimestampWithTimeZone>,
) -> pgrx::JsonB {
    let from_ts = from_ts
        .ok_or(KakuninError::NullArgument("from_ts"))
        .or_raise();
    let to_ts = to_ts.ok_or(KakuninError::NullArgument("to_ts")).or_raise();
    let note = Spi::get_one::<String>("SELECT kakunin.audit_checkpoint_note()")
        .unwrap_or_else(|e| spi_failed("sign a checkpoint", e))
        .unwrap_or_default();
    let public_key = Spi::get_one::<String>("SELECT kakunin.audit_public_key()")
        .unwrap_or_else(|e| spi_failed("read the audit public key", e))
        .unwrap_or_default();
    pgrx::JsonB(privilege::as_extension_owner(|| {
        let size = latest_checkpoint_size().unwrap_or(0);
        let entries: Vec<(Entry, Vec<u8>)> = Spi::connect(|client| {
            client
                .select(
                    &format!(
                        "SELECT seq, {ENTRY_COLUMNS} FROM kakunin.audit_log
                         WHERE seq OPERATOR(pg_catalog.<) $1 AND ts OPERATOR(pg_catalog.>=) $2 AND ts OPERATOR(pg_catalog.<) $3
                         ORDER BY seq"
                    ),
                    None,
                    &[(size as i64).into(), from_ts.into(), to_ts.into()],
                )?
                .map(|row| read_entry(&row))
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| spi_failed("read audit entries", e));
        let items: Vec<Value> = entries
            .into_iter()
            .map(|(entry, _)| {
                let proof =
                    inclusion_proof_from_nodes(entry.seq, size, &mut node_at).unwrap_or_default();
                json!({
                    "seq": entry.seq,
                    "ts_micros": entry.ts_micros,
                    "tenant_id": entry.tenant_id,
                    "actor_id": entry.actor_id,
                    "request_id": entry.request_id,
                    "action": entry.action,
                    "payload": entry.payload,
                    "proof": hex_list(&proof),
                })
            })
            .collect();
        json!({
            "format": "kakunin-evidence/v1",
            "verifier_key": public_key,
            "checkpoint": note,
            "entries": items,
        })
    }))
}
