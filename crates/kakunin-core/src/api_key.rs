//! API keys: `kkn_<key id>_<secret>`.
//!
//! - `kkn_`: a fixed prefix secret scanners can recognise.
//! - key id: a random UUID (version 4) in 32 lowercase hex digits, the lookup key.
//! - secret: 32 random bytes (256 bits), base64url without padding (43 chars).
//!
//! Only SHA-256(secret) is stored. A plain hash suffices because the secret is
//! 256 random bits: there is nothing to brute-force, so a slow or peppered hash
//! would add cost without adding safety (a pepper kept in the same database
//! protects nothing a database leak exposes).

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "kkn_";
const ID_HEX_LEN: usize = 32;
const SECRET_LEN: usize = 32;
const SECRET_B64_LEN: usize = 43;
pub const KEY_LEN: usize = PREFIX.len() + ID_HEX_LEN + 1 + SECRET_B64_LEN;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub key_id: [u8; 16],
    pub secret: [u8; SECRET_LEN],
}

/// A newly minted key: its id, the plaintext to show once, and the hash to store.
pub struct NewKey {
    pub key_id: [u8; 16],
    pub plaintext: String,
    pub secret_hash: [u8; 32],
}

pub fn secret_hash(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Mints a key from the operating system's CSPRNG.
pub fn generate() -> Result<NewKey, String> {
    let rng = SystemRandom::new();
    let mut key_id = [0u8; 16];
    let mut secret = [0u8; SECRET_LEN];
    rng.fill(&mut key_id)
        .map_err(|_| "no randomness available".to_string())?;
    rng.fill(&mut secret)
        .map_err(|_| "no randomness available".to_string())?;
    key_id[6] = (key_id[6] & 0x0f) | 0x40; // UUID version 4
    key_id[8] = (key_id[8] & 0x3f) | 0x80; // RFC 4122 variant
    Ok(NewKey {
        key_id,
        plaintext: format(&key_id, &secret),
        secret_hash: secret_hash(&secret),
    })
}

pub fn format(key_id: &[u8; 16], secret: &[u8; SECRET_LEN]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    format!("{PREFIX}{}_{b64}", hex::encode(key_id))
}

/// Parses a presented key; `None` for anything not of the exact format.
pub fn parse(text: &str) -> Option<ParsedKey> {
    if text.len() != KEY_LEN {
        return None;
    }
    let rest = text.strip_prefix(PREFIX)?;
    let (id_hex, secret_b64) = rest.split_at(ID_HEX_LEN);
    let secret_b64 = secret_b64.strip_prefix('_')?;
    if id_hex
        .bytes()
        .any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let key_id: [u8; 16] = hex::decode(id_hex).ok()?.try_into().ok()?;
    let secret: [u8; SECRET_LEN] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret_b64)
        .ok()?
        .try_into()
        .ok()?;
    Some(ParsedKey { key_id, secret })
}

/// Compares SHA-256(secret) with the stored hash in constant time. With no
/// stored hash (unknown key id) it still hashes and compares against a dummy,
/// so an unknown id and a wrong secret cost the same.
pub fn matches(secret: &[u8], stored: Option<&[u8]>) -> bool {
    use subtle::ConstantTimeEq;
    let presented = secret_hash(secret);
    let dummy = [0u8; 32];
    let (candidate, known) = match stored {
        Some(hash) if hash.len() == 32 => (hash, true),
        _ => (&dummy[..], false),
    };
    bool::from(presented.ct_eq(candidate)) & known
}

/// The key id as a UUID string (8-4-4-4-12).
pub fn uuid_string(key_id: &[u8; 16]) -> String {
    let h = hex::encode(key_id);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The key id in a UUID string ([`uuid_string`]'s inverse; hyphens optional).
pub fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    hex::decode(text.replace('-', "")).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_text_round_trip() {
        let id = [0xabu8; 16];
        assert_eq!(uuid_bytes(&uuid_string(&id)), Some(id));
        assert_eq!(uuid_bytes("not-a-uuid"), None);
        assert_eq!(uuid_bytes("abab"), None);
    }

    #[test]
    fn minted_keys_parse_back_and_match_their_hash() {
        let key = generate().unwrap();
        assert!(key.plaintext.starts_with("kkn_"));
        assert_eq!(key.plaintext.len(), KEY_LEN);
        let parsed = parse(&key.plaintext).unwrap();
        assert_eq!(parsed.key_id, key.key_id);
        assert!(matches(&parsed.secret, Some(&key.secret_hash)));
        assert_eq!(
            uuid_string(&key.key_id).as_bytes()[14],
            b'4',
            "version 4 UUID"
        );
    }

    #[test]
    fn two_keys_differ() {
        assert_ne!(generate().unwrap().plaintext, generate().unwrap().plaintext);
    }

    #[test]
    fn wrong_or_unknown_secrets_do_not_match() {
        let key = generate().unwrap();
        let mut parsed = parse(&key.plaintext).unwrap();
        parsed.secret[0] ^= 1;
        assert!(!matches(&parsed.secret, Some(&key.secret_hash)));
        assert!(!matches(&parsed.secret, None));
        // A dummy all-zero stored hash never matches by accident of the dummy.
        assert!(!matches(&parsed.secret, Some(&[0u8; 32])));
        assert!(!matches(&parsed.secret, Some(&[1u8; 5])));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let good = generate().unwrap().plaintext;
        let upper = good.to_uppercase();
        let bad_prefix = format!("xxx_{}", &good[4..]);
        let no_sep = good.replacen('_', "-", 2);
        let bad_b64 = format!("{}!", &good[..good.len() - 1]);
        for bad in [
            "",
            "kkn_",
            &good[..good.len() - 1],
            &upper,
            &bad_prefix,
            &no_sep,
            &bad_b64,
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse(&format!("{good}x")), None);
    }
}
