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
use kakunin_core::binding::{worst, Binding, CertStatus};
use kakunin_core::scope::{self, FinancialScope};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::bind::{identity, store};
use crate::error::{spi_failed, KakuninError, OrRaise};
use crate::invalidation::EpochCache;
use crate::registry::{now_unix_micros, tag_for};
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
    /// Seconds since the key was last recorded as used (None: never).
    idle_seconds: Option<i64>,
}

/// Why a key was refused, and the key id if such a key is stored.
type Refused = (&'static str, Option<[u8; 16]>);

/// The outcome of checking a presented key; `Err` holds the stable reason
/// (`malformed`, `unknown` (no such key, or a wrong secret), or the key's
/// status: `revoked`, `expired`, `suspended`, `retired`, or `unknown` when its
/// certificate's CRL is stale) and the key id if such a key is stored.
fn verify(text: &str) -> Result<(ParsedKey, KeyRow), Refused> {
    let Some(parsed) = api_key::parse(text.trim()) else {
        return Err(("malformed", None));
    };
    let row = fetch(&parsed.key_id);
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
    let before = crate::invalidation::epoch();
    crate::invalidation::refresh();
    let key_id = api_key::uuid_string(&parsed.key_id);
    match key_status(&key_id, Visibility::Latest, before, now_unix_micros()) {
        CertStatus::Active => Ok((parsed, row)),
        other => Err((other.as_str(), Some(parsed.key_id))),
    }
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
            c"SELECT k.secret_hash, k.owner_id, k.tenant_id, k.capabilities, k.claims::text,
                     extract(epoch FROM k.expires_at)::float8,
                     extract(epoch FROM pg_catalog.now() - u.last_used_at)::float8
              FROM kakunin.api_keys k LEFT JOIN kakunin.api_key_usage u ON u.key_id OPERATOR(pg_catalog.=) k.key_id
              WHERE k.key_id OPERATOR(pg_catalog.=) $1",
            &[pg_sys::UUIDOID],
            &[arg],
            |row| KeyRow {
                secret_hash: row.get::<Vec<u8>>(1).unwrap_or_default(),
                owner_id: row.get::<String>(2).unwrap_or_default(),
                tenant_id: row.get::<String>(3),
                capabilities: row.get::<Vec<String>>(4).unwrap_or_default(),
                claims: row.get::<String>(5).unwrap_or_default(),
                expires_at: row.get::<f64>(6).map(|t| t as i64),
                idle_seconds: row.get::<f64>(7).map(|t| t as i64),
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

/// Records a management event (created, rotated, revoked, claims_updated).
/// Skipped in read-only transactions and on a standby, where verification must
/// still work.
fn record(key_id: Option<&[u8; 16]>, event: &str, reason: Option<&str>) {
    if privilege::writable() {
        insert_event(key_id, event, reason, 1);
    }
}

fn insert_event(key_id: Option<&[u8; 16]>, event: &str, reason: Option<&str>, occurrences: i64) {
    let actor = privilege::current_user_name();
    let agent = binding_setting::current().map(|b| b.agent_id.clone());
    let key = key_id.map(|k| pgrx::Uuid::from_bytes(*k));
    privilege::as_extension_owner(|| {
        spi_plans::run(
            "INSERT INTO kakunin.api_key_events (key_id, event, actor, agent_id, reason, occurrences)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                key.into(),
                event.into(),
                actor.as_str().into(),
                agent.into(),
                reason.into(),
                occurrences.into(),
            ],
        )
    })
    .unwrap_or_else(|e| spi_failed("record an API key event", e));
}

/// Failed verifications of one (stored key, reason) are recorded at most once
/// a minute per backend; the row counts the failures it stands for. A failure
/// that names no stored key (malformed, unknown id) concerns no owner and is
/// not recorded at all, so garbage from anyone writes nothing; rows older
/// than [`FAILURE_RETENTION`] are pruned as new ones arrive.
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
const FAILURE_RETENTION: &str = "30 days";

/// (reason, stored key id) -> (when last recorded, failures counted since).
type FailureWindows =
    std::collections::HashMap<(&'static str, [u8; 16]), (std::time::Instant, i64)>;

fn record_failure(key_id: Option<&[u8; 16]>, reason: &'static str) {
    let Some(key_id) = key_id else {
        return;
    };
    thread_local! {
        /// (reason, key) -> (last recorded, failures since)
        static WINDOWS: std::cell::RefCell<FailureWindows> = std::cell::RefCell::new(FailureWindows::new());
    }
    if !privilege::writable() {
        return;
    }
    let bucket = (reason, *key_id);
    let occurrences = WINDOWS.with_borrow_mut(|windows| {
        let now = std::time::Instant::now();
        match windows.get_mut(&bucket) {
            Some((at, since)) if now.duration_since(*at) < FAILURE_WINDOW => {
                *since += 1;
                None
            }
            // The failures counted in the closed window go with this record.
            Some((at, since)) => {
                let occurrences = *since + 1;
                (*at, *since) = (now, 0);
                Some(occurrences)
            }
            None => {
                if windows.len() >= 1024 {
                    windows.retain(|_, (at, _)| now.duration_since(*at) < FAILURE_WINDOW);
                }
                windows.insert(bucket, (now, 0));
                Some(1)
            }
        }
    });
    let Some(occurrences) = occurrences else {
        return;
    };
    insert_event(Some(key_id), "verify_failed", Some(reason), occurrences);
    privilege::as_extension_owner(|| {
        spi_plans::run(
            &format!(
                "DELETE FROM kakunin.api_key_events WHERE id IN (
                     SELECT id FROM kakunin.api_key_events
                     WHERE event OPERATOR(pg_catalog.=) 'verify_failed'
                       AND at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) interval '{FAILURE_RETENTION}')
                     LIMIT 100 FOR UPDATE SKIP LOCKED)"
            ),
            &[],
        )
    })
    .unwrap_or_else(|e| spi_failed("prune old API key failures", e));
}

