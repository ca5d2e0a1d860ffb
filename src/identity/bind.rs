//! Binding an agent certificate: `kakunin.bind_agent`, the procedure
//! `kakunin.bind_agent_session`, `kakunin.bind_agent_serial` (a gateway's
//! forwarded serial) and `kakunin.validate_certificate`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use kakunin_core::binding::{worst, Binding, CertStatus, Credential, Sealed};
use kakunin_core::{proof, rfc3339};
use pgrx::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::binding::{self, store};
use super::certificate::{self, Checked};
use super::replay;
use crate::pg::error::{spi_failed, KakuninError, Result, SqlResult};
use crate::pg::invalidation::Read;
use crate::pg::spi::{self, Visibility};
use crate::pg::{privilege, time};
use crate::revocation::{registry, verify_endpoint};

fn identity(message: impl Into<String>) -> KakuninError {
    KakuninError::identity(message)
}

/// `CALL kakunin.bind_agent_session(certificate, proof)`: binds and returns
/// nothing. Declared as a C procedure in `sql/identity.sql` (pgrx generates
/// functions only), so a CALL runs no SQL body and builds no result.
#[pg_extern(sql = false)]
fn bind_agent_session(certificate: Option<&str>, proof: Option<&str>) -> SqlResult<()> {
    bind(certificate, proof)?;
    Ok(())
}

/// Binds the agent identity of `certificate` for the rest of the transaction.
/// Returns what was bound. Members of `kakunin_gateway` may omit `proof`;
/// everyone else must prove possession of the certificate's key.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn bind_agent(
    certificate: Option<&str>,
    proof: default!(Option<&str>, "NULL"),
) -> SqlResult<pgrx::JsonB> {
    let (binding, status) = bind(certificate, proof)?;
    Ok(pgrx::JsonB(json!({
        "agent_id": binding.agent_id,
        "tenant_id": binding.tenant_id,
        "serial": binding.serial(),
        "status": status.as_str(),
        "scope": binding.scope,
        "not_after": binding.expires_at().map(rfc3339),
        "method": binding.method(),
    })))
}

/// Validates, checks the caller's right to bind, and stores the binding.
fn bind(certificate: Option<&str>, proof: Option<&str>) -> Result<(Rc<Binding>, CertStatus)> {
    bind_with(certificate, proof, privilege::caller_is_gateway())
}

/// As [`bind`], with whether a certificate alone suffices (`gateway`) decided
/// by the caller. Replacing a binding is decided by [`store`], always from the
/// current role.
pub fn bind_with(
    certificate: Option<&str>,
    proof: Option<&str>,
    gateway: bool,
) -> Result<(Rc<Binding>, CertStatus)> {
    binding::refuse_if_restricted()?;
    let certificate = certificate.ok_or_else(|| identity("certificate must not be NULL"))?;
    let now = time::now_unix();
    let checked = certificate::check(certificate, now, Visibility::Latest)
        .map_err(|refusal| identity(refusal.message))?;
    let proven = match proof {
        None if gateway => false,
        None => return Err(identity(
            "proof of possession required: only members of kakunin_gateway may bind with a certificate alone",
        )),
        Some(jws) => {
            check_proof(jws, &checked, now)?;
            true
        }
    };

    // With kakunin.verify_url set, the CA's online answer counts too (cached);
    // any failure there is 'unknown', never 'active'.
    let online =
        verify_endpoint::url().map(|_| verify_endpoint::status(&checked.profile.serial).status);
    let fixed_status = online.filter(|s| *s != CertStatus::Active);
    let sealed = match fixed_status {
        None => sealed_binding(&checked, proven)?,
        Some(_) => Rc::new(binding::seal(certificate_binding(
            &checked,
            proven,
            fixed_status,
        ))?),
    };
    let status = online.map_or(checked.status, |o| worst(checked.status, o));
    Ok((store(&sealed, privilege::caller_is_gateway())?, status))
}

