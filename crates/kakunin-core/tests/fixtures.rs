//! Path validation, profile and proof checks against the committed test PKI
//! (tests/fixtures/pki, minted by tests/fixtures/mint.sh with openssl).

use kakunin_core::certificate_input::decode;
use kakunin_core::chain::{self, ChainError, ChainVerdict};
use kakunin_core::profile::{read_profile, ProfileError};
use kakunin_core::proof::{self, ProofError};
use kakunin_testkit::{agent_a_chain, cert_pem, key_pem, proof as mint_proof, sign_jws};

const NOW: i64 = 1_800_000_000; // 2027-01-15

fn der(name: &str) -> Vec<u8> {
    decode(cert_pem(name)).unwrap().remove(0)
}

fn anchors() -> Vec<Vec<u8>> {
    vec![der("root-ca")]
}

fn verify_named(name: &str) -> Result<ChainVerdict, ChainError> {
    let ders = decode(cert_pem(name)).unwrap();
    let profile_not_after = read_profile(&ders[0]).map(|p| p.not_after).unwrap_or(NOW);
    chain::verify(&ders[0], &ders[1..], &anchors(), NOW, profile_not_after)
}

#[test]
fn agent_with_intermediate_chains_to_root() {
    let ders = decode(&agent_a_chain()).unwrap();
    assert_eq!(ders.len(), 2);
    let p = read_profile(&ders[0]).unwrap();
    assert_eq!(p.agent_id, "agent-a");
    assert_eq!(p.tenant_id.as_deref(), Some("tenant-1"));
    assert_eq!(p.scope.instruments, ["AAPL", "MSFT"]);
    assert_eq!(p.scope.venues, ["XNAS"]);
    assert_eq!(p.scope.to_json()["limits"]["max_notional"], 1_000_000);
    assert_eq!(
        chain::verify(&ders[0], &ders[1..], &anchors(), NOW, p.not_after),
        Ok(ChainVerdict::Valid)
    );
    // Without the intermediate the issuer is unknown.
    assert_eq!(
        chain::verify(&ders[0], &[], &anchors(), NOW, p.not_after),
        Err(ChainError::UntrustedIssuer)
    );
}

#[test]
fn every_key_type_chains() {
    for name in ["agent-b", "agent-rsa", "agent-p384", "no-scope"] {
        assert_eq!(verify_named(name), Ok(ChainVerdict::Valid), "{name}");
    }
}

#[test]
fn careless_validator_traps_are_refused() {
    assert_eq!(
        verify_named("rogue-agent"),
        Err(ChainError::UntrustedIssuer)
    );
    assert_eq!(verify_named("not-yet-valid"), Err(ChainError::NotYetValid));
    assert_eq!(verify_named("ca-as-leaf"), Err(ChainError::CaUsedAsLeaf));
    assert_eq!(verify_named("server-only"), Err(ChainError::WrongKeyUsage));
    // Refused in the caller's terms: the extension's OID, no Rust variant name.
    let unknown = verify_named("unknown-critical").unwrap_err().to_string();
    assert_eq!(
        unknown,
        "certificate is malformed: it has a critical extension that is not supported (RFC 5280 §4.2): OID 1.3.6.1.4.1.99999.1"
    );
    // signed-by-leaf with agent-a presented as its "intermediate".
    let forged = der("signed-by-leaf");
    let result = chain::verify(&forged, &[der("agent-a")], &anchors(), NOW, NOW + 1);
    assert!(
        matches!(
            result,
            Err(ChainError::IssuerNotCa | ChainError::UntrustedIssuer)
        ),
        "{result:?}"
    );
    assert_eq!(
        chain::verify(&der("agent-b"), &[], &[], NOW, NOW + 1),
        Err(ChainError::NoTrustAnchors)
    );
}

#[test]
fn expired_but_genuine_is_expired_not_refused() {
    assert_eq!(verify_named("expired"), Ok(ChainVerdict::Expired));
}

#[test]
fn profile_refusals() {
    assert_eq!(
        read_profile(&der("no-agent")),
        Err(ProfileError::MissingAgentUri)
    );
    assert_eq!(
        read_profile(&der("two-agents")),
        Err(ProfileError::MultipleAgentUris)
    );
    assert_eq!(
        read_profile(&der("two-tenants")),
        Err(ProfileError::MultipleTenantUris)
    );
    assert!(matches!(
        read_profile(&der("bad-scope")),
        Err(ProfileError::BadScope(_))
    ));
    assert!(matches!(
        read_profile(&[0x30, 0x00]),
        Err(ProfileError::Malformed(_))
    ));
    let no_scope = read_profile(&der("no-scope")).unwrap();
    assert!(no_scope.scope.instruments.is_empty() && no_scope.tenant_id.is_none());
}

