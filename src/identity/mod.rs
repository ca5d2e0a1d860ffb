//! Who is bound for this transaction: the binding and where it lives, the
//! certificate validation engine, binding by certificate, proof or forwarded
//! serial, the live status of what is bound, and the policy helpers.
//!
//! Reads revocation data (`revocation/`); knows nothing of key management
//! (`api_keys/`) or PostgREST.

pub mod bind;
pub mod binding;
pub mod certificate;
pub mod policy_helpers;
pub mod replay;
pub mod status;

/// Called once from `_PG_init`.
pub fn init() {
    binding::register();
    replay::register();
}
