//! The policy helpers RLS policies call (`kakunin_agent_id()` and friends,
//! `kakunin_key_id()`, `kakunin.authorize()`). Most live in the schema given to
//! `CREATE EXTENSION` (default `public`) so an unqualified call finds them, and
//! are declared in `sql/identity.sql`: STABLE, PARALLEL SAFE, NULL (or an empty
//! array) when nothing is bound, so a policy admits nothing.
//!
//! A policy calls them once per row, so they are plain version-1 functions that
//! return datums built once per binding (in the transaction's memory, which
//! outlives every use of them because a binding never outlives its
//! transaction). `kakunin_cert_status()` re-reads the registry once per
//! statement when an invalidation says it may have changed (see `status`).

use std::cell::Cell;

use kakunin_core::binding::CertStatus;
use pgrx::pg_sys::{Datum, FunctionCallInfo};
use pgrx::prelude::*;
use pgrx::{IntoDatum, PgMemoryContexts};

use super::binding::{self, current};
use super::status::bound_status;
use crate::pg::fmgr::{fmgr_v1, return_null};

#[derive(Clone, Copy)]
struct BoundDatums {
    binding_epoch: u64,
    agent_id: Datum,
    tenant_id: Option<Datum>,
    serial: Option<Datum>,
    instruments: Datum,
    venues: Datum,
}

thread_local! {
    static BOUND: Cell<Option<BoundDatums>> = const { Cell::new(None) };
    /// (binding epoch, agent id datum): the one check `kakunin_agent_id()`,
    /// called for every row a policy filters, makes before returning.
    static AGENT_ID: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
    /// Text datums of the six status words, built once per backend.
    static STATUS_WORDS: Cell<Option<[Datum; 6]>> = const { Cell::new(None) };
}

fn text(value: &str) -> Datum {
    value.into_datum().unwrap_or(Datum::from(0))
}

/// Datums of the current binding, built on first use after each bind. They
/// live in the transaction's memory, and never outlive it: the binding epoch
/// changes whenever the binding does, including when PostgreSQL restores the
/// setting at the end of the transaction (or savepoint) that made it.
fn bound() -> Option<BoundDatums> {
    let binding_epoch = binding::epoch();
    if let Some(cached) = BOUND.get() {
        if cached.binding_epoch == binding_epoch {
            return Some(cached);
        }
    }
    let binding = current()?;
    // SAFETY: TopTransactionContext lives until the transaction ends, and so does the binding these datums describe (see above).
    let datums = unsafe {
        PgMemoryContexts::TopTransactionContext.switch_to(|_| BoundDatums {
            binding_epoch,
            agent_id: text(&binding.agent_id),
            tenant_id: binding.tenant_id.as_deref().map(text),
            serial: binding.serial().map(text),
            instruments: binding
                .instruments
                .clone()
                .into_datum()
                .unwrap_or(Datum::from(0)),
            venues: binding
                .venues
                .clone()
                .into_datum()
                .unwrap_or(Datum::from(0)),
        })
    };
    BOUND.set(Some(datums));
    Some(datums)
}

fn status_word(status: CertStatus) -> Datum {
    let words = STATUS_WORDS.get().unwrap_or_else(|| {
        // SAFETY: TopMemoryContext lives as long as the backend, like this cache.
        let words = unsafe {
            PgMemoryContexts::TopMemoryContext.switch_to(|_| {
                [
                    CertStatus::Active,
                    CertStatus::Suspended,
                    CertStatus::Retired,
                    CertStatus::Revoked,
                    CertStatus::Expired,
                    CertStatus::Unknown,
                ]
                .map(|s| text(s.as_str()))
            })
        };
        STATUS_WORDS.set(Some(words));
        words
    });
    words[status as usize]
}

fn empty_text_array() -> Datum {
    Vec::<String>::new().into_datum().unwrap_or(Datum::from(0))
}

