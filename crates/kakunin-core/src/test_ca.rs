//! A certificate authority for policy authors' tests (issue 12): a P-256 key
//! and a self-signed CA certificate, and agent certificates in the profile
//! [`crate::profile`] reads — the same shape as `tests/fixtures/mint.sh`'s
//! `agent_cert` recipe (RFC 5280 §4.1; SAN URIs, the scope extension).
//!
//! Keys and signatures come from `ring` (ECDSA P-256 with SHA-256, RFC 5758
//! §3.2); the DER is assembled from x509-cert's types, except the scope
//! extension, whose OID x509-cert cannot hold (a 128-bit arc, see
//! [`crate::profile`]), and the two SEQUENCEs around them, whose fields
//! x509-cert keeps private without its `builder` feature.

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use x509_cert::der::asn1::{BitString, Ia5String, OctetString, Utf8StringRef};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{DateTime, Encode, Header, Length, Tag, TagNumber};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use crate::profile::{ProfileError, AGENT_URI_PREFIX, TENANT_URI_PREFIX};
use crate::scope::FinancialScope;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ID_KP_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// A test CA is valid for ten years from its creation.
pub const CA_VALIDITY_SECONDS: i64 = 10 * 365 * 86_400;
/// Certificates start a minute in the past, so a server whose clock is a
/// little behind the one that issued them still accepts them.
const BACKDATE_SECONDS: i64 = 60;

/// What went wrong making a certificate: the caller's argument, or (never
/// expected) the encoder or the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueError {
    BadArgument(String),
    Internal(String),
}

impl std::fmt::Display for IssueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IssueError::BadArgument(m) | IssueError::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for IssueError {}

fn internal(e: impl std::fmt::Display) -> IssueError {
    IssueError::Internal(e.to_string())
}

/// A test CA: its PKCS#8 private key and its certificate (DER).
pub struct TestCa {
    pub pkcs8: Vec<u8>,
    pub certificate: Vec<u8>,
}

/// Creates a CA named `O=kakunin test,CN=<common_name>`, valid from `now`
/// (unix seconds) for [`CA_VALIDITY_SECONDS`].
pub fn create(common_name: &str, now: i64) -> Result<TestCa, IssueError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(internal)?
        .as_ref()
        .to_vec();
    let key = key_pair(&pkcs8)?;
    let name = name(common_name)?;
    let extensions = [
        extension(
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            },
            true,
        )?,
        extension(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign), true)?,
        // Marks it as the test kit's: `add_trust_anchor` refuses it (profile::is_test_ca).
        raw_extension(
            &crate::profile::oid_der_body(crate::profile::TEST_CA_EXTENSION_OID),
            &[0x05, 0x00],
        )?,
    ];
    let certificate = sign(
        &key,
        &rng,
        &name,
        &name,
        key.public_key().as_ref(),
        (now - BACKDATE_SECONDS, now + CA_VALIDITY_SECONDS),
        &extensions,
    )?;
    Ok(TestCa { pkcs8, certificate })
}

/// An issued certificate (DER) and its serial (canonical hex), as the profile reads it back.
#[derive(Debug)]
pub struct Issued {
    pub der: Vec<u8>,
    pub serial: String,
}

/// What an agent certificate says.
pub struct AgentRequest<'a> {
    pub agent_id: &'a str,
    pub tenant_id: Option<&'a str>,
    pub scope: &'a FinancialScope,
    /// Unix seconds.
    pub not_after: i64,
}

/// Issues an agent certificate signed by `ca` (DER), valid from `now` until
/// `request.not_after`, for a fresh P-256 key nobody keeps (the kit binds
/// without a proof of possession). Refuses what the profile would refuse to read.
pub fn issue(ca: &TestCa, request: &AgentRequest<'_>, now: i64) -> Result<Issued, IssueError> {
    let rng = SystemRandom::new();
    let ca_key = key_pair(&ca.pkcs8)?;
    let ca_cert = crate::profile::read_ca_summary(&ca.certificate).map_err(internal)?;
    if request.not_after <= now {
        return Err(IssueError::BadArgument("valid_for must be positive".into()));
    }
    if request.not_after > ca_cert.not_after {
        return Err(IssueError::BadArgument(
            "valid_for ends after the test CA expires".into(),
        ));
    }
    let checked = |what, id| {
        crate::profile::check_identifier(what, id).map_err(|e| match e {
            ProfileError::BadIdentifier(m) => IssueError::BadArgument(m),
            other => IssueError::BadArgument(other.to_string()),
        })
    };
    let mut uris = vec![uri(
        AGENT_URI_PREFIX,
        &checked("agent id", request.agent_id)?,
    )?];
    if let Some(tenant) = request.tenant_id {
        uris.push(uri(TENANT_URI_PREFIX, &checked("tenant id", tenant)?)?);
    }
    let leaf_pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(internal)?;
    let leaf_key = key_pair(leaf_pkcs8.as_ref())?;
    let issuer = x509_cert::der::Decode::from_der(&ca_cert.subject_der).map_err(internal)?;
    let mut extensions = vec![
        extension(
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
            true,
        )?,
        extension(&KeyUsage(KeyUsages::DigitalSignature.into()), true)?,
        extension(&ExtendedKeyUsage(vec![ID_KP_CLIENT_AUTH]), false)?,
        extension(&SubjectAltName(uris), false)?,
    ];
    if !request.scope.document.is_empty() {
        extensions.push(scope_extension(&request.scope.to_json().to_string())?);
    }
    let der = sign(
        &ca_key,
        &rng,
        &issuer,
        &name(request.agent_id)?,
        leaf_key.public_key().as_ref(),
        (now - BACKDATE_SECONDS, request.not_after),
        &extensions,
    )?;
    // What we issue must read back in the profile (and so bind).
    let serial = crate::profile::read_profile(&der).map_err(internal)?.serial;
    Ok(Issued { der, serial })
}

