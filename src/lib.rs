//! kakunin_pg: agent identity for row-level security.
//!
//! Folders by domain, dependencies pointing one way (`scripts/layers.sh`
//! checks): `pg/` (PostgreSQL plumbing) ← `audit/` ← `revocation/` ←
//! `identity/` ← `api_keys/` ← `postgrest`. `gucs` (every setting) and
//! `upgrade` (symbols older catalogs call) sit beside them.
//!
//! - `pg/`: errors and SQLSTATEs, the SPI door, fmgr, privilege, cache invalidation, clock.
//! - `audit/`: the tamper-evident log (append, guard, sequencer, checkpoints, proofs, worker).
//! - `revocation/`: status registry, trust anchors, CRLs, webhooks, verify endpoint, key status.
//! - `identity/`: the binding, certificate validation, bind, live status, policy helpers.
//! - `api_keys/`: API key functions, who may manage keys, their rows.
//! - `postgrest`: `kakunin.pre_request()` and `kakunin.current_request_id()`.

// `SqlResult`'s error is pgrx's `ErrorReport`, which pgrx raises with its
// SQLSTATE only when returned unboxed (a `Box` would become 22000); it is made
// once per failed call, so its size costs nothing that matters.
#![allow(clippy::result_large_err)]

use pgrx::prelude::*;

mod api_keys;
mod audit;
mod gucs;
mod identity;
mod pg;
mod postgrest;
mod revocation;
mod upgrade;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!("../sql/helpers.sql", name = "helpers");
pgrx::extension_sql_file!(
    "../sql/api_keys.sql",
    name = "api_keys",
    requires = ["helpers"]
);
pgrx::extension_sql_file!("../sql/revocation.sql", name = "revocation");
pgrx::extension_sql_file!("../sql/audit.sql", name = "audit", requires = ["helpers"]);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

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
