//! Path validation from a leaf to a trust anchor, delegated to rustls-webpki:
//! signatures (ECDSA P-256/P-384, Ed25519, RSA PKCS#1 v1.5 and PSS, 2048 bits and
//! up), validity windows, basicConstraints and keyUsage on issuers, and
//! extendedKeyUsage clientAuth on the leaf when it has the extension.

use rustls_pki_types::{CertificateDer, UnixTime};
use std::time::Duration;
use webpki::{EndEntityCert, KeyUsage};

/// What a genuine certificate's chain says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainVerdict {
    /// The chain verifies at the requested time.
    Valid,
    /// The chain verifies, but the requested time is past the leaf's (or an
    /// issuer's) notAfter. The certificate is genuine and binds as `expired`.
    Expired,
}

/// Why a certificate does not chain to a trust anchor. `reason()` is the stable
/// machine-readable code `validate_certificate` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    NoTrustAnchors,
    UntrustedIssuer,
    NotYetValid,
    BadSignature,
    CaUsedAsLeaf,
    IssuerNotCa,
    WrongKeyUsage,
    Malformed(String),
    Other(String),
}

impl ChainError {
    pub fn reason(&self) -> &'static str {
        match self {
            ChainError::NoTrustAnchors => "no_trust_anchor",
            ChainError::UntrustedIssuer => "untrusted_issuer",
            ChainError::NotYetValid => "not_yet_valid",
            ChainError::BadSignature => "bad_signature",
            ChainError::CaUsedAsLeaf => "ca_used_as_leaf",
            ChainError::IssuerNotCa => "issuer_not_ca",
            ChainError::WrongKeyUsage => "wrong_key_usage",
            ChainError::Malformed(_) => "malformed",
            ChainError::Other(_) => "invalid_chain",
        }
    }
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix = "certificate does not chain to a trusted anchor";
        match self {
            ChainError::NoTrustAnchors => write!(
                f,
                "{prefix}: no trust anchor is configured (see kakunin.add_trust_anchor)"
            ),
            ChainError::UntrustedIssuer => write!(
                f,
                "{prefix}: its issuer is not a trust anchor nor a supplied intermediate"
            ),
            ChainError::NotYetValid => write!(
                f,
                "certificate is not yet valid (notBefore is in the future)"
            ),
            ChainError::BadSignature => {
                write!(f, "{prefix}: a signature in the chain does not verify")
            }
            ChainError::CaUsedAsLeaf => write!(f, "{prefix}: the leaf is a CA certificate"),
            ChainError::IssuerNotCa => write!(
                f,
                "{prefix}: an issuer is not a CA (basicConstraints/keyUsage)"
            ),
            ChainError::WrongKeyUsage => write!(
                f,
                "{prefix}: the leaf's extendedKeyUsage does not allow clientAuth"
            ),
            ChainError::Malformed(e) => write!(f, "certificate is malformed: {e}"),
            ChainError::Other(e) => write!(f, "{prefix}: {e}"),
        }
    }
}

impl std::error::Error for ChainError {}

/// Extensions rustls-webpki understands when they are critical (RFC 5280
/// §4.2): keyUsage, subjectAltName, basicConstraints, nameConstraints,
/// cRLDistributionPoints, extKeyUsage.
const SUPPORTED_CRITICAL: [&str; 6] = [
    "2.5.29.15",
    "2.5.29.17",
    "2.5.29.19",
    "2.5.29.30",
    "2.5.29.31",
    "2.5.29.37",
];

