//! API keys: `kakunin.create_api_key`, `verify_api_key`, `bind_api_key`,
//! `revoke_api_key`, `rotate_api_key`, `update_api_key_claims`, and the
//! helpers `kakunin_key_id()` and `kakunin.authorize()`.
//!
//! Keys live in `kakunin.api_keys` (see `sql/api_keys.sql`). Only SHA-256 of
//! the secret is stored and no role can read it; every write goes through these
//! functions, which act as the extension owner after checking the caller: an
//! owner manages the keys RLS lets it see (its own), `kakunin_admin` all. A
//! caller bound with an API key can never mint a key wider than its own.

use std::cell::Cell;

use kakunin_core::api_key::{self, ParsedKey};
use kakunin_core::binding::{Binding, CertStatus};
use kakunin_core::scope::FinancialScope;
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::bind::{identity, store};
use crate::error::{spi_failed, KakuninError, OrRaise};
use crate::invalidation::EpochCache;
use crate::registry::{now_unix, tag_for};
use crate::spi_plans::{self, Visibility};
use crate::{binding_setting, privilege};

/// A stored key, as verification reads it.
struct KeyRow {
    secret_hash: Vec<u8>,
    owner_id: String,
    tenant_id: Option<String>,
    capabilities: Vec<String>,
    /// Raw JSON, parsed only once the secret matched, so that a wrong secret
    /// costs no more than an unknown id.
    claims: String,
    expires_at: Option<i64>,
    revoked: bool,
    /// Seconds since the key was last recorded as used (None: never).
    idle_seconds: Option<i64>,
}

/// The outcome of checking a presented key; `Err` holds the stable reason.
fn verify(text: &str) -> Result<(ParsedKey, KeyRow), &'static str> {
    let Some(parsed) = api_key::parse(text.trim()) else {
        return Err("malformed");
    };
    let row = fetch(&parsed.key_id);
    // Hash and compare even when the id is unknown: the two cases cost the same.
    if !api_key::matches(
        &parsed.secret,
        row.as_ref().map(|r| r.secret_hash.as_slice()),
    ) {
        return Err("unknown");
    }
    let Some(row) = row else {
        return Err("unknown");
    };
    if row.revoked {
        return Err("revoked");
    }
    if row.expires_at.is_some_and(|t| t <= now_unix()) {
        return Err("expired");
    }
    Ok((parsed, row))
}

thread_local! {
    static FETCH_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// One index probe by key id, as the owner (the hash column is granted to nobody).
fn fetch(key_id: &[u8; 16]) -> Option<KeyRow> {
    let arg = pgrx::Uuid::from_bytes(*key_id)
        .into_datum()
        .unwrap_or(pg_sys::Datum::from(0));
    privilege::as_extension_owner(|| {
        spi_plans::query(
            Visibility::Latest,
            &FETCH_PLAN,
            c"SELECT secret_hash, owner_id, tenant_id, capabilities, claims::text,
                     extract(epoch FROM expires_at)::float8, revoked_at IS NOT NULL,
                     extract(epoch FROM pg_catalog.now() - last_used_at)::float8
              FROM kakunin.api_keys WHERE key_id OPERATOR(pg_catalog.=) $1",
            &[pg_sys::UUIDOID],
            &[arg],
            |row| KeyRow {
                secret_hash: row.get::<Vec<u8>>(1).unwrap_or_default(),
                owner_id: row.get::<String>(2).unwrap_or_default(),
                tenant_id: row.get::<String>(3),
                capabilities: row.get::<Vec<String>>(4).unwrap_or_default(),
                claims: row.get::<String>(5).unwrap_or_default(),
                expires_at: row.get::<f64>(6).map(|t| t as i64),
                revoked: row.get::<bool>(7).unwrap_or(true),
                idle_seconds: row.get::<f64>(8).map(|t| t as i64),
            },
        )
        .into_iter()
        .next()
    })
}

impl KeyRow {
    fn claims_json(&self) -> Value {
        serde_json::from_str(&self.claims).unwrap_or_else(|_| json!({}))
    }
}

/// Records an event (created, rotated, revoked, claims_updated, verify_failed).
/// Skipped in read-only transactions and on a standby, where verification must
/// still work.
fn record(key_id: Option<&[u8; 16]>, event: &str, reason: Option<&str>) {
    if !privilege::writable() {
        return;
    }
    let actor = privilege::current_user_name();
    let agent = binding_setting::current().map(|b| b.agent_id.clone());
    let key = key_id.map(|k| pgrx::Uuid::from_bytes(*k));
    privilege::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO kakunin.api_key_events (key_id, event, actor, agent_id, reason)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                key.into(),
                event.into(),
                actor.as_str().into(),
                agent.into(),
                reason.into(),
            ],
        )
    })
    .unwrap_or_else(|e| spi_failed("record an API key event", e));
}

