//! The live status of what is bound: re-read once per statement, and only when
//! an invalidation says the registry may have changed, so that a revocation
//! committed before a statement began turns every `= 'active'` policy of that
//! statement into zero rows.

use std::cell::Cell;

use kakunin_core::binding::{effective_status, worst, Binding, CertStatus, Credential};

use super::binding;
use crate::pg::invalidation::Read;
use crate::pg::spi::Visibility;
use crate::pg::time;
use crate::revocation::{crl, key_status, registry};

thread_local! {
    /// (binding epoch, statement start, status)
    static STATEMENT_STATUS: Cell<Option<(u64, i64, CertStatus)>> = const { Cell::new(None) };
}

/// Live status of the bound certificate (or API key) for the current
/// statement: the registry (certificate, issuer and agent rows), expiry, a
/// stale CRL of the issuer (`unknown`), and for a key its whole lineage; a
/// verdict fixed at bind is never softened.
pub fn bound_status(bound: &Binding) -> CertStatus {
    let statement = time::statement_start();
    let binding_epoch = binding::epoch();
    if let Some((e, s, status)) = STATEMENT_STATUS.get() {
        if e == binding_epoch && s == statement {
            return status;
        }
    }
    let read = Read::new(Visibility::Statement);
    let now = time::unix_seconds(statement);
    let status = match &bound.credential {
        Credential::ApiKey { key_id, .. } => {
            key_status::key_status(key_id, read, time::unix_micros(statement))
        }
        Credential::Certificate {
            serial,
            issuer,
            not_after,
            ..
        } => {
            let status = effective_status(
                registry::registry_status(serial, issuer, &bound.agent_id, read),
                *not_after,
                now,
            );
            // A stale CRL for the issuer makes the status unknown, as at bind.
            let issuer = hex::decode(issuer).unwrap_or_default();
            crl::stale_status(&issuer, read, now).map_or(status, |stale| worst(status, stale))
        }
        // The endpoint names no issuer: issuer-less rows and the agent's apply.
        Credential::Serial { serial } => {
            registry::registry_status(serial, "", &bound.agent_id, read)
                .unwrap_or(CertStatus::Active)
        }
    };
    let status = bound
        .fixed_status
        .map_or(status, |fixed| worst(status, fixed));
    STATEMENT_STATUS.set(Some((binding_epoch, statement, status)));
    status
}
