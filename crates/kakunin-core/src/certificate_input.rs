//! Turns the text a caller passes as `certificate` into DER blobs, leaf first.
//!
//! Accepted: PEM (one leaf, optionally followed by intermediates) or the base64
//! of a single DER certificate. Everything is bounded before it is parsed, so a
//! huge or hostile input costs little and names what was wrong.

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// A leaf plus a few intermediates fits comfortably; 64 KiB bounds the work.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Longest chain (leaf included) we accept from a caller.
pub const MAX_CHAIN_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    Empty,
    TooLarge(usize),
    BadPem(String),
    BadBase64,
    NoCertificate,
    TooManyCertificates(usize),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Empty => write!(f, "certificate is empty"),
            InputError::TooLarge(n) => write!(
                f,
                "certificate input is {n} bytes, more than the {MAX_INPUT_BYTES} allowed"
            ),
            InputError::BadPem(e) => write!(f, "certificate PEM is malformed: {e}"),
            InputError::BadBase64 => write!(
                f,
                "certificate is neither PEM nor base64-encoded DER"
            ),
            InputError::NoCertificate => write!(f, "no CERTIFICATE block found in the PEM"),
            InputError::TooManyCertificates(n) => write!(
                f,
                "{n} certificates given, at most {MAX_CHAIN_LEN} (leaf and intermediates) are accepted"
            ),
        }
    }
}

impl std::error::Error for InputError {}

/// Decodes `text` into DER certificates, leaf first. Does not parse the DER.
pub fn decode(text: &str) -> Result<Vec<Vec<u8>>, InputError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge(text.len()));
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(InputError::Empty);
    }
    let ders = if trimmed.contains("-----BEGIN") {
        decode_pem(trimmed)?
    } else {
        decode_base64_der(trimmed)?
    };
    if ders.len() > MAX_CHAIN_LEN {
        return Err(InputError::TooManyCertificates(ders.len()));
    }
    Ok(ders)
}

fn decode_pem(text: &str) -> Result<Vec<Vec<u8>>, InputError> {
    let mut ders = Vec::new();
    for item in CertificateDer::pem_slice_iter(text.as_bytes()) {
        let cert = item.map_err(|e| InputError::BadPem(e.to_string()))?;
        ders.push(cert.as_ref().to_vec());
        if ders.len() > MAX_CHAIN_LEN {
            return Err(InputError::TooManyCertificates(ders.len()));
        }
    }
    if ders.is_empty() {
        return Err(InputError::NoCertificate);
    }
    Ok(ders)
}

fn decode_base64_der(text: &str) -> Result<Vec<Vec<u8>>, InputError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| InputError::BadBase64)?;
    // A DER certificate is a SEQUENCE; anything else is not what the caller meant.
    if der.first() != Some(&0x30) {
        return Err(InputError::BadBase64);
    }
    Ok(vec![der])
}

/// PEM (RFC 7468 §5) of one DER certificate: what [`decode`] reads back.
pub fn to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DER: &[u8] = &[0x30, 0x03, 0x02, 0x01, 0x01];

    #[test]
    fn pem_and_base64_give_the_same_der() {
        let pem = to_pem(DER);
        assert_eq!(decode(&pem).unwrap(), vec![DER.to_vec()]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(DER);
        assert_eq!(decode(&b64).unwrap(), vec![DER.to_vec()]);
    }

    #[test]
    fn chain_order_is_kept() {
        let other = [0x30, 0x00];
        let text = format!("{}{}", to_pem(DER), to_pem(&other));
        assert_eq!(decode(&text).unwrap(), vec![DER.to_vec(), other.to_vec()]);
    }

    #[test]
    fn bad_inputs_name_the_problem() {
        assert_eq!(decode("   "), Err(InputError::Empty));
        assert_eq!(decode("!!!"), Err(InputError::BadBase64));
        assert_eq!(decode("aGVsbG8="), Err(InputError::BadBase64));
        assert_eq!(
            decode(&"A".repeat(5 * 1024 * 1024)),
            Err(InputError::TooLarge(5 * 1024 * 1024))
        );
        assert!(matches!(
            decode("-----BEGIN CERTIFICATE-----\nAAAA"),
            Err(InputError::BadPem(_))
        ));
        assert_eq!(
            decode("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(InputError::NoCertificate)
        );
        let many: String = (0..9).map(|_| to_pem(DER)).collect();
        assert!(matches!(
            decode(&many),
            Err(InputError::TooManyCertificates(_))
        ));
    }
}