/// Writes `last_used_at` at most once a minute per key, never blocking on a
/// concurrent writer (SKIP LOCKED), and never when read-only. Within the
/// minute a verification stays read-only: no transaction id, no WAL.
fn touch(key_id: &[u8; 16], row: &KeyRow) {
    if !privilege::writable() || row.idle_seconds.is_some_and(|idle| idle < 60) {
        return;
    }
    let key = pgrx::Uuid::from_bytes(*key_id);
    privilege::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE kakunin.api_keys SET last_used_at = pg_catalog.now()
             WHERE key_id = (SELECT key_id FROM kakunin.api_keys
                             WHERE key_id OPERATOR(pg_catalog.=) $1
                               AND (last_used_at IS NULL
                                    OR last_used_at OPERATOR(pg_catalog.<) pg_catalog.now() - interval '1 minute')
                             FOR UPDATE SKIP LOCKED)",
            &[key.into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("record the API key's last use", e));
}

/// `kakunin.verify_api_key(api_key) → jsonb`.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn verify_api_key(api_key: Option<&str>) -> pgrx::JsonB {
    let result = match api_key.map(verify).unwrap_or(Err("malformed")) {
        Ok((parsed, row)) => {
            touch(&parsed.key_id, &row);
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
        Err(reason) => {
            let key_id = api_key
                .and_then(|k| api_key::parse(k.trim()))
                .map(|p| p.key_id);
            record(key_id.as_ref(), "verify_failed", Some(reason));
            json!({"valid": false, "reason": reason})
        }
    };
    pgrx::JsonB(result)
}

/// `kakunin.bind_api_key(api_key) → jsonb`: binds the key's identity for the
/// rest of the transaction, under the same rules as a certificate bind.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn bind_api_key(api_key: Option<&str>) -> pgrx::JsonB {
    let text = api_key
        .ok_or_else(|| identity("api_key must not be NULL"))
        .or_raise();
    let bound = bind_key(text);
    pgrx::JsonB(json!({
        "agent_id": bound.agent_id,
        "tenant_id": bound.tenant_id,
        "key_id": bound.key_id,
        "capabilities": bound.capabilities,
        "claims": bound.scope,
        "status": "active",
        "method": "api_key",
    }))
}

/// Verifies `text` and binds the key's identity; raises 28000 if invalid.
pub fn bind_key(text: &str) -> std::rc::Rc<Binding> {
    let (parsed, row) = verify(text)
        .map_err(|reason| identity(format!("API key refused: {reason}")))
        .or_raise();
    touch(&parsed.key_id, &row);
    // A key's claims may carry a financial scope, in the certificate's format.
    let scope = FinancialScope::from_json(&row.claims).unwrap_or_default();
    let claims = row.claims_json();
    let binding = Binding {
        agent_id: row.owner_id,
        tenant_id: row.tenant_id,
        serial: String::new(),
        not_after: row.expires_at.unwrap_or(i64::MAX),
        instruments: scope.instruments,
        venues: scope.venues,
        scope: claims,
        fingerprint: String::new(),
        method: "api_key".into(),
        key_id: Some(api_key::uuid_string(&parsed.key_id)),
        capabilities: row.capabilities,
        issuer: String::new(),
        bound_status: None,
    };
    store(binding, privilege::caller_is_gateway())
}

#[derive(Clone, Copy)]
struct KeyState {
    revoked: bool,
    expires_at: Option<i64>,
}