/// The OIDs of critical extensions in `ders` that [`SUPPORTED_CRITICAL`] lacks.
fn unsupported_critical(ders: &[&[u8]]) -> Vec<String> {
    use x509_parser::prelude::FromDer;
    ders.iter()
        .filter_map(|der| x509_parser::certificate::X509Certificate::from_der(der).ok())
        .flat_map(|(_, cert)| {
            cert.extensions()
                .iter()
                .filter(|e| {
                    e.critical && !SUPPORTED_CRITICAL.contains(&e.oid.to_id_string().as_str())
                })
                .map(|e| e.oid.to_id_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A refusal in the caller's terms: what is wrong with the certificate (one
/// of `ders`, the leaf and the intermediates), with the RFC 5280 rule where
/// there is one; never a Rust type or variant name.
fn classify_in(err: webpki::Error, ders: &[&[u8]]) -> ChainError {
    use webpki::Error as E;
    let malformed = |what: &str| ChainError::Malformed(what.to_string());
    match err {
        E::UnknownIssuer => ChainError::UntrustedIssuer,
        E::CertNotValidYet { .. } => ChainError::NotYetValid,
        E::InvalidSignatureForPublicKey
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | E::SignatureAlgorithmMismatch => ChainError::BadSignature,
        E::CaUsedAsEndEntity => ChainError::CaUsedAsLeaf,
        E::EndEntityUsedAsCa | E::PathLenConstraintViolated => ChainError::IssuerNotCa,
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => ChainError::WrongKeyUsage,
        E::BadDer => malformed("its DER encoding is invalid"),
        E::BadDerTime => malformed("a validity time is not a valid DER time"),
        E::TrailingData(_) => malformed("there are bytes after the certificate's DER"),
        E::UnsupportedCertVersion => malformed("it is not an X.509 v3 certificate"),
        E::MalformedExtensions => malformed("its extensions are not well formed"),
        E::ExtensionValueInvalid => malformed("an extension value is invalid"),
        E::InvalidCertValidity => malformed("its validity period ends before it starts"),
        E::InvalidSerialNumber => malformed(
            "its serial number is invalid (RFC 5280 §4.1.2.2: positive, at most 20 bytes)",
        ),
        E::UnsupportedCriticalExtension => {
            let oids = unsupported_critical(ders);
            ChainError::Malformed(if oids.is_empty() {
                "it has a critical extension that is not supported (RFC 5280 §4.2)".into()
            } else {
                format!(
                    "it has a critical extension that is not supported (RFC 5280 §4.2): OID {}",
                    oids.join(", ")
                )
            })
        }
        E::CertExpired { .. } => ChainError::Other("a certificate in the chain has expired".into()),
        E::CertRevoked => ChainError::Other("a certificate in the chain is revoked".into()),
        E::NameConstraintViolation => {
            ChainError::Other("an issuer's name constraints exclude it (RFC 5280 §4.2.1.10)".into())
        }
        E::MaximumPathDepthExceeded | E::MaximumPathBuildCallsExceeded => {
            ChainError::Other("the chain is longer than allowed".into())
        }
        _ => ChainError::Other("the certification path does not validate (RFC 5280 §6)".into()),
    }
}

fn unix_time(seconds: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

/// Verifies `leaf` (with the caller's `intermediates`) against `anchors` at
/// `at_unix`. A chain that is genuine but expired at that time yields
/// [`ChainVerdict::Expired`]: we re-check it at the leaf's own `notAfter` so that
/// a forged certificate can never pass as "merely expired".
pub fn verify(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &[Vec<u8>],
    at_unix: i64,
    leaf_not_after: i64,
) -> Result<ChainVerdict, ChainError> {
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|a| CertificateDer::from(a.as_slice()))
        .collect();
    // An anchor that no longer parses is skipped: it can only make fewer chains valid.
    let trust_anchors: Vec<_> = anchor_ders
        .iter()
        .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
        .collect();
    if trust_anchors.is_empty() {
        return Err(ChainError::NoTrustAnchors);
    }
    let leaf_der = CertificateDer::from(leaf);
    let mut all: Vec<&[u8]> = vec![leaf];
    all.extend(intermediates.iter().map(Vec::as_slice));
    let classify = |e| classify_in(e, &all);
    let end_entity = EndEntityCert::try_from(&leaf_der).map_err(classify)?;
    let intermediate_ders: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|i| CertificateDer::from(i.as_slice()))
        .collect();

    let check = |when: i64| {
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &trust_anchors,
                &intermediate_ders,
                unix_time(when),
                KeyUsage::client_auth(),
                None,
                None,
            )
            .map(|_| ())
    };
    match check(at_unix) {
        Ok(()) => Ok(ChainVerdict::Valid),
        Err(webpki::Error::CertExpired { .. }) => match check(leaf_not_after.min(at_unix)) {
            Ok(()) => Ok(ChainVerdict::Expired),
            Err(e) => Err(classify_in(e, &all)),
        },
        Err(e) => Err(classify_in(e, &all)),
    }
}

/// Checks that `der` can serve as a trust anchor: it parses, and is a CA.
pub fn check_anchor(der: &[u8]) -> Result<(), String> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| format!("malformed: {e}"))?;
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| format!("malformed basicConstraints: {e}"))?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err("not a CA certificate (basicConstraints CA:TRUE is required)".into());
    }
    let der = CertificateDer::from(der);
    webpki::anchor_from_trusted_cert(&der)
        .map_err(|e| format!("unusable as an anchor: {}", classify_in(e, &[der.as_ref()])))?;
    Ok(())
}
