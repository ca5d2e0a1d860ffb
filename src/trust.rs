//! Trust anchors: the CA certificates agent certificates must chain to.
//! Stored in `kakunin.trust_anchors`, cached per backend per invalidation epoch.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use kakunin_core::certificate_input;
use kakunin_core::chain;
use pgrx::prelude::*;

use crate::error::{spi_failed, KakuninError, OrRaise};
use crate::spi_plans::{self, Visibility};
use crate::{invalidation, privilege, registry};

/// DER of each trusted anchor, with the epoch tag it is valid for (see `registry::tag_for`).
pub type TaggedAnchors = (u64, Rc<Vec<Vec<u8>>>);

thread_local! {
    static ANCHORS: RefCell<Option<TaggedAnchors>> = const { RefCell::new(None) };
    static ANCHORS_PLAN: Cell<pgrx::pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// The trusted anchors (DER) and the epoch tag they are valid for, read from
/// the table only after an invalidation. `epoch_before` is
/// [`invalidation::epoch`] before the caller's `refresh`.
pub fn anchors(visibility: Visibility, epoch_before: u64) -> TaggedAnchors {
    let current = invalidation::epoch();
    if let Some(hit) = ANCHORS.with(|a| a.borrow().clone().filter(|(tag, _)| *tag == current)) {
        return hit;
    }
    let ders: Vec<Vec<u8>> = spi_plans::query(
        visibility,
        &ANCHORS_PLAN,
        c"SELECT certificate FROM kakunin.trust_anchors",
        &[],
        &[],
        |row| row.get::<Vec<u8>>(1),
    )
    .into_iter()
    .flatten()
    .collect();
    let entry = (registry::tag_for(visibility, epoch_before), Rc::new(ders));
    ANCHORS.with(|a| *a.borrow_mut() = Some(entry.clone()));
    entry
}

/// `kakunin.add_trust_anchor(pem, name)`: trusts a CA certificate (root or
/// intermediate). Refuses anything that is not a parseable CA certificate.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn add_trust_anchor(pem: Option<&str>, name: Option<&str>) -> pgrx::JsonB {
    privilege::require_admin("kakunin.add_trust_anchor");
    let pem = pem.ok_or(KakuninError::NullArgument("pem")).or_raise();
    let name = name.ok_or(KakuninError::NullArgument("name")).or_raise();
    if name.is_empty() || name.len() > 200 {
        KakuninError::InvalidArgument("trust anchor name must be 1 to 200 bytes".into()).raise();
    }
    let ders = certificate_input::decode(pem)
        .map_err(|e| KakuninError::InvalidArgument(format!("trust anchor: {e}")))
        .or_raise();
    let [der] = ders.as_slice() else {
        KakuninError::InvalidArgument(format!(
            "trust anchor: expected one certificate, got {}",
            ders.len()
        ))
        .raise();
    };
    chain::check_anchor(der)
        .map_err(|e| KakuninError::InvalidArgument(format!("trust anchor is {e}")))
        .or_raise();
    let info = kakunin_core::profile::read_ca_summary(der)
        .map_err(|e| KakuninError::InvalidArgument(format!("trust anchor is {e}")))
        .or_raise();
    let fingerprint = kakunin_core::sha256_hex(der);
    let actor = privilege::current_user_name();
    // No row limit on these writes: with SPI's tcount the executor stops early
    // and the statement trigger that invalidates other backends' caches does not fire.
    let inserted = privilege::as_extension_owner(|| {
        spi_plans::connect_mut(|client| {
            client
                .update(
                    "INSERT INTO kakunin.trust_anchors (name, fingerprint, subject, certificate, not_after, added_by)
                     VALUES ($1, $2, $3, $4, pg_catalog.to_timestamp($5), $6)
                     ON CONFLICT DO NOTHING",
                    None,
                    &[
                        name.into(),
                        fingerprint.as_str().into(),
                        info.subject.as_str().into(),
                        der.as_slice().into(),
                        (info.not_after as f64).into(),
                        actor.as_str().into(),
                    ],
                )
                .map(|table| table.len())
        })
    })
    .unwrap_or_else(|e| spi_failed("write kakunin.trust_anchors", e));
    if inserted == 0 {
        KakuninError::InvalidArgument(format!(
            "a trust anchor named \"{name}\" or with fingerprint {fingerprint} already exists"
        ))
        .raise();
    }
    let added = serde_json::json!({
        "name": name,
        "fingerprint": fingerprint,
        "subject": info.subject,
        "not_after": info.not_after,
    });
    crate::audit::admin_act("kakunin.trust_anchor.added", added.clone());
    pgrx::JsonB(added)
}

/// `kakunin.remove_trust_anchor(name)`: stops trusting an anchor; true if one was removed.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn remove_trust_anchor(name: Option<&str>) -> bool {
    privilege::require_admin("kakunin.remove_trust_anchor");
    let name = name.ok_or(KakuninError::NullArgument("name")).or_raise();
    let removed = privilege::as_extension_owner(|| {
        spi_plans::connect_mut(|client| {
            client
                .update(
                    "DELETE FROM kakunin.trust_anchors WHERE name OPERATOR(pg_catalog.=) $1",
                    None,
                    &[name.into()],
                )
                .map(|table| table.len())
        })
    })
    .unwrap_or_else(|e| spi_failed("write kakunin.trust_anchors", e));
    if removed > 0 {
        crate::audit::admin_act(
            "kakunin.trust_anchor.removed",
            serde_json::json!({"name": name}),
        );
    }
    removed > 0
}
