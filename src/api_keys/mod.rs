//! API keys: SHA-256 at rest, shown once, tenant- and capability-bound,
//! derived from the caller's credential and never wider (KeyHippo, the seed's
//! `004_…`; issue 14).
//!
//! - `functions`: the SQL functions (create, verify, bind, rotate, revoke, claims).
//! - `caller`: who may manage a key, and what a new key derives from its maker.
//! - `store`: the one writer of `kakunin.api_keys`, `api_key_usage`, `api_key_events`.
//!
//! A key's status is revocation data (`revocation::key_status`); its helpers
//! for policies (`kakunin_key_id()`, `kakunin.authorize()`) are identity
//! (`identity::policy_helpers`).

pub mod caller;
pub mod functions;
pub mod store;
