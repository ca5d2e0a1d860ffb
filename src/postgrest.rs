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
//! the proxy in front terminates mTLS and overwrites the header).

use percent_encoding::percent_decode_str;
use pgrx::prelude::*;
use serde_json::Value;

use crate::bind::{bind_with, identity};
use crate::error::OrRaise;
use crate::privilege;

fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(Value::as_str)
}

#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn pre_request() {
    let raw = crate::spi_plans::select_one::<String>(
        "SELECT pg_catalog.current_setting('request.headers', true)",
        &[],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    if raw.is_empty() {
        return;
    }
    let headers: Value = serde_json::from_str(&raw)
        .map_err(|_| identity("request.headers is not valid JSON"))
        .or_raise();
    if let Some(escaped) = header(&headers, "x-kakunin-certificate") {
        let pem = percent_decode_str(escaped)
            .decode_utf8()
            .map_err(|_| identity("x-kakunin-certificate is not URL-escaped UTF-8"))
            .or_raise();
        let gateway = privilege::session_user_is_gateway();
        bind_with(Some(&pem), header(&headers, "x-kakunin-proof"), gateway);
    } else if let Some(key) = header(&headers, "x-api-key") {
        crate::api_keys::bind_key(key);
    }
}
