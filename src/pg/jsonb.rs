//! `JsonbArg`: a `jsonb` argument read into serde_json, refused in the
//! caller's terms when serde cannot hold it. pgrx's own `JsonB` argument
//! panics instead (XX000, with serde's debug text) on a document nested more
//! than 128 levels deep, which `jsonb` accepts.

use std::ffi::CStr;

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::prelude::*;
use pgrx::{direct_function_call, pg_sys, FromDatum};

/// A `jsonb` argument (SQL type `jsonb`), as a serde_json value.
#[derive(Debug)]
pub struct JsonbArg(pub serde_json::Value);

impl FromDatum for JsonbArg {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: a non-NULL jsonb datum, which jsonb_out detoasts itself; it returns a C string palloc'd in the call's memory context.
        let text = unsafe { direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(datum)]) };
        // The database is UTF8 (CREATE EXTENSION refuses others), so is the text.
        let text = text.and_then(|t| t.to_str().ok()).unwrap_or_default();
        match serde_json::from_str(text) {
            Ok(value) => Some(JsonbArg(value)),
            Err(e) => {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("a jsonb argument cannot be read: {e}"),
                    "Nest arrays and objects at most 127 levels deep."
                );
            }
        }
    }
}

// SAFETY: the argument is PostgreSQL's own jsonb, read above with jsonb_out; it is never returned.
impl_sql_translatable!(JsonbArg, arg_only = "jsonb");

// SAFETY: the argument is unboxed through FromDatum above, NULL as Nullable::Null.
unsafe impl<'fcx> ArgAbi<'fcx> for JsonbArg {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: the argument is a jsonb datum of this call (pgrx's contract for ArgAbi).
        let value = unsafe { arg.unbox_arg_using_from_datum() };
        value.unwrap_or_else(|| {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                format!("argument {} must not be NULL", index + 1)
            );
        })
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        // SAFETY: as above.
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}
