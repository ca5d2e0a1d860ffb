//! How entries enter the log: `kakunin.audit(action, payload)` (as the caller,
//! so the table's policies apply) and [`admin_act`] for what administrators
//! change. An append is a plain INSERT: it takes no lock shared with other
//! writers and never integrates (see `sequencer`).

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::error::{required, spi_failed, Result};
use crate::pg::privilege;
use crate::pg::spi::{self, Visibility};

/// Records an administrative act (trust anchors, statuses, the webhook
/// secret, CRLs, keys made or changed by `kakunin_admin`) as an audit entry
/// whose actor is the role that did it. kakunin_admin members are not trusted
/// to forge bindings silently: whatever they change is in the log (issue 14).
pub fn admin_act(action: &str, payload: serde_json::Value) {
    let actor = format!("role:{}", privilege::current_user_name());
    record(&actor, None, action, payload);
}

/// Appends an entry made by the extension itself, with the actor and tenant
/// given (not the table's defaults), as the extension owner: the caller's own
/// right to append (the table's policies) plays no part.
pub fn record(actor: &str, tenant: Option<&str>, action: &str, payload: serde_json::Value) {
    thread_local! {
        static PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    }
    let text = |s: &str| s.into_datum().unwrap_or(pg_sys::Datum::from(0));
    let payload = pgrx::JsonB(payload)
        .into_datum()
        .unwrap_or(pg_sys::Datum::from(0));
    // The tenant travels as a zero- or one-element array: a kept plan's
    // arguments here carry no NULL flags, and `(array)[1]` is NULL when empty.
    let tenant = tenant
        .map(str::to_string)
        .into_iter()
        .collect::<Vec<String>>()
        .into_datum()
        .unwrap_or(pg_sys::Datum::from(0));
    let args = [tenant, text(actor), text(action), payload];
    let inserted = super::guard::as_extension(|| {
        privilege::as_extension_owner(|| {
            spi::query(
                Visibility::Write,
                &PLAN,
                c"INSERT INTO kakunin.audit_log (tenant_id, actor_id, action, payload)
                  VALUES ($1[1], $2, $3, $4) RETURNING id",
                &[
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::JSONBOID,
                ],
                &args,
                |row| row.get::<i64>(1),
            )
        })
    });
    if inserted.is_empty() {
        spi_failed(
            "record the entry in the audit log",
            pgrx::spi::Error::NoTupleTable,
        );
    }
}

/// `kakunin.audit(action text, payload jsonb DEFAULT '{}') → bigint`: appends
/// an entry (as the caller, so the table's policies apply) and returns its id;
/// its seq follows when the sequencer integrates it. A plain version-1
/// function (declared in `sql/audit.sql`): the arguments go to the INSERT as
/// the datums they came as, with no conversion on the way.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_audit(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: PostgreSQL passes this call's fcinfo, with the two declared arguments.
    let [action, payload] = [0, 1].map(|n| unsafe {
        (!pgrx::fcinfo::pg_arg_is_null(fcinfo, n))
            .then(|| pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n))
    });
    append(action, payload).unwrap_or_else(|e| e.raise()).into()
}

crate::pg::fmgr::fmgr_v1!(pg_finfo_kakunin_audit);

/// Inserts (action, payload) datums (text, jsonb; a NULL payload is `{}`) and
/// returns the entry id. A NULL action is refused.
pub fn append(action: Option<pg_sys::Datum>, payload: Option<pg_sys::Datum>) -> Result<i64> {
    let action = required(action, "action")?;
    let payload = payload.unwrap_or_else(|| {
        pgrx::JsonB(serde_json::json!({}))
            .into_datum()
            .unwrap_or(pg_sys::Datum::from(0))
    });
    thread_local! {
        static PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    }
    Ok(spi::query(
        Visibility::Write,
        &PLAN,
        c"INSERT INTO kakunin.audit_log (action, payload) VALUES ($1, $2) RETURNING id",
        &[pg_sys::TEXTOID, pg_sys::JSONBOID],
        &[action, payload],
        |row| row.get::<i64>(1),
    )
    .into_iter()
    .flatten()
    .next()
    .unwrap_or_default())
}
