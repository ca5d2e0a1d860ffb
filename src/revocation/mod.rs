//! "Is this credential still good?": the local status registry and the
//! channels that feed it (the administrator, signed CA webhooks, signed CRLs,
//! the CA's online verify endpoint), the trust anchors, and the status of an
//! API key's lineage.
//!
//! Knows nothing of bindings (`identity/`) or of key management (`api_keys/`).

pub mod crl;
pub mod key_status;
pub mod registry;
pub mod trust;
pub mod verify_endpoint;
pub mod webhooks;

/// Called once from `_PG_init`.
pub fn init() {
    verify_endpoint::register();
}
