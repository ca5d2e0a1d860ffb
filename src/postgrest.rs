//! `kakunin.pre_request()`: PostgREST's `db-pre-request` hook.
//!
//! PostgREST runs it in each request's transaction after `SET LOCAL ROLE`.
//! It reads `request.headers` and binds, in this order of precedence:
//! `x-kakunin-certificate` (URL-escaped PEM, as nginx's
//! `$ssl_client_escaped_cert` forwards it) with `x-kakunin-proof`; then
//! `x-api-key`; otherwise nothing, and policies admit no rows. A header that is
//! present but bad raises, so PostgREST answers with an error instead of
//! running the request unbound.
//!
//! The certificate binds without a proof only when the session was opened by a
//! `kakunin_gateway` member (PostgREST's authenticator, made a member only when
//! the proxy in front terminates mTLS and overwrites the header), and only as
//! the transaction's first binding: once an identity is bound, replacing it
//! takes a caller that is a gateway itself (the current role), as everywhere.

use std::ffi::CStr;

use percent_encoding::percent_decode_str;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::Value;

use crate::api_keys::functions::bind_key;
use crate::identity::bind::bind_with;
use crate::identity::binding;
use crate::pg::error::{KakuninError, Result, SqlResult};
use crate::pg::fmgr::return_null;
use crate::pg::privilege;

fn identity(message: impl Into<String>) -> KakuninError {
    KakuninError::identity(message)
}

/// The header `name` of `request.headers`, if present. A present header that
/// is not a string (`{"x-api-key": 5}`) is refused, never ignored: a request
/// must not run unbound because its credential had the wrong JSON type.
fn header<'a>(headers: &'a Value, name: &str) -> Result<Option<&'a str>> {
    match headers.get(name) {
        Some(Value::String(value)) => Ok(Some(value)),
        None | Some(Value::Null) => Ok(None),
        Some(other) => Err(identity(format!(
            "request header {name} must be a string, not {}",
            match other {
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::Array(_) => "an array",
                _ => "an object",
            }
        ))),
    }
}

/// The certificate in an `x-kakunin-certificate` header: URL-escaped (nginx's
/// `$ssl_client_escaped_cert`), or form-encoded (spaces as `+`, which a
/// PEM's armour lines reveal: base64 has `+` but never in `-----BEGIN+`).
fn certificate_header(escaped: &str) -> Result<String> {
    let form_encoded = escaped.contains("-----BEGIN+");
    let spaced;
    let text = if form_encoded {
        spaced = escaped.replace('+', " ");
        spaced.as_str()
    } else {
        escaped
    };
    Ok(percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| identity("x-kakunin-certificate is not URL-escaped UTF-8"))?
        .into_owned())
}

/// PostgREST's `request.headers` setting (a JSON object), if it is set.
fn request_headers() -> Option<&'static str> {
    // SAFETY: GetConfigOption returns NULL or a NUL-terminated string, owned by the GUC machinery and valid until the setting next changes, which nothing in this call does before it is copied.
    let raw = unsafe { pg_sys::GetConfigOption(c"request.headers".as_ptr(), true, false) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: checked non-NULL above; see the lifetime note there.
    let text = unsafe { CStr::from_ptr(raw) }.to_str().ok()?;
    Some(text).filter(|t| !t.is_empty())
}

/// `kakunin.current_request_id()`: the x-request-id header of the current
/// PostgREST request, or NULL (the `audit_log.request_id` default). Never
/// fails: a missing or malformed header is no request id.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_current_request_id(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let id = request_headers()
        .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
        .and_then(|headers| match headers.get("x-request-id")? {
            Value::String(id) => Some(id.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        });
    match id.and_then(|id| id.into_datum()) {
        Some(datum) => datum,
        // SAFETY: this call's fcinfo, passed by PostgreSQL.
        None => unsafe { return_null(fcinfo) },
    }
}

crate::pg::fmgr::fmgr_v1!(pg_finfo_kakunin_current_request_id);

#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn pre_request() -> SqlResult<()> {
    let Some(raw) = request_headers() else {
        return Ok(());
    };
    let headers: Value =
        serde_json::from_str(raw).map_err(|_| identity("request.headers is not valid JSON"))?;
    if !headers.is_object() {
        return Err(identity("request.headers must be a JSON object").into());
    }
    if let Some(escaped) = header(&headers, "x-kakunin-certificate")? {
        let pem = certificate_header(escaped)?;
        // The login role's standing is lent for the first bind of the
        // transaction only: SQL running later under the request role can never
        // use it to replace the identity bound (issue 14).
        let lent = privilege::session_user_is_gateway() && binding::current().is_none();
        bind_with(Some(&pem), header(&headers, "x-kakunin-proof")?, lent)?;
    } else if let Some(key) = header(&headers, "x-api-key")? {
        bind_key(key)?;
    }
    Ok(())
}
