//! Test support shared by the unit tests, the `#[pg_test]`s and the pgTAP
//! fixture loader: the committed test PKI (`tests/fixtures/pki`, minted by
//! `tests/fixtures/mint.sh`) and a signer for proof-of-possession JWS.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        /// Every committed certificate (`<name>.pem`) and key (`<name>.key`).
        pub const FIXTURES: &[(&str, &str, &str)] = &[
            $(($name,
               include_str!(concat!("../../../tests/fixtures/pki/", $name, ".pem")),
               include_str!(concat!("../../../tests/fixtures/pki/", $name, ".key")))),*
        ];
    };
}

fixtures!(
    "root-ca",
    "intermediate-ca",
    "agent-a",
    "agent-b",
    "agent-bench",
    "agent-rsa",
    "agent-p384",
    "no-agent",
    "two-agents",
    "two-tenants",
    "no-scope",
    "bad-scope",
    "server-only",
    "unknown-critical",
    "twin-root",
    "twin-rogue",
    "ca-as-leaf",
    "signed-by-leaf",
    "expired",
    "not-yet-valid",
    "rogue-ca",
    "rogue-agent",
);

/// The committed CRLs (`<name>.pem`), minted with `openssl ca -gencrl`.
pub const CRLS: &[(&str, &str)] = &[
    (
        "crl-current",
        include_str!("../../../tests/fixtures/pki/crl-current.pem"),
    ),
    (
        "crl-stale",
        include_str!("../../../tests/fixtures/pki/crl-stale.pem"),
    ),
    (
        "crl-rogue-twin",
        include_str!("../../../tests/fixtures/pki/crl-rogue-twin.pem"),
    ),
    (
        "crl-rogue",
        include_str!("../../../tests/fixtures/pki/crl-rogue.pem"),
    ),
    (
        "crl-imposter",
        include_str!("../../../tests/fixtures/pki/crl-imposter.pem"),
    ),
];

fn fixture(name: &str) -> &'static (&'static str, &'static str, &'static str) {
    FIXTURES
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("no fixture named {name}"))
}

/// PEM of the fixture certificate `name`.
pub fn cert_pem(name: &str) -> &'static str {
    fixture(name).1
}

/// PEM (PKCS#8) of the fixture private key `name`.
pub fn key_pem(name: &str) -> &'static str {
    fixture(name).2
}

/// `agent-a` followed by its intermediate, as a caller presents a chain.
pub fn agent_a_chain() -> String {
    format!("{}{}", cert_pem("agent-a"), cert_pem("intermediate-ca"))
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `claims` as a compact JWS with the PKCS#8 PEM key `key_pem` and JWS
/// algorithm `alg` (ES256, ES384, EdDSA, RS256, PS256).
pub fn sign_jws(key_pem: &str, alg: &str, claims: &serde_json::Value) -> Result<String, String> {
    let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("key is not PKCS#8 PEM: {e:?}"))?;
    let der = key.secret_pkcs8_der();
    let header = serde_json::json!({"alg": alg, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let rng = SystemRandom::new();
    let err = |e: ring::error::KeyRejected| format!("key rejected for {alg}: {e}");
    let sig: Vec<u8> = match alg {
        "ES256" | "ES384" => {
            let params = if alg == "ES256" {
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = EcdsaKeyPair::from_pkcs8(params, der, &rng).map_err(err)?;
            pair.sign(&rng, input.as_bytes())
                .map_err(|_| "signing failed".to_string())?
                .as_ref()
                .to_vec()
        }
        "EdDSA" => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(err)?;
            pair.sign(input.as_bytes()).as_ref().to_vec()
        }
        "RS256" | "PS256" => {
            let pair = RsaKeyPair::from_pkcs8(der).map_err(err)?;
            let padding: &dyn signature::RsaEncoding = if alg == "RS256" {
                &signature::RSA_PKCS1_SHA256
            } else {
                &signature::RSA_PSS_SHA256
            };
            let mut sig = vec![0; pair.public().modulus_len()];
            pair.sign(padding, &rng, input.as_bytes(), &mut sig)
                .map_err(|_| "signing failed".to_string())?;
            sig
        }
        other => return Err(format!("unsupported algorithm {other}")),
    };
    Ok(format!("{input}.{}", b64url(&sig)))
}

/// The JWS algorithm that matches each fixture agent's key type.
pub fn alg_for(agent: &str) -> &'static str {
    match agent {
        "agent-b" => "EdDSA",
        "agent-rsa" => "RS256",
        "agent-p384" => "ES384",
        _ => "ES256",
    }
}

/// A fresh proof for fixture `agent`, audience `aud`, issued `iat_offset`
/// seconds from now.
pub fn proof(agent: &str, aud: &str, jti: &str, iat_offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let claims = serde_json::json!({"iat": now + iat_offset, "jti": jti, "aud": aud});
    sign_jws(key_pem(agent), alg_for(agent), &claims).unwrap_or_else(|e| panic!("{e}"))
}