/// Live state of a key for a binding: revoked, expired (the stored expiry may
/// have been shortened by a rotation), or active. Cached per invalidation epoch.
pub fn key_status(key_id: &str, visibility: Visibility, epoch_before: u64, now: i64) -> CertStatus {
    thread_local! {
        static PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
        /// key id -> state (None: the key is missing)
        static CACHE: EpochCache<String, Option<KeyState>> = EpochCache::new(4096);
    }
    let state = match CACHE.with(|c| c.get(key_id)) {
        Some(state) => state,
        None => {
            let arg = key_id.into_datum().unwrap_or(pg_sys::Datum::from(0));
            let state = spi_plans::query(
                visibility,
                &PLAN,
                c"SELECT revoked_at IS NOT NULL, extract(epoch FROM expires_at)::float8
                  FROM kakunin.api_keys WHERE key_id OPERATOR(pg_catalog.=) $1::uuid",
                &[pg_sys::TEXTOID],
                &[arg],
                |row| KeyState {
                    revoked: row.get::<bool>(1).unwrap_or(true),
                    expires_at: row.get::<f64>(2).map(|t| t as i64),
                },
            )
            .into_iter()
            .next();
            CACHE.with(|c| c.insert(key_id.to_string(), tag_for(visibility, epoch_before), state));
            state
        }
    };
    match state {
        // A deleted key fails closed.
        None => CertStatus::Revoked,
        Some(KeyState { revoked: true, .. }) => CertStatus::Revoked,
        Some(KeyState {
            expires_at: Some(t),
            ..
        }) if t <= now => CertStatus::Expired,
        Some(_) => CertStatus::Active,
    }
}

/// Who is creating or changing keys, and within which limits.
struct Caller {
    admin: bool,
    bound: Option<std::rc::Rc<Binding>>,
}

impl Caller {
    fn current() -> Caller {
        Caller {
            admin: privilege::is_admin(),
            bound: binding_setting::current(),
        }
    }

    /// The caller's own API key, if it is bound with one and is not an admin:
    /// such a caller can never widen what its key allows.
    fn limiting_key(&self) -> Option<&Binding> {
        self.bound
            .as_deref()
            .filter(|b| !self.admin && b.key_id.is_some())
    }

    fn require_owner(&self, owner_id: &str) {
        if self.admin {
            return;
        }
        match &self.bound {
            Some(b) if b.agent_id == owner_id && crate::registry::bound_status(b) == CertStatus::Active => {}
            _ => KakuninError::Privilege(format!(
                "permission denied: only the bound agent \"{owner_id}\" or a kakunin_admin member may manage its API keys"
            ))
            .raise(),
        }
    }
}

fn key_uuid(key_id: &[u8; 16]) -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*key_id)
}

/// Inserts a new key row and returns (key id, plaintext).
#[allow(clippy::too_many_arguments)]
/// `expiry_cap` (unix seconds) bounds `expires_at` for callers that may not
/// outlive their own key.
fn insert_key(
    owner_id: &str,
    name: &str,
    capabilities: &[String],
    expires_at: Option<TimestampWithTimeZone>,
    expiry_cap: Option<i64>,
    claims: &Value,
    tenant_id: Option<&str>,
) -> (pgrx::Uuid, String) {
    let new = api_key::generate()
        .map_err(KakuninError::InvalidArgument)
        .or_raise();
    let actor = privilege::current_user_name();
    privilege::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO kakunin.api_keys
                 (key_id, owner_id, tenant_id, name, secret_hash, capabilities, claims, expires_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb,
                     CASE WHEN $10::float8 IS NULL THEN $8
                          ELSE LEAST(coalesce($8, 'infinity'), pg_catalog.to_timestamp($10)) END,
                     $9)",
            &[
                key_uuid(&new.key_id).into(),
                owner_id.into(),
                tenant_id.into(),
                name.into(),
                new.secret_hash.as_slice().into(),
                capabilities.to_vec().into(),
                claims.to_string().into(),
                expires_at.into(),
                actor.as_str().into(),
                expiry_cap.map(|t| t as f64).into(),
            ],
        )
    })
    .unwrap_or_else(|e| spi_failed("store the API key", e));
    record(Some(&new.key_id), "created", None);
    (key_uuid(&new.key_id), new.plaintext)
}

fn check_capabilities(capabilities: &[String]) {
    if capabilities.len() > 64
        || capabilities
            .iter()
            .any(|c| c.is_empty() || c.len() > 100 || c.chars().any(char::is_whitespace))
    {
        KakuninError::InvalidArgument(
            "capabilities must be at most 64 non-empty words of up to 100 characters without whitespace".into(),
        )
        .raise();
    }
}

