//! Proof of possession: a compact JWS signed by the certificate's own private key.
//!
//! A certificate is public, so presenting one proves nothing. A caller that is not
//! a trusted gateway proves it holds the key by signing a short-lived JWS whose
//! claims hold `iat` (within the last [`MAX_AGE_SECONDS`]), a unique `jti` (the
//! caller of [`verify`] must refuse a replay) and `aud` equal to the database name.
//! Algorithms: ES256, ES384, EdDSA (Ed25519), RS256, PS256; `none` and any
//! algorithm that does not match the certificate's key type are refused.

use base64::Engine;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::Value;

use crate::spki::{self, KeyType};

pub const MAX_AGE_SECONDS: i64 = 300;
/// Tolerated clock skew for an `iat` slightly in the future.
pub const MAX_FUTURE_SKEW_SECONDS: i64 = 60;
pub const MAX_PROOF_BYTES: usize = 16 * 1024;
const MAX_JTI_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofClaims {
    pub jti: String,
    pub iat: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    TooLarge,
    Malformed(String),
    UnsupportedAlgorithm(String),
    KeyMismatch(String),
    BadSignature,
    Stale { iat: i64, now: i64 },
    FromTheFuture { iat: i64, now: i64 },
    Expired,
    WrongAudience,
    MissingClaim(&'static str),
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = "proof of possession refused";
        match self {
            ProofError::TooLarge => write!(f, "{p}: proof is larger than {MAX_PROOF_BYTES} bytes"),
            ProofError::Malformed(e) => write!(f, "{p}: malformed JWS: {e}"),
            ProofError::UnsupportedAlgorithm(a) => write!(
                f,
                "{p}: algorithm \"{a}\" is not one of ES256, ES384, EdDSA, RS256, PS256"
            ),
            ProofError::KeyMismatch(e) => write!(f, "{p}: {e}"),
            ProofError::BadSignature => write!(
                f,
                "{p}: signature does not verify with the certificate's public key"
            ),
            ProofError::Stale { iat, now } => write!(
                f,
                "{p}: iat {iat} is more than {MAX_AGE_SECONDS} seconds before now ({now})"
            ),
            ProofError::FromTheFuture { iat, now } => {
                write!(f, "{p}: iat {iat} is in the future (now {now})")
            }
            ProofError::Expired => write!(f, "{p}: exp is in the past"),
            ProofError::WrongAudience => {
                write!(f, "{p}: aud does not name the current database (with kakunin.proof_audience set: \"<proof_audience>/<database>\")")
            }
            ProofError::MissingClaim(c) => write!(f, "{p}: claim \"{c}\" is missing or invalid"),
        }
    }
}

impl std::error::Error for ProofError {}

fn b64url(part: &str, what: &str) -> Result<Vec<u8>, ProofError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProofError::Malformed(format!("{what} is not base64url")))
}

/// Verifies `jws` against the certificate key `spki_der`, for database `audience`,
/// at `now` (unix seconds). Returns the claims the caller must record to refuse
/// a replay of `jti`.
pub fn verify(
    jws: &str,
    spki_der: &[u8],
    audience: &str,
    now: i64,
) -> Result<ProofClaims, ProofError> {
    if jws.len() > MAX_PROOF_BYTES {
        return Err(ProofError::TooLarge);
    }
    let mut parts = jws.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let header: Value = serde_json::from_slice(&b64url(h, "header")?)
        .map_err(|_| ProofError::Malformed("header is not JSON".into()))?;
    if header.get("crit").is_some() {
        return Err(ProofError::Malformed(
            "critical header parameters are not supported".into(),
        ));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| ProofError::Malformed("header has no alg".into()))?;
    let signature = b64url(s, "signature")?;
    let (algorithm, key_bytes) = algorithm_for(alg, spki_der)?;
    let signing_input = &jws.trim().as_bytes()[..h.len() + 1 + p.len()];
    UnparsedPublicKey::new(algorithm, key_bytes)
        .verify(signing_input, &signature)
        .map_err(|_| ProofError::BadSignature)?;

    let claims: Value = serde_json::from_slice(&b64url(p, "payload")?)
        .map_err(|_| ProofError::Malformed("payload is not JSON".into()))?;
    check_claims(&claims, audience, now)
}

