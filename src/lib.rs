//! kakunin_pg: agent identity for row-level security.
//!
//! - `binding_setting`: where a binding lives for the transaction, unforgeably.
//! - `audit`: the tamper-evident audit log (sequencer, checkpoints, proofs).
//! - `api_keys`: API keys (create, verify, bind, rotate, revoke) and `authorize()`.
//! - `bind`: `kakunin.bind_agent[_session]`, `kakunin.validate_certificate`.
//! - `crl`: `kakunin.load_crl`, the offline revocation channel.
//! - `certificate`: the validation engine (profile, path, status) and its cache.
//! - `postgrest`: `kakunin.pre_request()` for PostgREST / Supabase.
//! - `helpers`: the policy helpers (`kakunin_agent_id()` and friends).
//! - `registry`: certificate status (`kakunin.certificate_status`).
//! - `invalidation`: cross-session cache invalidation through relcache messages.
//! - `fmgr`: plain version-1 entry points for the hottest functions.
//! - `trust`: trust anchors.
//! - `verify_endpoint`: the CA's online verify endpoint, cached.
//! - `webhooks`: signed CA webhooks feeding the registry.
//! - `spi_plans`: SPI with kept plans and an explicit visibility (parallel-safe reads).
//! - `privilege`: gateway membership, admin checks, acting as the owner.

use pgrx::prelude::*;

mod api_keys;
mod audit;
mod bind;
mod binding_setting;
mod certificate;
mod crl;
mod error;
mod fmgr;
mod helpers;
mod invalidation;
mod postgrest;
mod privilege;
mod registry;
mod spi_plans;
mod trust;
mod verify_endpoint;
mod webhooks;

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
    binding_setting::register();
    invalidation::register();
    verify_endpoint::register();
    audit::checkpoints::register();
    audit::worker::register();
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
