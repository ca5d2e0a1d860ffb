//! kakunin_pg: agent identity for row-level security.
//!
//! Folders by domain, dependencies pointing one way (`scripts/layers.sh`
//! checks): `pg/` (PostgreSQL plumbing) ← `audit/` ← `revocation/` ←
//! `identity/` ← `api_keys/` ← `postgrest`, `sandbox/`, `authoring/`. `gucs` (every setting) and
//! `upgrade` (symbols older catalogs call) sit beside them.
//!
//! - `pg/`: errors and SQLSTATEs, the SPI door, fmgr, privilege, cache invalidation, clock.
//! - `audit/`: the tamper-evident log (append, guard, sequencer, checkpoints, proofs, worker).
//! - `revocation/`: status registry, trust anchors, CRLs, webhooks, verify endpoint, key status.
//! - `identity/`: the binding, certificate validation, bind, live status, policy helpers.
//! - `api_keys/`: API key functions, who may manage keys, their rows.
//! - `postgrest`: `kakunin.pre_request()` and `kakunin.current_request_id()`.
//! - `sandbox/`: `kakunin.execute_as_agent()`, agent SQL as a restricted role.
//! - `shared_memory`: `kakunin.shared_memory()`, what the preloaded library keeps there.
//! - `authoring/`: for policy authors: the test CA kit and `kakunin.adopt_sql_helpers()`.

// `SqlResult`'s error is pgrx's `ErrorReport`, which pgrx raises with its
// SQLSTATE only when returned unboxed (a `Box` would become 22000); it is made
// once per failed call, so its size costs nothing that matters.
#![allow(clippy::result_large_err)]

use pgrx::prelude::*;

mod api_keys;
mod audit;
mod authoring;
mod gucs;
mod identity;
mod pg;
mod postgrest;
mod revocation;
mod sandbox;
mod shared_memory;
mod upgrade;

::pgrx::pg_module_magic!(name, version);

// Each domain's SQL: its tables and C functions, and the grants and comments
// of its generated functions, which it therefore follows (`requires`).
pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!(
    "../sql/identity.sql",
    name = "identity",
    requires = [
        identity::bind::bind_agent,
        identity::bind::bind_agent_serial,
        identity::bind::validate_certificate,
        identity::policy_helpers::kakunin_scope,
        identity::policy_helpers::kakunin_key_id,
        identity::policy_helpers::authorize,
    ]
);
pgrx::extension_sql_file!(
    "../sql/revocation.sql",
    name = "revocation",
    requires = [
        revocation::trust::add_trust_anchor,
        revocation::trust::remove_trust_anchor,
        revocation::registry::set_certificate_status,
        revocation::registry::set_agent_status,
        revocation::webhooks::set_webhook_secret,
        revocation::webhooks::handle_webhook,
        revocation::crl::load_crl,
        revocation::verify_endpoint::verify_endpoint_stats,
    ]
);
pgrx::extension_sql_file!(
    "../sql/api_keys.sql",
    name = "api_keys",
    requires = [
        "identity",
        api_keys::functions::create_api_key,
        api_keys::functions::verify_api_key,
        api_keys::functions::bind_api_key,
        api_keys::functions::revoke_api_key,
        api_keys::functions::rotate_api_key,
        api_keys::functions::update_api_key_claims,
    ]
);
pgrx::extension_sql_file!(
    "../sql/postgrest.sql",
    name = "postgrest",
    requires = [postgrest::pre_request]
);
pgrx::extension_sql_file!("../sql/sandbox.sql", name = "sandbox");
pgrx::extension_sql_file!(
    "../sql/shared_memory.sql",
    name = "shared_memory",
    requires = [shared_memory::shared_memory]
);
pgrx::extension_sql_file!(
    "../sql/test_ca.sql",
    name = "test_ca",
    requires = [
        "revocation",
        authoring::test_ca::enable_test_ca,
        authoring::test_ca::issue_test_certificate,
        authoring::test_ca::disable_test_ca,
    ]
);
pgrx::extension_sql_file!("../sql/adopt_sql_helpers.sql", name = "adopt_sql_helpers");
pgrx::extension_sql_file!(
    "../sql/advisor.sql",
    name = "advisor",
    requires = ["identity", "test_ca"]
);
pgrx::extension_sql_file!(
    "../sql/audit.sql",
    name = "audit",
    requires = [
        "identity",
        "postgrest",
        audit::maintenance::audit_lag,
        audit::maintenance::audit_integrate,
        audit::checkpoints::audit_checkpoint,
        audit::checkpoints::audit_checkpoint_note,
        audit::checkpoints::audit_public_key,
        audit::verification::verify_audit_log,
        audit::verification::audit_inclusion_proof,
        audit::verification::audit_consistency_proof,
        audit::verification::export_evidence,
    ]
);

/// Declares schema `kakunin` to pgrx so `#[pg_extern(schema = "kakunin")]`
/// can refer to it; `sql/bootstrap.sql` creates it first, owned by the extension.
#[pg_schema]
mod kakunin {}

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Errors go to clients: never with a Rust backtrace (build paths, frames),
    // whatever RUST_BACKTRACE the server was started with. RUST_LIB_BACKTRACE
    // takes precedence over it for captured backtraces. The library loads
    // before any thread of ours exists.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    gucs::init();
    pg::init();
    revocation::init();
    identity::init();
    audit::init();
}

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
