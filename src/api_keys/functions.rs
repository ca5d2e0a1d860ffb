//! The SQL functions of API keys: `kakunin.create_api_key`, `verify_api_key`,
//! `bind_api_key`, `revoke_api_key`, `rotate_api_key` and
//! `update_api_key_claims`. Each checks its caller (`caller`) and writes
//! through `store`; a key's status is `revocation::key_status`.

use std::rc::Rc;

use kakunin_core::api_key::{self, ParsedKey};
use kakunin_core::binding::{Binding, CertStatus, Credential};
use kakunin_core::scope::{self, FinancialScope};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use serde_json::json;

use super::caller::{Caller, Derived};
use super::store::{self, KeyRow, NewKey};
use crate::audit::append::admin_act;
use crate::identity::binding::{seal, store as store_binding};
use crate::pg::error::{required, KakuninError, Result, SqlResult};
use crate::pg::invalidation::Read;
use crate::pg::jsonb::JsonbArg;
use crate::pg::spi::Visibility;
use crate::pg::{privilege, time};
use crate::revocation::key_status::key_status;

/// Why a key was refused, and the key id if such a key is stored.
type Refused = (&'static str, Option<[u8; 16]>);

/// The outcome of checking a presented key; `Err` holds the stable reason
/// (`malformed`, `unknown` (no such key, or a wrong secret), or the key's
/// status: `revoked`, `expired`, `suspended`, `retired`, or `unknown` when its
/// certificate's CRL is stale) and the key id if such a key is stored.
fn verify(text: &str) -> std::result::Result<(ParsedKey, KeyRow), Refused> {
    let Some(parsed) = api_key::parse(text.trim()) else {
        return Err(("malformed", None));
    };
    let row = store::fetch(&parsed.key_id);
    // Hash and compare even when the id is unknown: the two cases cost the same.
    if !api_key::matches(
        &parsed.secret,
        row.as_ref().map(|r| r.secret_hash.as_slice()),
    ) {
        return Err(("unknown", row.map(|_| parsed.key_id)));
    }
    let Some(row) = row else {
        return Err(("unknown", None));
    };
    // Everything that can end a key: its own revocation and expiry, the
    // credential it was derived from, and its agent's status (issue 14).
    let key_id = api_key::uuid_string(&parsed.key_id);
    match key_status(
        &key_id,
        Read::new(Visibility::Latest),
        time::now_unix_micros(),
    ) {
        CertStatus::Active => Ok((parsed, row)),
        other => Err((other.as_str(), Some(parsed.key_id))),
    }
}

/// `kakunin.verify_api_key(api_key) → jsonb`.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn verify_api_key(api_key: Option<&str>) -> pgrx::JsonB {
    let result = match api_key.map(verify).unwrap_or(Err(("malformed", None))) {
        Ok((parsed, row)) => {
            store::touch(&parsed.key_id, &row);
            json!({
                "valid": true,
                "key_id": api_key::uuid_string(&parsed.key_id),
                "owner_id": row.owner_id,
                "tenant_id": row.tenant_id,
                "capabilities": row.capabilities,
                "claims": row.claims_json(),
                "expires_at": row.expires_at.map(kakunin_core::rfc3339),
            })
        }
        Err((reason, stored_key)) => {
            store::record_failure(stored_key.as_ref(), reason);
            json!({"valid": false, "reason": reason})
        }
    };
    pgrx::JsonB(result)
}

/// `kakunin.bind_api_key(api_key) → jsonb`: binds the key's identity for the
/// rest of the transaction, under the same rules as a certificate bind.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn bind_api_key(api_key: Option<&str>) -> SqlResult<pgrx::JsonB> {
    let text = api_key.ok_or_else(|| KakuninError::identity("api_key must not be NULL"))?;
    let bound = bind_key(text)?;
    Ok(pgrx::JsonB(json!({
        "agent_id": bound.agent_id,
        "tenant_id": bound.tenant_id,
        "key_id": bound.key_id(),
        "capabilities": bound.capabilities(),
        "claims": bound.scope,
        "status": "active",
        "method": "api_key",
    })))
}