fn check_claims(claims: &Value, audience: &str, now: i64) -> Result<ProofClaims, ProofError> {
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(ProofError::MissingClaim("iat"))?;
    if iat < now - MAX_AGE_SECONDS {
        return Err(ProofError::Stale { iat, now });
    }
    if iat > now + MAX_FUTURE_SKEW_SECONDS {
        return Err(ProofError::FromTheFuture { iat, now });
    }
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_i64().ok_or(ProofError::MissingClaim("exp"))?;
        if exp <= now {
            return Err(ProofError::Expired);
        }
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => return Err(ProofError::MissingClaim("aud")),
    };
    if !audience_ok {
        return Err(ProofError::WrongAudience);
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or(ProofError::MissingClaim("jti"))?;
    Ok(ProofClaims {
        jti: jti.to_string(),
        iat,
    })
}

/// The JWS algorithm must match the certificate's key type (RFC 7518 §3.1).
fn algorithm_for<'k>(
    alg: &str,
    spki_der: &'k [u8],
) -> Result<(&'static dyn VerificationAlgorithm, &'k [u8]), ProofError> {
    let (key_type, key) = spki::read(spki_der).map_err(ProofError::KeyMismatch)?;
    let algorithm: &'static dyn VerificationAlgorithm = match (alg, key_type) {
        ("ES256", KeyType::EcP256) => &signature::ECDSA_P256_SHA256_FIXED,
        ("ES384", KeyType::EcP384) => &signature::ECDSA_P384_SHA384_FIXED,
        ("EdDSA", KeyType::Ed25519) => &signature::ED25519,
        ("RS256", KeyType::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("PS256", KeyType::Rsa) => &signature::RSA_PSS_2048_8192_SHA256,
        ("ES256" | "ES384" | "EdDSA" | "RS256" | "PS256", key_type) => {
            return Err(ProofError::KeyMismatch(format!(
                "algorithm {alg} does not match the certificate's key type ({key_type})"
            )))
        }
        (other, _) => return Err(ProofError::UnsupportedAlgorithm(other.to_string())),
    };
    Ok((algorithm, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_window_and_audience() {
        let now = 1_700_000_000;
        let ok = json!({"iat": now - 10, "jti": "a", "aud": "db"});
        assert_eq!(check_claims(&ok, "db", now).unwrap().jti, "a");
        let listed = json!({"iat": now, "jti": "a", "aud": ["x", "db"]});
        assert!(check_claims(&listed, "db", now).is_ok());
        let stale = json!({"iat": now - 301, "jti": "a", "aud": "db"});
        assert!(matches!(
            check_claims(&stale, "db", now),
            Err(ProofError::Stale { .. })
        ));
        let future = json!({"iat": now + 61, "jti": "a", "aud": "db"});
        assert!(matches!(
            check_claims(&future, "db", now),
            Err(ProofError::FromTheFuture { .. })
        ));
        let other_db = json!({"iat": now, "jti": "a", "aud": "other"});
        assert_eq!(
            check_claims(&other_db, "db", now),
            Err(ProofError::WrongAudience)
        );
        let no_jti = json!({"iat": now, "aud": "db"});
        assert_eq!(
            check_claims(&no_jti, "db", now),
            Err(ProofError::MissingClaim("jti"))
        );
        let expired = json!({"iat": now, "jti": "a", "aud": "db", "exp": now});
        assert_eq!(check_claims(&expired, "db", now), Err(ProofError::Expired));
    }

    #[test]
    fn structurally_bad_proofs_are_refused() {
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(
                matches!(verify(bad, &[], "db", 0), Err(ProofError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            verify(&"a".repeat(MAX_PROOF_BYTES + 1), &[], "db", 0),
            Err(ProofError::TooLarge)
        );
    }
}