fmgr_v1!(
    pg_finfo_kakunin_agent_id,
    pg_finfo_kakunin_active_agent_id,
    pg_finfo_kakunin_cert_status,
    pg_finfo_kakunin_tenant_id,
    pg_finfo_kakunin_cert_serial,
    pg_finfo_kakunin_permitted_instruments,
    pg_finfo_kakunin_permitted_venues,
);

/// `kakunin_agent_id() → text`: the bound agent's id.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_agent_id(fcinfo: FunctionCallInfo) -> Datum {
    let epoch = binding::epoch();
    let (cached_epoch, agent_id) = AGENT_ID.get();
    if cached_epoch == epoch && agent_id != 0 {
        return Datum::from(agent_id);
    }
    match bound() {
        Some(b) => {
            AGENT_ID.set((epoch, b.agent_id.value()));
            b.agent_id
        }
        // SAFETY: fcinfo is this call's.
        None => unsafe { return_null(fcinfo) },
    }
}

/// `kakunin_active_agent_id() → text`: the agent id while the certificate is active.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_active_agent_id(fcinfo: FunctionCallInfo) -> Datum {
    let active = current().is_some_and(|b| bound_status(&b) == CertStatus::Active);
    match bound().filter(|_| active) {
        Some(b) => b.agent_id,
        // SAFETY: fcinfo is this call's.
        None => unsafe { return_null(fcinfo) },
    }
}

/// `kakunin_cert_status() → text`: active, suspended, retired, revoked or expired.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_cert_status(fcinfo: FunctionCallInfo) -> Datum {
    match current() {
        Some(b) => status_word(bound_status(&b)),
        // SAFETY: fcinfo is this call's.
        None => unsafe { return_null(fcinfo) },
    }
}

/// `kakunin_tenant_id() → text`: the bound agent's tenant.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_tenant_id(fcinfo: FunctionCallInfo) -> Datum {
    match bound().and_then(|b| b.tenant_id) {
        Some(tenant) => tenant,
        // SAFETY: fcinfo is this call's.
        None => unsafe { return_null(fcinfo) },
    }
}

/// `kakunin_cert_serial() → text`: the bound certificate's serial, lowercase hex.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_cert_serial(fcinfo: FunctionCallInfo) -> Datum {
    match bound().and_then(|b| b.serial) {
        Some(serial) => serial,
        // SAFETY: fcinfo is this call's.
        None => unsafe { return_null(fcinfo) },
    }
}

/// `kakunin_permitted_instruments() → text[]`: instruments in scope (empty if none).
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_permitted_instruments(_fcinfo: FunctionCallInfo) -> Datum {
    bound().map_or_else(empty_text_array, |b| b.instruments)
}

/// `kakunin_permitted_venues() → text[]`: venues in scope (empty if none).
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_permitted_venues(_fcinfo: FunctionCallInfo) -> Datum {
    bound().map_or_else(empty_text_array, |b| b.venues)
}

/// `kakunin_scope() → jsonb`: the whole financial scope, limits included.
#[pg_extern(stable, parallel_safe)]
fn kakunin_scope() -> Option<pgrx::JsonB> {
    current().map(|b| pgrx::JsonB(b.scope.clone()))
}

/// `kakunin_key_id() → uuid`: the bound API key, NULL for a certificate binding.
#[pg_extern(stable, parallel_safe)]
fn kakunin_key_id() -> Option<pgrx::Uuid> {
    let bound = current()?;
    kakunin_core::api_key::uuid_bytes(bound.key_id()?).map(pgrx::Uuid::from_bytes)
}

/// `kakunin.authorize(capability) → boolean`: true while the bound API key is
/// active and has `capability`.
#[pg_extern(schema = "kakunin", stable, parallel_safe, strict)]
fn authorize(capability: &str) -> bool {
    current().is_some_and(|b| {
        b.capabilities().iter().any(|c| c == capability) && bound_status(&b) == CertStatus::Active
    })
}
