//! X.509 certificate revocation lists: parsing (x509-cert) and signature
//! checking against the issuing CA's key (ring), for the offline channel.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;
use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::ext::pkix::CrlNumber;

use crate::spki::{self, KeyType};

pub const MAX_CRL_BYTES: usize = 16 * 1024 * 1024;

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: String,
    pub revoked_at: i64,
    pub reason: Option<String>,
}

/// A parsed CRL whose signature has not been checked yet (see [`Crl::verify`]).
pub struct Crl {
    der: Vec<u8>,
    list: CertificateList,
    /// DER of the issuer Name, to match against a CA certificate's subject.
    pub issuer_der: Vec<u8>,
    pub issuer: String,
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// The cRLNumber extension, as lowercase hex (None if absent).
    pub number: Option<String>,
    pub revoked: Vec<Revoked>,
}

/// A CRL reason code by its RFC 5280 §5.3.1 name.
fn reason_name(reason: CrlReason) -> &'static str {
    match reason {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "keyCompromise",
        CrlReason::CaCompromise => "cACompromise",
        CrlReason::AffiliationChanged => "affiliationChanged",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessationOfOperation",
        CrlReason::CertificateHold => "certificateHold",
        CrlReason::RemoveFromCRL => "removeFromCRL",
        CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        CrlReason::AaCompromise => "aACompromise",
    }
}

fn unix(t: x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// Decodes PEM (`-----BEGIN X509 CRL-----`) or base64 DER, and parses it.
pub fn parse(text: &str) -> Result<Crl, String> {
    if text.len() > MAX_CRL_BYTES {
        return Err(format!("CRL input is larger than {MAX_CRL_BYTES} bytes"));
    }
    let der = if text.contains("-----BEGIN") {
        CertificateRevocationListDer::from_pem_slice(text.as_bytes())
            .map_err(|e| format!("CRL PEM is malformed: {e}"))?
            .as_ref()
            .to_vec()
    } else {
        use base64::Engine;
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| "CRL is neither PEM nor base64-encoded DER".to_string())?
    };
    let list = CertificateList::from_der(&der).map_err(|e| format!("CRL is malformed: {e}"))?;
    let tbs = &list.tbs_cert_list;
    let issuer_der = tbs
        .issuer
        .to_der()
        .map_err(|e| format!("CRL issuer: {e}"))?;
    let mut number = None;
    for ext in tbs.crl_extensions.iter().flatten() {
        if ext.extn_id == <CrlNumber as x509_cert::der::oid::AssociatedOid>::OID {
            let n = CrlNumber::from_der(ext.extn_value.as_bytes())
                .map_err(|e| format!("CRL number: {e}"))?;
            number = Some(crate::serial::from_bytes(n.0.as_bytes()));
        } else if ext.critical {
            return Err(format!(
                "unsupported critical CRL extension {}",
                ext.extn_id
            ));
        }
    }
    let mut revoked = Vec::new();
    for entry in tbs.revoked_certificates.iter().flatten() {
        let mut reason = None;
        for ext in entry.crl_entry_extensions.iter().flatten() {
            if ext.extn_id == <CrlReason as x509_cert::der::oid::AssociatedOid>::OID {
                let r = CrlReason::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| format!("CRL reason: {e}"))?;
                reason = Some(reason_name(r).to_string());
            }
        }
        revoked.push(Revoked {
            serial: crate::serial::from_bytes(entry.serial_number.as_bytes()),
            revoked_at: unix(entry.revocation_date),
            reason,
        });
    }
    Ok(Crl {
        // Named as x509-parser names certificate subjects, so that a CRL's
        // issuer reads exactly like the trust anchor's subject.
        issuer: {
            use x509_parser::prelude::FromDer;
            x509_parser::x509::X509Name::from_der(&issuer_der)
                .map(|(_, name)| name.to_string())
                .unwrap_or_else(|_| tbs.issuer.to_string())
        },
        this_update: unix(tbs.this_update),
        next_update: tbs.next_update.map(unix),
        number,
        revoked,
        issuer_der,
        list,
        der,
    })
}

impl Crl {
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Checks the CRL's signature with the issuer's SubjectPublicKeyInfo.
    pub fn verify(&self, issuer_spki_der: &[u8]) -> Result<(), String> {
        let (key_type, key) = spki::read(issuer_spki_der)?;
        let oid = self.list.signature_algorithm.oid.to_string();
        let algorithm: &dyn VerificationAlgorithm = match (oid.as_str(), key_type) {
            ("1.2.840.10045.4.3.2", KeyType::EcP256) => &signature::ECDSA_P256_SHA256_ASN1,
            ("1.2.840.10045.4.3.3", KeyType::EcP256) => &signature::ECDSA_P256_SHA384_ASN1,
            ("1.2.840.10045.4.3.2", KeyType::EcP384) => &signature::ECDSA_P384_SHA256_ASN1,
            ("1.2.840.10045.4.3.3", KeyType::EcP384) => &signature::ECDSA_P384_SHA384_ASN1,
            ("1.3.101.112", KeyType::Ed25519) => &signature::ED25519,
            ("1.2.840.113549.1.1.11", KeyType::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA256,
            ("1.2.840.113549.1.1.12", KeyType::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA384,
            ("1.2.840.113549.1.1.13", KeyType::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (oid, key_type) => {
                return Err(format!(
                    "unsupported CRL signature algorithm {oid} for an {key_type} key"
                ))
            }
        };
        // The signed bytes are the TBSCertList exactly as encoded; DER has one
        // encoding, so re-encoding the parsed structure reproduces them.
        let tbs = self
            .list
            .tbs_cert_list
            .to_der()
            .map_err(|e| format!("CRL: {e}"))?;
        let signature = self
            .list
            .signature
            .as_bytes()
            .ok_or_else(|| "CRL signature has unused bits".to_string())?;
        UnparsedPublicKey::new(algorithm, key)
            .verify(&tbs, signature)
            .map_err(|_| "the CRL signature does not verify with the issuer's key".to_string())
    }

    /// Whether this CRL is older than one already loaded (by cRLNumber when
    /// both have one, else by thisUpdate).
    pub fn is_older_than(&self, number: Option<&str>, this_update: i64) -> bool {
        match (&self.number, number) {
            (Some(mine), Some(theirs)) => (mine.len(), mine.as_str()) < (theirs.len(), theirs),
            _ => self.this_update < this_update,
        }
    }
}