/// What binding `checked` makes; its status is read per statement from the
/// registry, except a `fixed_status` from the verify endpoint.
fn certificate_binding(
    checked: &Checked,
    proven: bool,
    fixed_status: Option<CertStatus>,
) -> Binding {
    let profile = &checked.profile;
    Binding {
        agent_id: profile.agent_id.clone(),
        tenant_id: profile.tenant_id.clone(),
        instruments: profile.scope.instruments.clone(),
        venues: profile.scope.venues.clone(),
        scope: profile.scope.to_json(),
        credential: Credential::Certificate {
            serial: profile.serial.clone(),
            issuer: checked.issuer_hex.to_string(),
            fingerprint: checked.fingerprint.to_string(),
            not_after: profile.not_after,
            proven,
        },
        fixed_status,
    }
}

thread_local! {
    /// The sealed binding of each recently bound certificate (by fingerprint),
    /// without and with proof: what it binds depends on nothing else, so it
    /// is built, encoded and checked once, not on every bind.
    static SEALED: RefCell<HashMap<Rc<str>, SealedPair>> = RefCell::new(HashMap::new());
}
/// Indexed by `proven` (gateway: 0, proof: 1).
type SealedPair = [Option<Rc<Sealed>>; 2];
const SEALED_CAPACITY: usize = 256;

fn sealed_binding(checked: &Checked, proven: bool) -> Result<Rc<Sealed>> {
    let cached = SEALED.with(|c| {
        c.borrow()
            .get(&checked.fingerprint)
            .and_then(|slots| slots[usize::from(proven)].clone())
    });
    if let Some(sealed) = cached {
        return Ok(sealed);
    }
    let sealed = Rc::new(binding::seal(certificate_binding(checked, proven, None))?);
    SEALED.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= SEALED_CAPACITY && !cache.contains_key(&checked.fingerprint) {
            cache.clear();
        }
        cache.entry(checked.fingerprint.clone()).or_default()[usize::from(proven)] =
            Some(sealed.clone());
    });
    Ok(sealed)
}

/// The `aud` a proof must carry: the database, or with
/// `kakunin.proof_audience` set, `<proof_audience>/<database>` (a proof for
/// one server is then useless on another, whose replay memory is its own).
fn audience() -> String {
    let database = privilege::database_name();
    match crate::gucs::proof_audience() {
        Some(server) => format!("{server}/{database}"),
        None => database,
    }
}

/// Verifies the proof and remembers its `jti` so it cannot be used again
/// while it is fresh: in shared memory when preloaded ([`replay`]), else in
/// the table `kakunin.proof_replay`.
fn check_proof(jws: &str, checked: &Checked, now: i64) -> Result<()> {
    let claims = proof::verify(jws, &checked.profile.spki_der, &audience(), now)
        .map_err(|e| identity(e.to_string()))?;
    // Remembered per public key, not per certificate: the same key in another
    // encoding of the certificate (an ECDSA signature's s and n - s both
    // verify) or in a renewed one must not take the proof a second time.
    let public_key: [u8; 32] = Sha256::digest(&checked.profile.spki_der).into();
    if let Some(remembered) = replay::remember(&public_key, &claims.jti, claims.iat, now) {
        return remembered;
    }
    // Not preloaded: the jti is a row; where nothing can be written, say so in
    // the caller's terms rather than fail on our own statement with 25006
    // (issue 11: PostgREST runs GET requests read-only).
    if !privilege::writable() {
        return Err(identity(
            "proof of possession cannot be accepted in a read-only transaction or on a standby without shared memory: its jti must be recorded so the proof cannot be replayed; preload the library (shared_preload_libraries = 'kakunin_pg'), or bind in a read-write transaction on the primary, or through a kakunin_gateway member",
        ));
    }
    // A jti must stay recorded for as long as its iat keeps the proof fresh.
    let expires = claims.iat + proof::MAX_AGE_SECONDS + proof::MAX_FUTURE_SKEW_SECONDS;
    let fresh = privilege::as_extension_owner(|| {
        spi::connect_mut(|client| {
            // SKIP LOCKED: rows another bind is pruning are left to it, so an
            // open transaction that pruned them makes no one wait.
            client.update(
                "DELETE FROM kakunin.proof_replay WHERE ctid = ANY (ARRAY(
                     SELECT ctid FROM kakunin.proof_replay
                     WHERE expires_at OPERATOR(pg_catalog.<) pg_catalog.now()
                     LIMIT 100 FOR UPDATE SKIP LOCKED))",
                None,
                &[],
            )?;
            let inserted = client.update(
                "INSERT INTO kakunin.proof_replay (fingerprint, jti, expires_at)
                 VALUES ($1, $2, pg_catalog.to_timestamp($3))
                 ON CONFLICT DO NOTHING",
                None,
                &[
                    hex::encode(public_key).as_str().into(),
                    claims.jti.as_str().into(),
                    (expires as f64).into(),
                ],
            )?;
            Ok::<_, pgrx::spi::Error>(inserted.len() == 1)
        })
    })
    .unwrap_or_else(|e| spi_failed("record the proof's jti", e));
    if !fresh {
        return Err(identity(format!(
            "proof of possession refused: jti \"{}\" was already used (replay)",
            claims.jti
        )));
    }
    Ok(())
}