/// `kakunin.create_api_key(...) → TABLE(key_id uuid, api_key text)`: the
/// plaintext is returned once and stored nowhere.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn create_api_key(
    owner_id: Option<&str>,
    name: Option<&str>,
    capabilities: Option<Vec<Option<String>>>,
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    claims: default!(Option<pgrx::JsonB>, "'{}'"),
    tenant_id: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(key_id, pgrx::Uuid), name!(api_key, String))> {
    let owner_id = owner_id
        .ok_or(KakuninError::NullArgument("owner_id"))
        .or_raise();
    let name = name.ok_or(KakuninError::NullArgument("name")).or_raise();
    if owner_id.is_empty() || owner_id.len() > 256 || name.is_empty() || name.len() > 200 {
        KakuninError::InvalidArgument("owner_id must be 1-256 bytes and name 1-200 bytes".into())
            .raise();
    }
    let capabilities: Vec<String> = capabilities
        .ok_or(KakuninError::NullArgument("capabilities"))
        .or_raise()
        .into_iter()
        .map(|c| {
            c.ok_or(KakuninError::NullArgument("a capability"))
                .or_raise()
        })
        .collect();
    check_capabilities(&capabilities);
    let claims = claims.map(|c| c.0).unwrap_or_else(|| json!({}));
    if !claims.is_object() {
        KakuninError::InvalidArgument("claims must be a JSON object".into()).raise();
    }
    let caller = Caller::current();
    caller.require_owner(owner_id);
    let mut tenant_id = tenant_id.map(str::to_string);
    let mut expiry_cap = None;
    if let Some(own) = caller.limiting_key() {
        if let Some(extra) = capabilities.iter().find(|c| !own.capabilities.contains(c)) {
            KakuninError::Privilege(format!(
                "permission denied: a key cannot create a key with capability \"{extra}\" it does not have"
            ))
            .raise();
        }
        // Never outlive the key that created it.
        expiry_cap = Some(own.not_after).filter(|t| *t != i64::MAX);
    }
    if let Some(bound_tenant) = caller
        .bound
        .as_ref()
        .filter(|_| !caller.admin)
        .and_then(|b| b.tenant_id.clone())
    {
        if tenant_id.as_ref().is_some_and(|t| *t != bound_tenant) {
            KakuninError::Privilege(format!(
                "permission denied: the bound identity belongs to tenant \"{bound_tenant}\""
            ))
            .raise();
        }
        tenant_id = Some(bound_tenant);
    }
    let (key_id, plaintext) = insert_key(
        owner_id,
        name,
        &capabilities,
        expires_at,
        expiry_cap,
        &claims,
        tenant_id.as_deref(),
    );
    TableIterator::once((key_id, plaintext))
}

/// A key as its manager sees it (no hash).
struct ManagedKey {
    owner_id: String,
    tenant_id: Option<String>,
    name: String,
    capabilities: Vec<String>,
    claims: Value,
    revoked: bool,
}

/// Reads a key the caller may manage: RLS on `kakunin.api_keys` (owner or
/// admin) decides visibility, exactly as for a plain SELECT.
fn visible_key(key_id: pgrx::Uuid) -> ManagedKey {
    let row = Spi::connect(|client| {
        let table = client.select(
            "SELECT owner_id, tenant_id, name, capabilities, claims::text, revoked_at IS NOT NULL
             FROM kakunin.api_keys WHERE key_id OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[key_id.into()],
        )?;
        if table.is_empty() {
            return Ok(None);
        }
        let row = table.first();
        Ok::<_, pgrx::spi::Error>(Some(ManagedKey {
            owner_id: row.get::<String>(1)?.unwrap_or_default(),
            tenant_id: row.get::<String>(2)?,
            name: row.get::<String>(3)?.unwrap_or_default(),
            capabilities: row.get::<Vec<String>>(4)?.unwrap_or_default(),
            claims: row
                .get::<String>(5)?
                .and_then(|c| serde_json::from_str(&c).ok())
                .unwrap_or_else(|| json!({})),
            revoked: row.get::<bool>(6)?.unwrap_or(true),
        }))
    })
    .unwrap_or_else(|e| spi_failed("read kakunin.api_keys", e));
    row.unwrap_or_else(|| {
        KakuninError::Privilege(format!(
            "API key {key_id} does not exist or is not yours to manage"
        ))
        .raise()
    })
}

/// `kakunin.revoke_api_key(key_id, reason) → boolean`: false if it was already revoked.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn revoke_api_key(key_id: Option<pgrx::Uuid>, reason: default!(Option<&str>, "NULL")) -> bool {
    let key_id = key_id
        .ok_or(KakuninError::NullArgument("key_id"))
        .or_raise();
    let key = visible_key(key_id);
    Caller::current().require_owner(&key.owner_id);
    let changed = privilege::as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "UPDATE kakunin.api_keys SET revoked_at = pg_catalog.now(), revoked_reason = $2
                     WHERE key_id OPERATOR(pg_catalog.=) $1 AND revoked_at IS NULL",
                    None,
                    &[key_id.into(), reason.into()],
                )
                .map(|t| t.len())
        })
    })
    .unwrap_or_else(|e| spi_failed("revoke the API key", e));
    if changed > 0 {
        record(Some(key_id.as_bytes()), "revoked", reason);
    }
    changed > 0
}

