//! Agents that hold a connection: their SQL runs as a restricted role under
//! the identity bound in the transaction, with no way out (issue 10).
//!
//! - `execute_as_agent`: `kakunin.execute_as_agent()`, the call and its audit entry.
//! - `roles`: which roles agent SQL may run as.
//!
//! The restrictions themselves are plumbing (`pg::restricted`); refusing a
//! new binding inside is identity's (`identity::binding::store`).

pub mod execute_as_agent;
pub mod roles;
