//! The key type and raw public key in a SubjectPublicKeyInfo, for choosing a
//! signature algorithm (proofs of possession, CRL signatures).

use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoRef;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcP256,
    EcP384,
    Ed25519,
    Rsa,
}

impl std::fmt::Display for KeyType {
    /// The names RFC 7518/8037 and RFC 8017 use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::Ed25519 => "Ed25519",
            KeyType::Rsa => "RSA",
        })
    }
}

/// The key type and the bytes ring verifies with (EC point, Ed25519 key, or
/// the RSAPublicKey DER).
pub fn read(spki_der: &[u8]) -> Result<(KeyType, &[u8]), String> {
    let info = SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| format!("public key is unreadable: {e}"))?;
    let key_oid = info.algorithm.oid.to_string();
    let curve = info
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .map(|oid| oid.to_string());
    let key_type = match (key_oid.as_str(), curve.as_deref()) {
        (OID_EC_PUBLIC_KEY, Some(OID_P256)) => KeyType::EcP256,
        (OID_EC_PUBLIC_KEY, Some(OID_P384)) => KeyType::EcP384,
        (OID_ED25519, _) => KeyType::Ed25519,
        (OID_RSA, _) => KeyType::Rsa,
        (other, curve) => {
            return Err(format!(
                "unsupported public key type {other} (curve {})",
                curve.unwrap_or("none")
            ))
        }
    };
    let bytes = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| "public key has unused bits".to_string())?;
    Ok((key_type, bytes))
}