/// Writes `last_used_at` (in `kakunin.api_key_usage`, not the key row, so that
/// revoking the key never waits for this transaction) at most once a minute
/// per key, never blocking on a concurrent writer (SKIP LOCKED; the row exists
/// from the key's creation, so no insert can wait either), and never when
/// read-only. Within the minute a verification stays read-only.
fn touch(key_id: &[u8; 16], row: &KeyRow) {
    if !privilege::writable() || row.idle_seconds.is_some_and(|idle| idle < 60) {
        return;
    }
    let key = pgrx::Uuid::from_bytes(*key_id);
    privilege::as_extension_owner(|| {
        spi_plans::run(
            "UPDATE kakunin.api_key_usage SET last_used_at = pg_catalog.now()
             WHERE key_id OPERATOR(pg_catalog.=) (SELECT key_id FROM kakunin.api_key_usage
                             WHERE key_id OPERATOR(pg_catalog.=) $1
                               AND (last_used_at IS NULL
                                    OR last_used_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 minute'))
                             FOR UPDATE SKIP LOCKED)",
            &[key.into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("record the API key's last use", e));
}

/// `kakunin.verify_api_key(api_key) → jsonb`.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn verify_api_key(api_key: Option<&str>) -> pgrx::JsonB {
    let result = match api_key.map(verify).unwrap_or(Err(("malformed", None))) {
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
        Err((reason, stored_key)) => {
            record_failure(stored_key.as_ref(), reason);
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
        .map_err(|(reason, _)| identity(format!("API key refused: {reason}")))
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

/// What decides a key's status: the key and the keys it was derived from
/// (nearest first), and the certificate at the root of that lineage, if any.
#[derive(Clone)]
struct KeyState {
    owner_id: String,
    /// Any key of the lineage revoked, or a parent missing (fail closed).
    revoked: bool,
    /// The earliest expiry along the lineage, in microseconds since the Unix
    /// epoch (a timestamp's own precision: a key never works a second late
    /// or stops one early).
    expires_at: Option<i64>,
    /// Serial and issuer (hex of its Name) of the certificate the lineage was
    /// derived from.
    root_serial: Option<String>,
    root_issuer: Option<String>,
}

/// How many keys deep a lineage is followed; a deeper one counts as broken.
const MAX_LINEAGE: i32 = 16;

/// Live state of a key: revoked (itself, or any key it was derived from),
/// expired (the earliest expiry along its lineage; a rotation may have
/// shortened one), or the status of its agent and of the certificate its
/// lineage was derived from, the most severe winning. Read as the extension
/// owner (the lineage may hold keys RLS hides from the caller) and cached per
/// invalidation epoch. `now_micros`: microseconds since the Unix epoch.
pub fn key_status(
    key_id: &str,
    visibility: Visibility,
    epoch_before: u64,
    now_micros: i64,
) -> CertStatus {
    thread_local! {
        static PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
        /// key id -> state (None: the key is missing)
        static CACHE: EpochCache<String, Option<KeyState>> = EpochCache::new(4096);
    }
    let state = match CACHE.with(|c| c.get(key_id)) {
        Some(state) => state,
        None => {
            let arg = key_id.into_datum().unwrap_or(pg_sys::Datum::from(0));
            let depth = MAX_LINEAGE.into_datum().unwrap_or(pg_sys::Datum::from(0));
            let rows = privilege::as_extension_owner(|| {
                spi_plans::query(
                    visibility,
                    &PLAN,
                    c"WITH RECURSIVE lineage AS (
                          SELECT k.owner_id, k.revoked_at, k.expires_at, k.parent_key_id, k.parent_serial,
                                 k.parent_issuer, 1 AS depth
                          FROM kakunin.api_keys k WHERE k.key_id OPERATOR(pg_catalog.=) $1::uuid
                        UNION ALL
                          SELECT p.owner_id, p.revoked_at, p.expires_at, p.parent_key_id, p.parent_serial,
                                 p.parent_issuer, l.depth OPERATOR(pg_catalog.+) 1
                          FROM lineage l JOIN kakunin.api_keys p ON p.key_id OPERATOR(pg_catalog.=) l.parent_key_id
                          WHERE l.depth OPERATOR(pg_catalog.<) $2)
                      SELECT owner_id, revoked_at IS NOT NULL,
                             CASE WHEN expires_at IS NULL THEN NULL
                                  WHEN pg_catalog.isfinite(expires_at)
                                  THEN (extract(epoch FROM expires_at) OPERATOR(pg_catalog.*) 1000000)::int8
                                  WHEN expires_at OPERATOR(pg_catalog.>) 'epoch' THEN 9223372036854775807
                                  ELSE -9223372036854775807 END,
                             parent_key_id IS NOT NULL, parent_serial, parent_issuer
                      FROM lineage ORDER BY depth",
                    &[pg_sys::TEXTOID, pg_sys::INT4OID],
                    &[arg, depth],
                    |row| {
                        (
                            row.get::<String>(1).unwrap_or_default(),
                            row.get::<bool>(2).unwrap_or(true),
                            row.get::<i64>(3),
                            row.get::<bool>(4).unwrap_or(true),
                            row.get::<String>(5),
                            row.get::<String>(6),
                        )
                    },
                )
            });
            let state = rows.first().map(|(owner_id, ..)| KeyState {
                owner_id: owner_id.clone(),
                // The last key read still names a parent: it is missing, or the
                // lineage is deeper than we follow.
                revoked: rows.iter().any(|r| r.1) || rows.last().is_some_and(|r| r.3),
                expires_at: rows.iter().filter_map(|r| r.2).min(),
                root_serial: rows.last().and_then(|r| r.4.clone()),
                root_issuer: rows.last().and_then(|r| r.5.clone()),
            });
            CACHE.with(|c| {
                c.insert(
                    key_id.to_string(),
                    tag_for(visibility, epoch_before),
                    state.clone(),
                )
            });
            state
        }
    };
    // A deleted key fails closed.
    let Some(state) = state else {
        return CertStatus::Revoked;
    };
    if state.revoked {
        return CertStatus::Revoked;
    }
    let registry = crate::registry::registry_status(
        state.root_serial.as_deref().unwrap_or(""),
        state.root_issuer.as_deref().unwrap_or(""),
        &state.owner_id,
        visibility,
        epoch_before,
    );
    let own = match state.expires_at {
        Some(t) if t <= now_micros => CertStatus::Expired,
        _ => CertStatus::Active,
    };
    // A stale CRL for the root certificate's issuer says nothing can be known
    // about it: `unknown`, as for the certificate itself.
    let stale = state
        .root_issuer
        .as_deref()
        .and_then(|issuer| hex::decode(issuer).ok())
        .and_then(|issuer| {
            crate::crl::stale_status(
                &issuer,
                visibility,
                epoch_before,
                now_micros.div_euclid(1_000_000),
            )
        });
    let own = stale.map_or(own, |s| worst(own, s));
    registry.map_or(own, |r| worst(own, r))
}

/// Who is creating or changing keys, and within which limits.
struct Caller {
    admin: bool,
    bound: Option<std::rc::Rc<Binding>>,
}

/// The credential a key was derived from: it never outlives it or exceeds it.
#[derive(Default)]
struct Lineage {
    parent_key_id: Option<pgrx::Uuid>,
    parent_serial: Option<String>,
    parent_issuer: Option<String>,
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

    /// Revoking, rotating or changing a key: its owner, or an admin; a caller
    /// bound by an API key manages that key only, never its siblings.
    fn require_manager(&self, key_id: pgrx::Uuid, owner_id: &str) {
        self.require_owner(owner_id);
        if let Some(own) = self.limiting_key() {
            if own.key_id.as_deref() != Some(key_id.to_string().as_str()) {
                KakuninError::Privilege(format!(
                    "permission denied: a caller bound with an API key manages only that key, not {key_id}"
                ))
                .raise();
            }
        }
    }

    /// For a caller that is not an admin, what a new key derives from its
    /// credential, after checking that the key stays inside it: capabilities
    /// (a key's own), scope and claims ([`scope::narrows`]), tenant (none stays
    /// none), expiry (never past the credential's, through `expiry_cap`).
    fn derive(&self, capabilities: &[String], claims: &Value, tenant_id: Option<&str>) -> Derived {
        let Some(own) = self.bound.as_deref().filter(|_| !self.admin) else {
            return Derived {
                lineage: Lineage::default(),
                claims: claims.clone(),
                tenant_id: tenant_id.map(str::to_string),
                expiry_cap: None,
            };
        };
        let denied = |what: String| -> ! {
            KakuninError::Privilege(format!("permission denied: {what}")).raise()
        };
        if own.key_id.is_some() {
            if let Some(extra) = capabilities.iter().find(|c| !own.capabilities.contains(c)) {
                denied(format!(
                    "a key cannot create a key with capability \"{extra}\" it does not have"
                ));
            }
        }
        let empty = serde_json::Map::new();
        let mut child = claims.as_object().cloned().unwrap_or_default();
        let parent = own.scope.as_object().unwrap_or(&empty);
        scope::inherit_limits(&mut child, parent);
        if let Err(e) = scope::narrows(&child, parent) {
            denied(format!(
                "a derived key's claims must stay within the bound credential: {e}"
            ));
        }
        if tenant_id.is_some() && tenant_id != own.tenant_id.as_deref() {
            denied(match &own.tenant_id {
                Some(t) => format!("the bound identity belongs to tenant \"{t}\""),
                None => {
                    "the bound identity belongs to no tenant, so its keys belong to none".into()
                }
            });
        }
        let lineage = match &own.key_id {
            Some(k) => Lineage {
                parent_key_id: uuid_from_text(k),
                ..Lineage::default()
            },
            None => Lineage {
                parent_key_id: None,
                parent_serial: Some(own.serial.clone()),
                parent_issuer: Some(own.issuer.clone()),
            },
        };
        Derived {
            lineage,
            claims: Value::Object(child),
            tenant_id: own.tenant_id.clone(),
            expiry_cap: Some(own.not_after).filter(|t| *t != i64::MAX),
        }
    }
}

/// What [`Caller::derive`] decided a new key holds.
struct Derived {
    lineage: Lineage,
    /// The claims to store (limits the parent sets and the child did not, added).
    claims: Value,
    tenant_id: Option<String>,
    /// Unix seconds the key's expiry may not pass.
    expiry_cap: Option<i64>,
}

fn key_uuid(key_id: &[u8; 16]) -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*key_id)
}

fn uuid_from_text(text: &str) -> Option<pgrx::Uuid> {
    let bytes: [u8; 16] = hex::decode(text.replace('-', "")).ok()?.try_into().ok()?;
    Some(pgrx::Uuid::from_bytes(bytes))
}

/// What a new key row holds besides its generated id and secret.
struct NewKey<'a> {
    owner_id: &'a str,
    name: &'a str,
    capabilities: &'a [String],
    expires_at: Option<TimestampWithTimeZone>,
    /// Unix seconds `expires_at` may not pass (the deriving credential's expiry).
    expiry_cap: Option<i64>,
    claims: &'a Value,
    tenant_id: Option<&'a str>,
    lineage: Lineage,
}

/// Inserts a new key row and returns (key id, plaintext).
fn insert_key(key: NewKey<'_>) -> (pgrx::Uuid, String) {
    let new = api_key::generate()
        .map_err(KakuninError::InvalidArgument)
        .or_raise();
    let actor = privilege::current_user_name();
    privilege::as_extension_owner(|| {
        spi_plans::run(
            "WITH new_key AS (
                 INSERT INTO kakunin.api_keys
                     (key_id, owner_id, tenant_id, name, secret_hash, capabilities, claims, expires_at, created_by,
                      parent_key_id, parent_serial, parent_issuer)
                 VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb,
                         CASE WHEN $10::float8 IS NULL THEN $8
                              ELSE LEAST(coalesce($8, 'infinity'), pg_catalog.to_timestamp($10)) END,
                         $9, $11, $12, $13)
                 RETURNING key_id)
             INSERT INTO kakunin.api_key_usage (key_id) SELECT key_id FROM new_key",
            &[
                key_uuid(&new.key_id).into(),
                key.owner_id.into(),
                key.tenant_id.into(),
                key.name.into(),
                new.secret_hash.as_slice().into(),
                key.capabilities.to_vec().into(),
                key.claims.to_string().into(),
                key.expires_at.into(),
                actor.as_str().into(),
                key.expiry_cap.map(|t| t as f64).into(),
                key.lineage.parent_key_id.into(),
                key.lineage.parent_serial.into(),
                key.lineage.parent_issuer.into(),
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
/// plaintext is returned once and stored nowhere. A caller that is not an
/// admin derives the key from its bound credential ([`Caller::derive`]); the
/// key dies with that credential ([`key_status`]).
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
    let Derived {
        lineage,
        claims,
        tenant_id,
        expiry_cap,
    } = caller.derive(&capabilities, &claims, tenant_id);
    let (key_id, plaintext) = insert_key(NewKey {
        owner_id,
        name,
        capabilities: &capabilities,
        expires_at,
        expiry_cap,
        claims: &claims,
        tenant_id: tenant_id.as_deref(),
        lineage,
    });
    if caller.admin {
        crate::audit::admin_act(
            "kakunin.api_key.created",
            json!({"key_id": key_id.to_string(), "owner_id": owner_id, "capabilities": capabilities,
                   "claims": claims, "tenant_id": tenant_id}),
        );
    }
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
    expires_at: Option<TimestampWithTimeZone>,
    lineage: Lineage,
}

/// Reads a key the caller may manage: RLS on `kakunin.api_keys` (owner or
/// admin) decides visibility, exactly as for a plain SELECT.
fn visible_key(key_id: pgrx::Uuid) -> ManagedKey {
    let row = spi_plans::connect(|client| {
        let table = client.select(
            "SELECT owner_id, tenant_id, name, capabilities, claims::text, revoked_at IS NOT NULL,
                    expires_at, parent_key_id, parent_serial, parent_issuer
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
            expires_at: row.get::<TimestampWithTimeZone>(7)?,
            lineage: Lineage {
                parent_key_id: row.get::<pgrx::Uuid>(8)?,
                parent_serial: row.get::<String>(9)?,
                parent_issuer: row.get::<String>(10)?,
            },
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
    let caller = Caller::current();
    caller.require_manager(key_id, &key.owner_id);
    let changed = privilege::as_extension_owner(|| {
        spi_plans::connect_mut(|client| {
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
        if caller.admin {
            crate::audit::admin_act(
                "kakunin.api_key.revoked",
                json!({"key_id": key_id.to_string(), "owner_id": key.owner_id, "reason": reason}),
            );
        }
    }
    changed > 0
}

/// `kakunin.rotate_api_key(key_id, grace) → TABLE(key_id, api_key)`: a new key
/// with the same owner, tenant, name, capabilities, claims, expiry and
/// lineage; the old one keeps working for `grace` only.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn rotate_api_key(
    key_id: Option<pgrx::Uuid>,
    grace: default!(Option<Interval>, "'0'"),
) -> TableIterator<'static, (name!(key_id, pgrx::Uuid), name!(api_key, String))> {
    let key_id = key_id
        .ok_or(KakuninError::NullArgument("key_id"))
        .or_raise();
    let key = visible_key(key_id);
    let caller = Caller::current();
    caller.require_manager(key_id, &key.owner_id);
    // A key cannot renew itself: its successor would outlive its revocation.
    if caller.limiting_key().is_some() {
        KakuninError::Privilege(
            "permission denied: a caller bound with an API key cannot rotate keys; the owner bound by certificate or a kakunin_admin member rotates".into(),
        )
        .raise();
    }
    if key.revoked {
        KakuninError::InvalidArgument(format!("API key {key_id} is revoked and cannot be rotated"))
            .raise();
    }
    let (new_id, plaintext) = insert_key(NewKey {
        owner_id: &key.owner_id,
        name: &key.name,
        capabilities: &key.capabilities,
        expires_at: key.expires_at,
        expiry_cap: None,
        claims: &key.claims,
        tenant_id: key.tenant_id.as_deref(),
        lineage: key.lineage,
    });
    privilege::as_extension_owner(|| {
        spi_plans::run(
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
    if caller.admin {
        crate::audit::admin_act(
            "kakunin.api_key.rotated",
            json!({"key_id": key_id.to_string(), "replaced_by": new_id.to_string(), "owner_id": key.owner_id}),
        );
    }
    TableIterator::once((new_id, plaintext))
}

/// `kakunin.update_api_key_claims(key_id, claims) → jsonb`. Claims may carry a
/// financial scope, so a caller bound with an API key cannot change any, and
/// an owner bound by certificate only within its certificate's scope.
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
    caller.require_manager(key_id, &key.owner_id);
    if caller.limiting_key().is_some() {
        KakuninError::Privilege(
            "permission denied: a caller bound with an API key cannot change key claims".into(),
        )
        .raise();
    }
    // The same bounds as creating the key from the bound certificate, and a
    // key derived from another key stays within that key's claims too.
    let claims = caller.derive(&[], &claims, key.tenant_id.as_deref()).claims;
    if let Some(parent) = key.lineage.parent_key_id.filter(|_| !caller.admin) {
        let parent_claims = privilege::as_extension_owner(|| {
            spi_plans::get_one::<pgrx::JsonB>(
                "SELECT claims FROM kakunin.api_keys WHERE key_id OPERATOR(pg_catalog.=) $1",
                &[parent.into()],
            )
        })
        .unwrap_or_else(|e| spi_failed("read kakunin.api_keys", e))
        .map(|c| c.0)
        .unwrap_or_else(|| json!({}));
        let empty = serde_json::Map::new();
        if let Err(e) = scope::narrows(
            claims.as_object().unwrap_or(&empty),
            parent_claims.as_object().unwrap_or(&empty),
        ) {
            KakuninError::Privilege(format!(
                "permission denied: a derived key's claims must stay within the key it was derived from: {e}"
            ))
            .raise();
        }
    }
    privilege::as_extension_owner(|| {
        spi_plans::run(
            "UPDATE kakunin.api_keys SET claims = $2::jsonb WHERE key_id OPERATOR(pg_catalog.=) $1",
            &[key_id.into(), claims.to_string().into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("update the API key's claims", e));
    record(Some(key_id.as_bytes()), "claims_updated", None);
    if caller.admin {
        crate::audit::admin_act(
            "kakunin.api_key.claims_updated",
            json!({"key_id": key_id.to_string(), "owner_id": key.owner_id, "claims": claims}),
        );
    }
    pgrx::JsonB(json!({"key_id": key_id.to_string(), "claims": claims}))
}

/// `kakunin_key_id() → uuid`: the bound API key, NULL for a certificate binding.
#[pg_extern(stable, parallel_safe)]
fn kakunin_key_id() -> Option<pgrx::Uuid> {
    uuid_from_text(binding_setting::current()?.key_id.as_deref()?)
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
