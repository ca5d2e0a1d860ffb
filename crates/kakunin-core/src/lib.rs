//! Pure logic of kakunin_pg, free of PostgreSQL so it can be tested with plain
//! `cargo test` and shared with offline tools.
//!
//! - [`certificate_input`]: turning user text (PEM or base64 DER) into DER blobs.
//! - [`profile`]: reading the agent profile (agent id, tenant, serial, scope) from a leaf.
//! - [`crl`]: X.509 CRLs: parsing and signature checks.
//! - [`chain`]: path validation to trust anchors with rustls-webpki.
//! - [`proof`]: proof of possession, a compact JWS signed by the certificate's key.
//! - [`audit`]: audit entries' canonical bytes and signed checkpoints (C2SP notes).
//! - [`canonical_json`]: canonical JSON text (sorted keys, no whitespace), written from JSON text.
//! - [`api_key`]: API key format, generation and constant-time checking.
//! - [`log_verification`]: checking a whole audit log, entry by entry, against its checkpoints.
//! - [`merkle`]: RFC 6962 / RFC 9162 Merkle tree hashes and proofs.
//! - [`verify_answer`]: the CA's online verify endpoint answers and their cache lifetimes.
//! - [`webhook`]: signed CA webhooks (HMAC-SHA256 header, replay window, events).
//! - [`binding`]: the record a successful bind stores for the current transaction.

pub mod api_key;
pub mod audit;
pub mod binding;
pub mod canonical_json;
pub mod certificate_input;
pub mod chain;
pub mod crl;
pub mod log_verification;
pub mod merkle;
pub mod profile;
pub mod proof;
pub mod scope;
pub mod serial;
pub mod spki;
pub mod sql_calls;
pub mod test_ca;
pub mod verify_answer;
pub mod webhook;

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// RFC 3339 UTC form of unix seconds, as JSON results show times.
pub fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_is_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
