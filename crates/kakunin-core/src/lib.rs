//! Pure logic of kakunin_pg, free of PostgreSQL so it can be tested with plain
//! `cargo test` and shared with offline tools.
//!
//! - [`certificate_input`]: turning user text (PEM or base64 DER) into DER blobs.
//! - [`profile`]: reading the agent profile (agent id, tenant, serial, scope) from a leaf.
//! - [`chain`]: path validation to trust anchors with rustls-webpki.
//! - [`proof`]: proof of possession, a compact JWS signed by the certificate's key.
//! - [`binding`]: the record a successful bind stores for the current transaction.

pub mod binding;
pub mod certificate_input;
pub mod chain;
pub mod profile;
pub mod proof;
pub mod scope;
pub mod serial;

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