fn key_pair(pkcs8: &[u8]) -> Result<EcdsaKeyPair, IssueError> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &SystemRandom::new())
        .map_err(|e| internal(format!("the test CA's key is unusable: {e}")))
}

fn name(common_name: &str) -> Result<Name, IssueError> {
    // RFC 4514 string form: escape what it treats specially.
    let escaped: String = common_name
        .chars()
        .flat_map(|c| match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '#' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("CN={escaped},O=kakunin test")
        .parse()
        .map_err(|e| IssueError::BadArgument(format!("name \"{common_name}\": {e}")))
}

fn uri(prefix: &str, id: &str) -> Result<GeneralName, IssueError> {
    let text = format!("{prefix}{id}");
    Ia5String::new(&text)
        .map(GeneralName::UniformResourceIdentifier)
        .map_err(|_| IssueError::BadArgument(format!("\"{id}\" is not ASCII")))
}

fn extension<T: AssociatedOid + Encode>(value: &T, critical: bool) -> Result<Vec<u8>, IssueError> {
    Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(internal)?).map_err(internal)?,
    }
    .to_der()
    .map_err(internal)
}

/// The scope extension: its value a DER UTF8String of the scope's JSON ([`crate::scope`]).
fn scope_extension(json: &str) -> Result<Vec<u8>, IssueError> {
    let value = Utf8StringRef::new(json)
        .and_then(|s| s.to_der())
        .map_err(internal)?;
    raw_extension(&crate::profile::scope_oid_der_body(), &value)
}

/// `Extension ::= SEQUENCE { extnID, extnValue OCTET STRING }` (not critical)
/// for an OID given as its DER content octets and a DER value.
fn raw_extension(oid: &[u8], value: &[u8]) -> Result<Vec<u8>, IssueError> {
    let oid_der = tlv(Tag::ObjectIdentifier, oid)?;
    let octets = OctetString::new(value)
        .and_then(|o| o.to_der())
        .map_err(internal)?;
    tlv(Tag::Sequence, &[oid_der, octets].concat())
}

/// Tag, DER length and `content`.
fn tlv(tag: Tag, content: &[u8]) -> Result<Vec<u8>, IssueError> {
    let length = Length::try_from(content.len()).map_err(internal)?;
    let mut out = Header::new(tag, length).to_der().map_err(internal)?;
    out.extend_from_slice(content);
    Ok(out)
}

fn explicit(number: u8, content: &[u8]) -> Result<Vec<u8>, IssueError> {
    let tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(number.into()),
    };
    tlv(tag, content)
}

