//! The agent profile: what kakunin_pg reads from a leaf certificate.
//!
//! - Agent id: the SAN URI `urn:kakunin:agent:<agent_id>`, exactly one (as SPIFFE
//!   refuses two SPIFFE IDs, two agent URIs make the identity ambiguous).
//! - Tenant: the SAN URI `urn:kakunin:tenant:<tenant_id>`, at most one.
//! - Serial: canonical hex (see [`crate::serial`]).
//! - Financial scope: see [`crate::scope`].

use x509_cert::der::asn1::Utf8StringRef;
use x509_cert::der::Decode;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::scope::{FinancialScope, SCOPE_EXTENSION_OID};

// x509-parser rather than x509-cert reads the leaf: const-oid (under x509-cert)
// holds OID arcs in u32, and the scope OID's second arc is a 128-bit UUID, so
// x509-cert refuses the whole certificate. x509-parser keeps OIDs as bytes.

pub const AGENT_URI_PREFIX: &str = "urn:kakunin:agent:";
pub const TENANT_URI_PREFIX: &str = "urn:kakunin:tenant:";
const MAX_ID_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct AgentProfile {
    pub agent_id: String,
    pub tenant_id: Option<String>,
    pub serial: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub scope: FinancialScope,
    /// SubjectPublicKeyInfo, DER: the key a proof of possession must be signed with.
    pub spki_der: Vec<u8>,
    /// The issuer Name, DER: which loaded CRL speaks for this certificate.
    pub issuer_der: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileError {
    Malformed(String),
    MissingAgentUri,
    MultipleAgentUris,
    MultipleTenantUris,
    BadIdentifier(String),
    BadScope(String),
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProfileError::Malformed(e) => write!(f, "certificate is malformed: {e}"),
            ProfileError::MissingAgentUri => write!(
                f,
                "certificate has no agent identity: no SAN URI {AGENT_URI_PREFIX}<agent_id>"
            ),
            ProfileError::MultipleAgentUris => write!(
                f,
                "certificate has more than one SAN URI {AGENT_URI_PREFIX}<agent_id>"
            ),
            ProfileError::MultipleTenantUris => write!(
                f,
                "certificate has more than one SAN URI {TENANT_URI_PREFIX}<tenant_id>"
            ),
            ProfileError::BadIdentifier(e) => write!(f, "certificate identity is invalid: {e}"),
            ProfileError::BadScope(e) => write!(f, "certificate financial scope is invalid: {e}"),
        }
    }
}

impl std::error::Error for ProfileError {}

/// Reads the agent profile from a leaf certificate's DER.
pub fn read_profile(leaf_der: &[u8]) -> Result<AgentProfile, ProfileError> {
    let (rest, cert) =
        X509Certificate::from_der(leaf_der).map_err(|e| ProfileError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProfileError::Malformed(
            "trailing bytes after the certificate".into(),
        ));
    }

    let (mut agents, mut tenants) = (Vec::new(), Vec::new());
    let san = cert
        .subject_alternative_name()
        .map_err(|e| ProfileError::Malformed(format!("subjectAltName: {e}")))?;
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        if let GeneralName::URI(uri) = name {
            if let Some(id) = uri.strip_prefix(AGENT_URI_PREFIX) {
                agents.push(id.to_string());
            } else if let Some(id) = uri.strip_prefix(TENANT_URI_PREFIX) {
                tenants.push(id.to_string());
            }
        }
    }
    let agent_id = match agents.as_slice() {
        [] => return Err(ProfileError::MissingAgentUri),
        [one] => check_identifier("agent id", one)?,
        _ => return Err(ProfileError::MultipleAgentUris),
    };
    let tenant_id = match tenants.as_slice() {
        [] => None,
        [one] => Some(check_identifier("tenant id", one)?),
        _ => return Err(ProfileError::MultipleTenantUris),
    };

    let validity = cert.validity();
    Ok(AgentProfile {
        agent_id,
        tenant_id,
        serial: crate::serial::from_bytes(cert.raw_serial()),
        subject: cert.subject().to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        scope: read_scope(&cert)?,
        spki_der: cert.public_key().raw.to_vec(),
        issuer_der: cert.issuer().as_raw().to_vec(),
    })
}

