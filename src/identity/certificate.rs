//! The validation engine shared by bind and `kakunin.validate_certificate`:
//! decode, read the agent profile, validate the path to a trust anchor, and
//! read the registry status.
//!
//! A per-backend cache keyed by the SHA-256 of the caller's input keeps the
//! parsing and the path validation of a repeated certificate. Registry and
//! anchors are cached per invalidation epoch (see `pg::invalidation`), so a new
//! anchor set or a status change takes effect at the next bind.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use kakunin_core::binding::{effective_status, worst, CertStatus};
use kakunin_core::chain::{self, ChainError, ChainVerdict};
use kakunin_core::profile::{read_profile, AgentProfile, ProfileError};
use kakunin_core::{certificate_input, sha256_hex};
use sha2::{Digest, Sha256};

use crate::pg::invalidation::Read;
use crate::pg::spi::Visibility;
use crate::pg::time;
use crate::revocation::{crl, registry, trust};

/// A chain verdict is reused for at most this long, so an intermediate that
/// expires is noticed within a minute even if the leaf has not expired.
const VERDICT_TTL_SECONDS: i64 = 60;
const CACHE_CAPACITY: usize = 256;

/// Why a certificate was refused; `reason` is the stable code that
/// `validate_certificate` reports, `message` what bind raises.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

impl From<certificate_input::InputError> for Refusal {
    fn from(e: certificate_input::InputError) -> Self {
        Refusal {
            reason: "malformed",
            message: e.to_string(),
        }
    }
}

impl From<ProfileError> for Refusal {
    fn from(e: ProfileError) -> Self {
        let reason = match e {
            ProfileError::Malformed(_) => "malformed",
            ProfileError::MissingAgentUri => "missing_agent_uri",
            ProfileError::MultipleAgentUris => "multiple_agent_uris",
            ProfileError::MultipleTenantUris => "multiple_tenant_uris",
            ProfileError::BadIdentifier(_) => "bad_identifier",
            ProfileError::BadScope(_) => "bad_scope",
        };
        Refusal {
            reason,
            message: e.to_string(),
        }
    }
}

impl From<ChainError> for Refusal {
    fn from(e: ChainError) -> Self {
        Refusal {
            reason: e.reason(),
            message: e.to_string(),
        }
    }
}

/// A genuine agent certificate and its status at the time asked.
pub struct Checked {
    pub profile: Rc<AgentProfile>,
    /// SHA-256 of the leaf DER, lowercase hex.
    pub fingerprint: Rc<str>,
    /// The issuer's Name (DER), lowercase hex: the registry's and the binding's form.
    pub issuer_hex: Rc<str>,
    pub status: CertStatus,
}

struct Parsed {
    ders: Vec<Vec<u8>>,
    profile: Rc<AgentProfile>,
    fingerprint: Rc<str>,
    issuer_hex: Rc<str>,
    /// (anchors epoch tag, checked at, verdict)
    verdict: Option<(u64, i64, Result<ChainVerdict, ChainError>)>,
}

thread_local! {
    static CACHE: RefCell<HashMap<[u8; 32], Rc<RefCell<Parsed>>>> = RefCell::new(HashMap::new());
}

fn parse(input: &str) -> Result<Rc<RefCell<Parsed>>, Refusal> {
    let key: [u8; 32] = Sha256::digest(input.as_bytes()).into();
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(hit);
    }
    let ders = certificate_input::decode(input)?;
    let profile = read_profile(&ders[0])?;
    let parsed = Rc::new(RefCell::new(Parsed {
        fingerprint: sha256_hex(&ders[0]).into(),
        issuer_hex: hex::encode(&profile.issuer_der).into(),
        ders,
        profile: Rc::new(profile),
        verdict: None,
    }));
    CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, parsed.clone());
    });
    Ok(parsed)
}

/// Validates `input` at `at` (unix seconds). `Ok` means the certificate is
/// genuine; its status may still be anything but active.
pub fn check(input: &str, at: i64, visibility: Visibility) -> Result<Checked, Refusal> {
    let parsed = parse(input)?;
    let mut parsed = parsed.borrow_mut();
    let read = Read::new(visibility);
    let registry_entry = registry::registry_status(
        &parsed.profile.serial,
        &parsed.issuer_hex,
        &parsed.profile.agent_id,
        read,
    );
    let (anchors_tag, anchors) = trust::anchors(read);
    let now = time::now_unix();
    let reusable = |(tag, checked_at, _): &(u64, i64, Result<ChainVerdict, ChainError>)| {
        *tag == anchors_tag && at == now && (0..VERDICT_TTL_SECONDS).contains(&(now - checked_at))
    };
    let verdict = match parsed.verdict.as_ref().filter(|v| reusable(v)) {
        Some((_, _, verdict)) => verdict.clone(),
        None => {
            let verdict = chain::verify(
                &parsed.ders[0],
                &parsed.ders[1..],
                &anchors,
                at,
                parsed.profile.not_after,
            );
            if at == now {
                parsed.verdict = Some((anchors_tag, now, verdict.clone()));
            }
            verdict
        }
    }
    .map_err(|e| {
        let mut refusal = Refusal::from(e);
        if trust::test_anchors_ignored() {
            refusal.message += " (test anchors are trusted only while kakunin.allow_test_ca is on)";
        }
        refusal
    })?;
    let stale_crl = crl::stale_status(&parsed.profile.issuer_der, read, at);
    let status = match verdict {
        ChainVerdict::Expired => match registry_entry {
            Some(s) if s != CertStatus::Active => s,
            _ => CertStatus::Expired,
        },
        ChainVerdict::Valid => effective_status(registry_entry, parsed.profile.not_after, at),
    };
    // Stale revocation data makes an otherwise active certificate unknown.
    let status = stale_crl.map_or(status, |stale| worst(status, stale));
    Ok(Checked {
        profile: parsed.profile.clone(),
        fingerprint: parsed.fingerprint.clone(),
        issuer_hex: parsed.issuer_hex.clone(),
        status,
    })
}
