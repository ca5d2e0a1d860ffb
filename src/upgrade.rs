//! Symbols kept only for catalogs of older versions: a database still at
//! 0.1.0 calls them until `ALTER EXTENSION kakunin_pg UPDATE` repoints it, and
//! PostgreSQL looks them up when the old functions are dropped.

use pgrx::prelude::*;

use crate::pg::error::SqlResult;
use crate::pg::jsonb::JsonbArg;

/// The audit append under its 0.1.0 symbol (`audit_wrapper`); 0.2.0 made
/// `kakunin.audit` the version-1 function `kakunin_audit`.
#[pg_extern(sql = false)]
fn audit(action: Option<&str>, payload: Option<JsonbArg>) -> SqlResult<i64> {
    Ok(crate::audit::append::append(
        action.and_then(IntoDatum::into_datum),
        payload.and_then(|p| pgrx::JsonB(p.0).into_datum()),
    )?)
}