/// Checks an agent or tenant id: 1 to 256 bytes, no whitespace or control characters.
pub fn check_identifier(what: &str, id: &str) -> Result<String, ProfileError> {
    if id.is_empty() {
        return Err(ProfileError::BadIdentifier(format!("{what} is empty")));
    }
    if id.len() > MAX_ID_LEN {
        return Err(ProfileError::BadIdentifier(format!(
            "{what} is longer than {MAX_ID_LEN} bytes"
        )));
    }
    // IA5String already excludes non-ASCII; control characters would corrupt logs.
    if id
        .chars()
        .any(|c| c.is_ascii_control() || c.is_whitespace())
    {
        return Err(ProfileError::BadIdentifier(format!(
            "{what} contains whitespace or control characters"
        )));
    }
    Ok(id.to_string())
}

fn read_scope(cert: &X509Certificate<'_>) -> Result<FinancialScope, ProfileError> {
    let oid = scope_oid_der_body();
    let mut found = cert
        .extensions()
        .iter()
        .filter(|ext| ext.oid.as_bytes() == oid.as_slice());
    let Some(ext) = found.next() else {
        return Ok(FinancialScope::default());
    };
    if found.next().is_some() {
        return Err(ProfileError::BadScope(
            "the scope extension appears more than once".into(),
        ));
    }
    let text = Utf8StringRef::from_der(ext.value)
        .map_err(|e| ProfileError::BadScope(format!("not a DER UTF8String: {e}")))?;
    FinancialScope::from_json(text.as_str()).map_err(ProfileError::BadScope)
}

/// `2.25.<uuid>`: marks a CA certificate made by the test kit
/// ([`crate::test_ca`]), so it cannot be trusted as a production anchor.
pub const TEST_CA_EXTENSION_OID: &str = "2.25.298900544965398659084009494318438196115";

/// Whether `der` is a CA certificate made by the test kit (it carries the
/// [`TEST_CA_EXTENSION_OID`] extension). Unparseable input is not.
pub fn is_test_ca(der: &[u8]) -> bool {
    let oid = oid_der_body(TEST_CA_EXTENSION_OID);
    X509Certificate::from_der(der).is_ok_and(|(_, cert)| {
        cert.extensions()
            .iter()
            .any(|ext| ext.oid.as_bytes() == oid.as_slice())
    })
}

/// Content octets of the scope OID's DER encoding.
pub(crate) fn scope_oid_der_body() -> Vec<u8> {
    oid_der_body(SCOPE_EXTENSION_OID)
}

/// Content octets of an OID's DER encoding (X.690 §8.19: first two arcs
/// folded into one, each arc base-128, high bit on all but the last byte).
pub(crate) fn oid_der_body(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u128> = dotted.split('.').map(|a| a.parse().unwrap_or(0)).collect();
    let mut body = Vec::new();
    let mut encode = |mut arc: u128| {
        let mut chunk = vec![(arc & 0x7f) as u8];
        arc >>= 7;
        while arc > 0 {
            chunk.push((arc & 0x7f) as u8 | 0x80);
            arc >>= 7;
        }
        body.extend(chunk.iter().rev());
    };
    encode(arcs[0] * 40 + arcs[1]);
    arcs[2..].iter().for_each(|a| encode(*a));
    body
}

/// Subject and notAfter of a CA certificate, for the trust-anchor table, and
/// its subject Name and key as DER, to check what it signed (CRLs).
pub struct CaSummary {
    pub subject: String,
    pub not_after: i64,
    pub subject_der: Vec<u8>,
    pub spki_der: Vec<u8>,
}

pub fn read_ca_summary(der: &[u8]) -> Result<CaSummary, ProfileError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| ProfileError::Malformed(e.to_string()))?;
    Ok(CaSummary {
        subject: cert.subject().to_string(),
        not_after: cert.validity().not_after.timestamp(),
        subject_der: cert.subject().as_raw().to_vec(),
        spki_der: cert.public_key().raw.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn scope_oid_encoding_matches_openssl() {
        // `openssl asn1parse -genstr OID:2.25.73486407453457443519485037193576502481`
        let expected = "69eec8fbe7cfb9c2ba8790fadfcad4acdba951";
        assert_eq!(hex::encode(super::scope_oid_der_body()), expected);
    }
}