#[test]
fn anchors_must_be_cas() {
    assert!(chain::check_anchor(&der("root-ca")).is_ok());
    assert!(chain::check_anchor(&der("intermediate-ca")).is_ok());
    assert!(chain::check_anchor(&der("agent-a")).is_err());
    assert!(chain::check_anchor(&[1, 2, 3]).is_err());
}

fn spki(name: &str) -> Vec<u8> {
    read_profile(&der(name)).unwrap().spki_der
}

#[test]
fn proofs_verify_for_every_algorithm() {
    for agent in ["agent-a", "agent-b", "agent-rsa", "agent-p384"] {
        let jws = mint_proof(agent, "db", "jti-1", 0);
        let now = proof_now();
        let claims = proof::verify(&jws, &spki(agent), "db", now).unwrap();
        assert_eq!(claims.jti, "jti-1", "{agent}");
    }
    let pss = sign_jws(
        key_pem("agent-rsa"),
        "PS256",
        &serde_json::json!({"iat": proof_now(), "jti": "p", "aud": "db"}),
    )
    .unwrap();
    assert!(proof::verify(&pss, &spki("agent-rsa"), "db", proof_now()).is_ok());
}

fn proof_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn proofs_by_another_key_or_tampered_are_refused() {
    let now = proof_now();
    let by_b = mint_proof("agent-b", "db", "x", 0);
    // agent-b's EdDSA proof presented with agent-a's (P-256) certificate.
    assert!(matches!(
        proof::verify(&by_b, &spki("agent-a"), "db", now),
        Err(ProofError::KeyMismatch(_))
    ));
    // The rogue agent shares agent-a's identity but not its key.
    let by_rogue = mint_proof("rogue-agent", "db", "x", 0);
    assert_eq!(
        proof::verify(&by_rogue, &spki("agent-a"), "db", now),
        Err(ProofError::BadSignature)
    );
    let good = mint_proof("agent-a", "db", "x", 0);
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_claims =
        base64_url(&serde_json::json!({"iat": now, "jti": "y", "aud": "db"}).to_string());
    parts[1] = &forged_claims;
    assert_eq!(
        proof::verify(&parts.join("."), &spki("agent-a"), "db", now),
        Err(ProofError::BadSignature)
    );
    let none = format!("{}.{}.", base64_url(r#"{"alg":"none"}"#), forged_claims);
    assert!(matches!(
        proof::verify(&none, &spki("agent-a"), "db", now),
        Err(ProofError::UnsupportedAlgorithm(_))
    ));
    let stale = mint_proof("agent-a", "db", "x", -400);
    assert!(matches!(
        proof::verify(&stale, &spki("agent-a"), "db", now),
        Err(ProofError::Stale { .. })
    ));
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn crl(name: &str) -> kakunin_core::crl::Crl {
    let pem = kakunin_testkit::CRLS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1;
    kakunin_core::crl::parse(pem).unwrap()
}

#[test]
fn crls_parse_and_verify_against_their_issuer_only() {
    let current = crl("crl-current");
    let root_spki = read_profile_spki("root-ca");
    assert!(current.verify(&root_spki).is_ok());
    assert_eq!(current.number.as_deref(), Some("02"));
    let p384 = decode(cert_pem("agent-p384")).unwrap().remove(0);
    let p384_serial = read_profile(&p384).unwrap().serial;
    assert_eq!(current.revoked.len(), 1);
    assert_eq!(current.revoked[0].serial, p384_serial);
    assert_eq!(current.revoked[0].reason.as_deref(), Some("keyCompromise"));
    let rogue = crl("crl-rogue");
    assert!(
        rogue.verify(&root_spki).is_err(),
        "a rogue CRL does not verify with the root's key"
    );
    assert_ne!(rogue.issuer_der, current.issuer_der);
    let stale = crl("crl-stale");
    assert!(stale.verify(&root_spki).is_ok());
    assert!(stale.next_update.unwrap() < NOW);
    assert!(stale.is_older_than(current.number.as_deref(), current.this_update));
    assert!(!current.is_older_than(stale.number.as_deref(), stale.this_update));
    assert!(kakunin_core::crl::parse("garbage").is_err());
}

fn read_profile_spki(name: &str) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let der = der(name);
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
    cert.public_key().raw.to_vec()
}