/// Verifies `text` and binds the key's identity; an invalid key is an
/// identity refusal (28000).
pub fn bind_key(text: &str) -> Result<Rc<Binding>> {
    crate::identity::binding::refuse_if_restricted()?;
    let (parsed, row) = verify(text)
        .map_err(|(reason, _)| KakuninError::identity(format!("API key refused: {reason}")))?;
    store::touch(&parsed.key_id, &row);
    // A key's claims may carry a financial scope, in the certificate's format.
    let scope = FinancialScope::from_json(&row.claims).unwrap_or_default();
    let claims = row.claims_json();
    let binding = Binding {
        agent_id: row.owner_id,
        tenant_id: row.tenant_id,
        instruments: scope.instruments,
        venues: scope.venues,
        scope: claims,
        credential: Credential::ApiKey {
            key_id: api_key::uuid_string(&parsed.key_id),
            capabilities: row.capabilities,
            expires_at: row.expires_at,
        },
        fixed_status: None,
    };
    store_binding(&seal(binding)?, privilege::caller_is_gateway())
}

fn check_capabilities(capabilities: &[String]) -> Result<()> {
    if capabilities.len() > 64
        || capabilities
            .iter()
            .any(|c| c.is_empty() || c.len() > 100 || c.chars().any(char::is_whitespace))
    {
        return Err(KakuninError::InvalidArgument(
            "capabilities must be at most 64 non-empty words of up to 100 characters without whitespace".into(),
        ));
    }
    Ok(())
}

/// `kakunin.create_api_key(...) → TABLE(key_id uuid, api_key text)`: the
/// plaintext is returned once and stored nowhere. A caller that is not an
/// admin derives the key from its bound credential ([`Caller::derive`]); the
/// key dies with that credential ([`key_status`]).
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn create_api_key(
    owner_id: Option<&str>,
    name: Option<&str>,
    capabilities: Option<Vec<Option<String>>>,
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    claims: default!(Option<JsonbArg>, "'{}'"),
    tenant_id: default!(Option<&str>, "NULL"),
) -> std::result::Result<
    TableIterator<'static, (name!(key_id, pgrx::Uuid), name!(api_key, String))>,
    ErrorReport,
> {
    let owner_id = required(owner_id, "owner_id")?;
    let name = required(name, "name")?;
    if owner_id.is_empty() || owner_id.len() > 256 || name.is_empty() || name.len() > 200 {
        return Err(KakuninError::InvalidArgument(
            "owner_id must be 1-256 bytes and name 1-200 bytes".into(),
        )
        .into());
    }
    let capabilities = required(capabilities, "capabilities")?
        .into_iter()
        .map(|c| required(c, "a capability"))
        .collect::<Result<Vec<String>>>()?;
    check_capabilities(&capabilities)?;
    let claims = claims.map(|c| c.0).unwrap_or_else(|| json!({}));
    if !claims.is_object() {
        return Err(KakuninError::InvalidArgument("claims must be a JSON object".into()).into());
    }
    let caller = Caller::current();
    caller.require_owner(owner_id)?;
    let Derived {
        lineage,
        claims,
        tenant_id,
        expiry_cap,
    } = caller.derive(&capabilities, &claims, tenant_id)?;
    let (key_id, plaintext) = store::insert_key(NewKey {
        owner_id,
        name,
        capabilities: &capabilities,
        expires_at,
        expiry_cap,
        claims: &claims,
        tenant_id: tenant_id.as_deref(),
        lineage,
    })?;
    if caller.admin {
        admin_act(
            "kakunin.api_key.created",
            json!({"key_id": key_id.to_string(), "owner_id": owner_id, "capabilities": capabilities,
                   "claims": claims, "tenant_id": tenant_id}),
        );
    }
    Ok(TableIterator::once((key_id, plaintext)))
}

/// `kakunin.revoke_api_key(key_id, reason) → boolean`: false if it was already revoked.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn revoke_api_key(
    key_id: Option<pgrx::Uuid>,
    reason: default!(Option<&str>, "NULL"),
) -> SqlResult<bool> {
    let key_id = required(key_id, "key_id")?;
    let key = store::visible_key(key_id)?;
    let caller = Caller::current();
    caller.require_manager(key_id, &key.owner_id)?;
    let changed = store::revoke(key_id, reason);
    if changed && caller.admin {
        admin_act(
            "kakunin.api_key.revoked",
            json!({"key_id": key_id.to_string(), "owner_id": key.owner_id, "reason": reason}),
        );
    }
    Ok(changed)
}

