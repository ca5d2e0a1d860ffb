//! `kakunin.shared_memory()`: what the preloaded library keeps in shared
//! memory (issue 11), for operators sizing `kakunin.proof_replay_capacity`
//! and `kakunin.verify_cache_capacity`.

use kakunin_core::rfc3339;
use pgrx::prelude::*;
use serde_json::json;

use crate::identity::replay;
use crate::pg::error::SqlResult;
use crate::pg::{privilege, shmem};
use crate::revocation::verify_endpoint;

/// `kakunin.shared_memory() → jsonb`: `{preloaded, started_at, proof_replay,
/// verify_cache}`, each table `{capacity, entries, bytes}` (NULL when not
/// preloaded). `kakunin_admin` only.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn shared_memory() -> SqlResult<pgrx::JsonB> {
    privilege::require_admin("kakunin.shared_memory")?;
    let started = shmem::started_at();
    Ok(pgrx::JsonB(json!({
        "preloaded": started.is_some(),
        "started_at": started.map(rfc3339),
        "proof_replay": replay::usage(),
        "verify_cache": verify_endpoint::shared_usage(),
    })))
}