/// Validates a certificate without binding it, with the same engine bind uses.
#[pg_extern(schema = "kakunin", stable, parallel_restricted, strict)]
fn validate_certificate(
    certificate: &str,
    at: default!(pgrx::datum::TimestampWithTimeZone, "pg_catalog.now()"),
) -> pgrx::JsonB {
    let at_unix = time::unix_seconds(at.into_inner());
    let result = match certificate::check(certificate, at_unix, Visibility::Statement) {
        Ok(checked) => {
            let p = &checked.profile;
            let valid = checked.status == CertStatus::Active;
            json!({
                "valid": valid,
                "reason": if valid { None } else { Some(checked.status.as_str()) },
                "status": checked.status.as_str(),
                "serial": p.serial,
                "agent_id": p.agent_id,
                "tenant_id": p.tenant_id,
                "not_before": rfc3339(p.not_before),
                "not_after": rfc3339(p.not_after),
                "scope": p.scope.to_json(),
            })
        }
        Err(refusal) => json!({
            "valid": false,
            "reason": refusal.reason,
            "detail": refusal.message,
            "status": null,
            "serial": null,
            "agent_id": null,
            "tenant_id": null,
            "not_before": null,
            "not_after": null,
            "scope": null,
        }),
    };
    pgrx::JsonB(result)
}

/// `kakunin.bind_agent_serial(serial) → jsonb`: the gateway flow where the
/// gateway checked the client certificate itself and forwards only its serial
/// (`X-Kakunin-Cert-Serial`). Gateways only; the verify endpoint (through its
/// cache) supplies agent id, status and scope. If it cannot answer, nothing is
/// bound and the call fails.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn bind_agent_serial(serial: Option<&str>) -> SqlResult<pgrx::JsonB> {
    binding::refuse_if_restricted()?;
    if !privilege::caller_is_gateway() {
        return Err(identity("only members of kakunin_gateway may bind by serial").into());
    }
    let serial = serial.ok_or_else(|| identity("serial must not be NULL"))?;
    let serial = kakunin_core::serial::normalize(serial).map_err(|e| identity(e.to_string()))?;
    if verify_endpoint::url().is_none() {
        return Err(identity(
            "binding by serial needs the verify endpoint: kakunin.verify_url is not set",
        )
        .into());
    }
    let answer = verify_endpoint::status(&serial);
    if let Some(why) = &answer.failure {
        return Err(identity(format!(
            "the verify endpoint could not confirm serial {serial}: {why}"
        ))
        .into());
    }
    let agent_id = answer.agent_id.clone().ok_or_else(|| {
        identity(format!(
            "the verify endpoint named no agent for serial {serial}"
        ))
    })?;
    let scope = answer.scope.clone().unwrap_or_default();
    // The endpoint names no issuer: issuer-less rows and the agent's apply.
    let local = registry::registry_status(&serial, "", &agent_id, Read::new(Visibility::Latest));
    let status = local.map_or(answer.status, |l| worst(l, answer.status));
    let binding = Binding {
        agent_id,
        tenant_id: answer.tenant_id.clone(),
        instruments: scope.instruments.clone(),
        venues: scope.venues.clone(),
        scope: scope.to_json(),
        credential: Credential::Serial {
            serial: serial.clone(),
        },
        fixed_status: Some(answer.status).filter(|s| *s != CertStatus::Active),
    };
    let bound = store(&binding::seal(binding)?, true)?;
    Ok(pgrx::JsonB(json!({
        "agent_id": bound.agent_id,
        "tenant_id": bound.tenant_id,
        "serial": bound.serial(),
        "status": status.as_str(),
        "scope": bound.scope,
        "method": "serial",
    })))
}
