//! Signed tree heads: `kakunin.audit_checkpoint()`, the C2SP note, the public
//! key, and the automatic checkpoint every `kakunin.audit_checkpoint_interval`.

use kakunin_core::audit::{self, Checkpoint};
use kakunin_core::merkle::{mth_from_nodes, Hash};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use super::{node_at, sequencer, tree_size};
use crate::gucs;
use crate::pg::error::spi_failed;
use crate::pg::{privilege, spi};

/// The stored signing key (seed, public key, key name), if one exists.
fn stored_key() -> Option<(Vec<u8>, Vec<u8>, String)> {
    spi::connect(|client| {
        let table = client.select(
            "SELECT seed, public_key, key_name FROM kakunin.audit_signing_key",
            None,
            &[],
        )?;
        if table.is_empty() {
            return Ok(None);
        }
        let row = table.first();
        Ok::<_, pgrx::spi::Error>(Some((
            row.get::<Vec<u8>>(1)?.unwrap_or_default(),
            row.get::<Vec<u8>>(2)?.unwrap_or_default(),
            row.get::<String>(3)?.unwrap_or_default(),
        )))
    })
    .unwrap_or_else(|e| spi_failed("read the audit signing key", e))
}

/// The public key and key name checkpoints are verified with, if any.
pub fn verifying_key() -> Option<(Vec<u8>, String)> {
    stored_key().map(|(_, public, name)| (public, name))
}

/// The signing key (seed, public key, key name), created on first use. Called
/// only while signing, which only the sequencer lock's holder does.
fn signing_key() -> (Vec<u8>, Vec<u8>, String) {
    if let Some(key) = stored_key() {
        return key;
    }
    let seed = audit::generate_seed().unwrap_or_else(|e| pgrx::error!("kakunin_pg: {e}"));
    let public = audit::public_key(&seed).unwrap_or_default();
    let name = format!("kakunin/{}", privilege::database_name());
    spi::run(
        "INSERT INTO kakunin.audit_signing_key (seed, public_key, key_name) VALUES ($1, $2, $3)",
        &[
            seed.as_slice().into(),
            public.as_slice().into(),
            name.as_str().into(),
        ],
    )
    .unwrap_or_else(|e| spi_failed("store the audit signing key", e));
    (seed.to_vec(), public, name)
}

/// Root of the first `size` entries.
pub fn root(size: u64) -> Hash {
    mth_from_nodes(0, size, &mut node_at)
}

/// Signs and stores a checkpoint of the whole tree (as the owner); returns it.
fn sign_checkpoint() -> (i64, Vec<u8>, Vec<u8>, String) {
    let size = tree_size();
    let (seed, public, name) = signing_key();
    let checkpoint = Checkpoint {
        origin: name.clone(),
        tree_size: size,
        root: root(size),
    };
    let (signature, _) =
        audit::sign(&seed, checkpoint.body().as_bytes()).unwrap_or_else(|e| pgrx::error!("{e}"));
    let note = checkpoint.note(&name, &public, &signature);
    spi::run(
        "INSERT INTO kakunin.audit_checkpoints (tree_size, root_hash, signature, note)
         VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING",
        &[
            (size as i64).into(),
            checkpoint.root.as_slice().into(),
            signature.as_slice().into(),
            note.as_str().into(),
        ],
    )
    .unwrap_or_else(|e| spi_failed("store the audit checkpoint", e));
    (size as i64, checkpoint.root.to_vec(), signature, note)
}

/// Called by the sequencer's owner context: a checkpoint when entries were
/// integrated past the latest one and it is older than the interval.
pub fn checkpoint_if_due() {
    let due = spi::get_one::<bool>(
        "SELECT coalesce(max(ts) < pg_catalog.now() - pg_catalog.make_interval(secs => $1), true)
                AND coalesce(max(tree_size), 0) < (SELECT coalesce(max(seq) + 1, 0) FROM kakunin.audit_log)
         FROM kakunin.audit_checkpoints",
        &[f64::from(gucs::audit_checkpoint_interval_seconds()).into()],
    )
    .unwrap_or_else(|e| spi_failed("read the audit checkpoints", e))
    .unwrap_or(false);
    if due {
        sign_checkpoint();
    }
}

/// `kakunin.audit_checkpoint() → TABLE(tree_size, root_hash, ts, signature)`:
/// integrates committed entries and signs a checkpoint of the tree.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn audit_checkpoint() -> TableIterator<
    'static,
    (
        name!(tree_size, i64),
        name!(root_hash, Vec<u8>),
        name!(ts, TimestampWithTimeZone),
        name!(signature, Vec<u8>),
    ),
> {
    sequencer::integrate();
    let (size, root, signature, _) = privilege::as_extension_owner(sign_checkpoint);
    let ts = spi::get_one::<TimestampWithTimeZone>(
        "SELECT ts FROM kakunin.audit_checkpoints WHERE tree_size OPERATOR(pg_catalog.=) $1",
        &[size.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        TimestampWithTimeZone::try_from(0i64).unwrap_or_else(|_| pgrx::error!("bad timestamp"))
    });
    TableIterator::once((size, root, ts, signature))
}

/// `kakunin.audit_checkpoint_note() → text`: the latest checkpoint as a C2SP
/// signed note. For a `kakunin_admin` member in a writable transaction, entries
/// are integrated and a new checkpoint signed first if entries arrived since;
/// other roles get the latest signed one (signing and integrating happen only
/// under the sequencer lock, which they never hold).
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn audit_checkpoint_note() -> String {
    let sign = privilege::writable() && privilege::is_admin();
    if sign {
        sequencer::integrate();
    }
    privilege::as_extension_owner(|| {
        let latest =
            spi::get_one::<i64>("SELECT max(tree_size) FROM kakunin.audit_checkpoints", &[])
                .unwrap_or_else(|e| spi_failed("read the audit checkpoints", e));
        if sign && latest != Some(tree_size() as i64) {
            return sign_checkpoint().3;
        }
        if latest.is_none() {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "no audit checkpoint has been signed yet",
                "kakunin.audit_checkpoint() (kakunin_admin) or the background worker signs one."
            );
        }
        spi::get_one::<String>(
            "SELECT note FROM kakunin.audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
            &[],
        )
        .unwrap_or_else(|e| spi_failed("read the audit checkpoints", e))
        .unwrap_or_default()
    })
}

/// `kakunin.audit_public_key() → text`: the checkpoint key as a C2SP verifier
/// key (`<name>+<key hash>+<base64(0x01 || Ed25519 public key)>`).
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn audit_public_key() -> String {
    // Read only: the key is created by the first checkpoint, under the
    // sequencer lock, never in a reader's transaction (whose open insert would
    // make the signer wait).
    let Some((public, name)) = privilege::as_extension_owner(verifying_key) else {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the audit log has no signing key yet",
            "The first checkpoint creates it: kakunin.audit_checkpoint() (kakunin_admin) or the background worker."
        );
    };
    audit::verifier_key(&name, &public)
}