/// `kakunin.rotate_api_key(key_id, grace) → TABLE(key_id, api_key)`: a new key
/// with the same owner, tenant, name, capabilities, claims and expiry; the old
/// one keeps working for `grace` only.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn rotate_api_key(
    key_id: Option<pgrx::Uuid>,
    grace: default!(Option<Interval>, "'0'"),
) -> TableIterator<'static, (name!(key_id, pgrx::Uuid), name!(api_key, String))> {
    let key_id = key_id
        .ok_or(KakuninError::NullArgument("key_id"))
        .or_raise();
    let key = visible_key(key_id);
    Caller::current().require_owner(&key.owner_id);
    if key.revoked {
        KakuninError::InvalidArgument(format!("API key {key_id} is revoked and cannot be rotated"))
            .raise();
    }
    let expires_at = Spi::get_one_with_args::<TimestampWithTimeZone>(
        "SELECT expires_at FROM kakunin.api_keys WHERE key_id OPERATOR(pg_catalog.=) $1",
        &[key_id.into()],
    )
    .unwrap_or_else(|e| spi_failed("read kakunin.api_keys", e));
    let (new_id, plaintext) = insert_key(
        &key.owner_id,
        &key.name,
        &key.capabilities,
        expires_at,
        None,
        &key.claims,
        key.tenant_id.as_deref(),
    );
    privilege::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE kakunin.api_keys
             SET rotated_to = $2,
                 expires_at = LEAST(coalesce(expires_at, 'infinity'),
                                  pg_catalog.now() + GREATEST(coalesce($3, interval '0'), interval '0'))
             WHERE key_id OPERATOR(pg_catalog.=) $1",
            &[key_id.into(), new_id.into(), grace.into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("retire the rotated API key", e));
    record(
        Some(key_id.as_bytes()),
        "rotated",
        Some(&format!("replaced by {new_id}")),
    );
    TableIterator::once((new_id, plaintext))
}

/// `kakunin.update_api_key_claims(key_id, claims) → jsonb`. Claims may carry a
/// financial scope, so a caller bound with an API key cannot change any.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn update_api_key_claims(key_id: Option<pgrx::Uuid>, claims: Option<pgrx::JsonB>) -> pgrx::JsonB {
    let key_id = key_id
        .ok_or(KakuninError::NullArgument("key_id"))
        .or_raise();
    let claims = claims
        .ok_or(KakuninError::NullArgument("claims"))
        .or_raise()
        .0;
    if !claims.is_object() {
        KakuninError::InvalidArgument("claims must be a JSON object".into()).raise();
    }
    let key = visible_key(key_id);
    let caller = Caller::current();
    caller.require_owner(&key.owner_id);
    if caller.limiting_key().is_some() {
        KakuninError::Privilege(
            "permission denied: a caller bound with an API key cannot change key claims".into(),
        )
        .raise();
    }
    privilege::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE kakunin.api_keys SET claims = $2::jsonb WHERE key_id OPERATOR(pg_catalog.=) $1",
            &[key_id.into(), claims.to_string().into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("update the API key's claims", e));
    record(Some(key_id.as_bytes()), "claims_updated", None);
    pgrx::JsonB(json!({"key_id": key_id.to_string(), "claims": claims}))
}

/// `kakunin_key_id() → uuid`: the bound API key, NULL for a certificate binding.
#[pg_extern(stable, parallel_safe)]
fn kakunin_key_id() -> Option<pgrx::Uuid> {
    let key_id = binding_setting::current()?.key_id.clone()?;
    let bytes: [u8; 16] = hex::decode(key_id.replace('-', "")).ok()?.try_into().ok()?;
    Some(pgrx::Uuid::from_bytes(bytes))
}

/// `kakunin.authorize(capability) → boolean`: true while the bound API key is
/// active and has `capability`.
#[pg_extern(schema = "kakunin", stable, parallel_safe, strict)]
fn authorize(capability: &str) -> bool {
    binding_setting::current().is_some_and(|b| {
        b.capabilities.iter().any(|c| c == capability)
            && crate::registry::bound_status(&b) == CertStatus::Active
    })
}
