//! The policy helpers RLS policies call. They live in the schema given to
//! `CREATE EXTENSION` (default `public`) so an unqualified call finds them.
//! All are STABLE and PARALLEL SAFE; with nothing bound they return NULL, or an
//! empty array for the list helpers, so a policy admits nothing.
//!
//! Values come from the binding parsed once per change (see
//! `binding_setting`); the certificate status is re-read from the registry once
//! per statement, so a revocation reaches the very next statement.

use kakunin_core::binding::CertStatus;
use pgrx::prelude::*;

use crate::binding_setting::current;
use crate::registry::bound_status;

/// The bound agent's id.
#[pg_extern(stable, parallel_safe)]
fn kakunin_agent_id() -> Option<String> {
    current().map(|b| b.agent_id.clone())
}

/// The bound certificate's status: active, suspended, retired, revoked or expired.
#[pg_extern(stable, parallel_safe)]
fn kakunin_cert_status() -> Option<&'static str> {
    current().map(|b| bound_status(&b).as_str())
}

/// The agent id while the certificate is active, else NULL: the fail-closed helper.
#[pg_extern(stable, parallel_safe)]
fn kakunin_active_agent_id() -> Option<String> {
    current()
        .filter(|b| bound_status(b) == CertStatus::Active)
        .map(|b| b.agent_id.clone())
}

/// Instruments the bound certificate's financial scope permits (empty if none).
#[pg_extern(stable, parallel_safe)]
fn kakunin_permitted_instruments() -> Vec<String> {
    current().map(|b| b.instruments.clone()).unwrap_or_default()
}

/// Venues the bound certificate's financial scope permits (empty if none).
#[pg_extern(stable, parallel_safe)]
fn kakunin_permitted_venues() -> Vec<String> {
    current().map(|b| b.venues.clone()).unwrap_or_default()
}

/// The whole financial scope, limits included.
#[pg_extern(stable, parallel_safe)]
fn kakunin_scope() -> Option<pgrx::JsonB> {
    current().map(|b| pgrx::JsonB(b.scope.clone()))
}

/// The bound agent's tenant.
#[pg_extern(stable, parallel_safe)]
fn kakunin_tenant_id() -> Option<String> {
    current().and_then(|b| b.tenant_id.clone())
}

/// The bound certificate's serial, lowercase hex.
#[pg_extern(stable, parallel_safe)]
fn kakunin_cert_serial() -> Option<String> {
    current().map(|b| b.serial.clone())
}