fn time(unix: i64) -> Result<Time, IssueError> {
    let seconds = u64::try_from(unix).map_err(|_| internal("a time before 1970"))?;
    DateTime::from_unix_duration(std::time::Duration::from_secs(seconds))
        .map(Time::from)
        .map_err(|_| IssueError::BadArgument("a validity end past the year 9999".into()))
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`
/// (RFC 5280 §4.1), v3, a random positive 64-bit serial.
fn sign(
    key: &EcdsaKeyPair,
    rng: &SystemRandom,
    issuer: &Name,
    subject: &Name,
    public_point: &[u8],
    (not_before, not_after): (i64, i64),
    extensions: &[Vec<u8>],
) -> Result<Vec<u8>, IssueError> {
    let mut serial = [0u8; 8];
    rng.fill(&mut serial).map_err(internal)?;
    serial[0] = (serial[0] & 0x7f) | 0x01; // positive, eight bytes
    let algorithm = AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    }
    .to_der()
    .map_err(internal)?;
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ID_EC_PUBLIC_KEY,
            parameters: Some(SECP256R1.into()),
        },
        subject_public_key: BitString::from_bytes(public_point).map_err(internal)?,
    };
    let validity =
        Validity::<x509_cert::certificate::Rfc5280>::new(time(not_before)?, time(not_after)?);
    let encode = |e: &dyn Fn() -> x509_cert::der::Result<Vec<u8>>| e().map_err(internal);
    let tbs = tlv(
        Tag::Sequence,
        &[
            explicit(0, &encode(&|| 2u8.to_der())?)?, // v3
            encode(&|| SerialNumber::<x509_cert::certificate::Rfc5280>::new(&serial)?.to_der())?,
            algorithm.clone(),
            encode(&|| issuer.to_der())?,
            encode(&|| validity.to_der())?,
            encode(&|| subject.to_der())?,
            encode(&|| spki.to_der())?,
            explicit(3, &tlv(Tag::Sequence, &extensions.concat())?)?,
        ]
        .concat(),
    )?;
    let signature = key.sign(rng, &tbs).map_err(internal)?;
    let signature = BitString::from_bytes(signature.as_ref())
        .and_then(|b| b.to_der())
        .map_err(internal)?;
    tlv(Tag::Sequence, &[tbs, algorithm, signature].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{self, ChainVerdict};

    const NOW: i64 = 1_790_000_000; // 2026-09

    fn scope(json: &str) -> FinancialScope {
        FinancialScope::from_json(json).expect("scope")
    }

    #[test]
    fn an_issued_certificate_reads_back_and_chains_to_its_ca() {
        let ca = create("kakunin test CA", NOW).expect("ca");
        chain::check_anchor(&ca.certificate).expect("the CA is a usable anchor");
        assert!(
            crate::profile::is_test_ca(&ca.certificate),
            "and marked as the test kit's"
        );
        let scope = scope(r#"{"instruments":["AAPL"],"venues":["XNAS"]}"#);
        let request = AgentRequest {
            agent_id: "agt-1",
            tenant_id: Some("tenant-1"),
            scope: &scope,
            not_after: NOW + 3600,
        };
        let der = issue(&ca, &request, NOW).expect("issue").der;
        let profile = crate::profile::read_profile(&der).expect("profile");
        assert!(
            !crate::profile::is_test_ca(&der),
            "only the CA carries the marker"
        );
        assert_eq!(profile.agent_id, "agt-1");
        assert_eq!(profile.tenant_id.as_deref(), Some("tenant-1"));
        assert_eq!(profile.scope.instruments, vec!["AAPL".to_string()]);
        assert_eq!(profile.not_after, NOW + 3600);
        let verdict = chain::verify(
            &der,
            &[],
            std::slice::from_ref(&ca.certificate),
            NOW,
            profile.not_after,
        );
        assert_eq!(verdict, Ok(ChainVerdict::Valid));
        // Another CA's anchor does not vouch for it.
        let other = create("another", NOW).expect("ca");
        assert!(chain::verify(&der, &[], &[other.certificate], NOW, profile.not_after).is_err());
    }

    #[test]
    fn no_tenant_and_empty_scope_are_left_out() {
        let ca = create("ca", NOW).expect("ca");
        let empty = FinancialScope::default();
        let request = AgentRequest {
            agent_id: "a",
            tenant_id: None,
            scope: &empty,
            not_after: NOW + 60,
        };
        let profile = crate::profile::read_profile(&issue(&ca, &request, NOW).expect("issue").der)
            .expect("profile");
        assert_eq!(profile.tenant_id, None);
        assert_eq!(profile.scope, FinancialScope::default());
    }

    #[test]
    fn bad_requests_are_refused_in_the_callers_terms() {
        let ca = create("ca", NOW).expect("ca");
        let empty = FinancialScope::default();
        let ask = |agent_id: &'static str, not_after: i64| {
            issue(
                &ca,
                &AgentRequest {
                    agent_id,
                    tenant_id: None,
                    scope: &empty,
                    not_after,
                },
                NOW,
            )
        };
        let refused = |r: Result<Issued, IssueError>| match r {
            Err(IssueError::BadArgument(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(refused(ask("a", NOW)), "valid_for must be positive");
        assert_eq!(
            refused(ask("a", NOW + CA_VALIDITY_SECONDS + 1)),
            "valid_for ends after the test CA expires"
        );
        assert!(refused(ask("", NOW + 60)).contains("agent id is empty"));
        assert!(refused(ask("has space", NOW + 60)).contains("whitespace"));
        assert!(refused(ask("agént", NOW + 60)).contains("not ASCII"));
    }

    #[test]
    fn serials_differ() {
        let ca = create("ca", NOW).expect("ca");
        let empty = FinancialScope::default();
        let request = AgentRequest {
            agent_id: "a",
            tenant_id: None,
            scope: &empty,
            not_after: NOW + 60,
        };
        let issued = issue(&ca, &request, NOW).unwrap();
        let read_back = crate::profile::read_profile(&issued.der).expect("profile");
        assert_eq!(issued.serial, read_back.serial);
        assert_ne!(issued.serial, issue(&ca, &request, NOW).unwrap().serial);
    }
}