/// The key `key_id` and its manager, for a change a caller bound with an API
/// key may not make (`refused`: what such a caller cannot do).
fn managed_without_key(key_id: pgrx::Uuid, refused: &str) -> Result<(store::ManagedKey, Caller)> {
    let key = store::visible_key(key_id)?;
    let caller = Caller::current();
    caller.require_manager(key_id, &key.owner_id)?;
    if caller.limiting_key().is_some() {
        return Err(KakuninError::Privilege(format!(
            "permission denied: a caller bound with an API key {refused}"
        )));
    }
    Ok((key, caller))
}

/// `kakunin.rotate_api_key(key_id, grace) → TABLE(key_id, api_key)`: a new key
/// with the same owner, tenant, name, capabilities, claims, expiry and
/// lineage; the old one keeps working for `grace` only.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn rotate_api_key(
    key_id: Option<pgrx::Uuid>,
    grace: default!(Option<Interval>, "'0'"),
) -> std::result::Result<
    TableIterator<'static, (name!(key_id, pgrx::Uuid), name!(api_key, String))>,
    ErrorReport,
> {
    let key_id = required(key_id, "key_id")?;
    // A key cannot renew itself: its successor would outlive its revocation.
    let (key, caller) = managed_without_key(
        key_id,
        "cannot rotate keys; the owner bound by certificate or a kakunin_admin member rotates",
    )?;
    if key.revoked {
        return Err(KakuninError::InvalidArgument(format!(
            "API key {key_id} is revoked and cannot be rotated"
        ))
        .into());
    }
    let (new_id, plaintext) = store::insert_key(NewKey {
        owner_id: &key.owner_id,
        name: &key.name,
        capabilities: &key.capabilities,
        expires_at: key.expires_at,
        expiry_cap: None,
        claims: &key.claims,
        tenant_id: key.tenant_id.as_deref(),
        lineage: key.lineage,
    })?;
    store::retire_rotated(key_id, new_id, grace);
    if caller.admin {
        admin_act(
            "kakunin.api_key.rotated",
            json!({"key_id": key_id.to_string(), "replaced_by": new_id.to_string(), "owner_id": key.owner_id}),
        );
    }
    Ok(TableIterator::once((new_id, plaintext)))
}

/// `kakunin.update_api_key_claims(key_id, claims) → jsonb`. Claims may carry a
/// financial scope, so a caller bound with an API key cannot change any, and
/// an owner bound by certificate only within its certificate's scope.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn update_api_key_claims(
    key_id: Option<pgrx::Uuid>,
    claims: Option<JsonbArg>,
) -> SqlResult<pgrx::JsonB> {
    let key_id = required(key_id, "key_id")?;
    let claims = required(claims, "claims")?.0;
    if !claims.is_object() {
        return Err(KakuninError::InvalidArgument("claims must be a JSON object".into()).into());
    }
    let (key, caller) = managed_without_key(key_id, "cannot change key claims")?;
    // The same bounds as creating the key from the bound certificate, and a
    // key derived from another key stays within that key's claims too.
    let claims = caller
        .derive(&[], &claims, key.tenant_id.as_deref())?
        .claims;
    if let Some(parent) = key.lineage.parent_key_id.filter(|_| !caller.admin) {
        let parent_claims = store::claims_of(parent);
        let empty = serde_json::Map::new();
        if let Err(e) = scope::narrows(
            claims.as_object().unwrap_or(&empty),
            parent_claims.as_object().unwrap_or(&empty),
        ) {
            return Err(KakuninError::Privilege(format!(
                "permission denied: a derived key's claims must stay within the key it was derived from: {e}"
            ))
            .into());
        }
    }
    store::set_claims(key_id, &claims);
    if caller.admin {
        admin_act(
            "kakunin.api_key.claims_updated",
            json!({"key_id": key_id.to_string(), "owner_id": key.owner_id, "claims": claims}),
        );
    }
    Ok(pgrx::JsonB(
        json!({"key_id": key_id.to_string(), "claims": claims}),
    ))
}
