//! Certificate serial numbers as users type them and as we print them.
//!
//! Output is always lowercase hex without separators or leading zero bytes, so
//! `0A:1B`, `0a1b` and `00:0a:1b` name the same certificate.

/// Longest serial RFC 5280 allows is 20 octets; leave room for sloppy padding.
const MAX_SERIAL_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialError {
    Empty,
    NotHex,
    TooLong,
}

impl std::fmt::Display for SerialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SerialError::Empty => write!(f, "serial number is empty"),
            SerialError::NotHex => write!(
                f,
                "serial number must be hexadecimal digits, optionally separated by colons"
            ),
            SerialError::TooLong => {
                write!(f, "serial number is longer than {MAX_SERIAL_BYTES} bytes")
            }
        }
    }
}

impl std::error::Error for SerialError {}

/// Canonical form of a serial typed by a user: either case, with or without colons.
pub fn normalize(input: &str) -> Result<String, SerialError> {
    let digits: String = input.trim().chars().filter(|c| *c != ':').collect();
    if digits.is_empty() {
        return Err(SerialError::Empty);
    }
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(SerialError::NotHex);
    }
    if digits.len() > MAX_SERIAL_BYTES * 2 {
        return Err(SerialError::TooLong);
    }
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    let bytes = hex::decode(padded).map_err(|_| SerialError::NotHex)?;
    Ok(from_bytes(&bytes))
}

/// Canonical form of a serial's big-endian bytes as they appear in DER.
pub fn from_bytes(bytes: &[u8]) -> String {
    let first_nonzero = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let magnitude = &bytes[first_nonzero..];
    if magnitude.is_empty() {
        "00".to_string()
    } else {
        hex::encode(magnitude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_serial_agree() {
        for s in ["0A:1B", "0a1b", "a1b", "00:0a:1b", " 0A1B "] {
            assert_eq!(normalize(s).unwrap(), "0a1b", "{s}");
        }
    }

    #[test]
    fn der_padding_byte_is_dropped() {
        assert_eq!(from_bytes(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(from_bytes(&[0x00]), "00");
    }

    #[test]
    fn bad_serials_are_refused() {
        assert_eq!(normalize(""), Err(SerialError::Empty));
        assert_eq!(normalize(":::"), Err(SerialError::Empty));
        assert_eq!(normalize("xyz"), Err(SerialError::NotHex));
        assert_eq!(normalize(&"a".repeat(65)), Err(SerialError::TooLong));
    }
}
