//! Trust anchors: the CA certificates agent certificates must chain to.
//! Stored in `kakunin.trust_anchors`, cached per backend per invalidation epoch.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use kakunin_core::certificate_input;
use kakunin_core::chain;
use pgrx::prelude::*;

use crate::pg::error::{required, spi_failed, KakuninError, SqlResult};
use crate::pg::invalidation::{self, Read};
use crate::pg::{privilege, spi};

/// DER of each trusted anchor, with the epoch tag it is valid for ([`Read::tag`]).
pub type TaggedAnchors = (u64, Rc<Vec<Vec<u8>>>);

thread_local! {
    static ANCHORS: RefCell<Option<TaggedAnchors>> = const { RefCell::new(None) };
    static ANCHORS_PLAN: Cell<pgrx::pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// The trusted anchors (DER) and the epoch tag they are valid for, read from
/// the table only after an invalidation.
pub fn anchors(read: Read) -> TaggedAnchors {
    let current = invalidation::epoch();
    if let Some(hit) = ANCHORS.with(|a| a.borrow().clone().filter(|(tag, _)| *tag == current)) {
        return hit;
    }
    let ders: Vec<Vec<u8>> = spi::query(
        read.visibility,
        &ANCHORS_PLAN,
        c"SELECT certificate FROM kakunin.trust_anchors",
        &[],
        &[],
        |row| row.get::<Vec<u8>>(1),
    )
    .into_iter()
    .flatten()
    .collect();
    let entry = (read.tag(), Rc::new(ders));
    ANCHORS.with(|a| *a.borrow_mut() = Some(entry.clone()));
    entry
}

/// `kakunin.add_trust_anchor(pem, name)`: trusts a CA certificate (root or
/// intermediate). Refuses anything that is not a parseable CA certificate.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn add_trust_anchor(pem: Option<&str>, name: Option<&str>) -> SqlResult<pgrx::JsonB> {
    privilege::require_admin("kakunin.add_trust_anchor")?;
    let pem = required(pem, "pem")?;
    let name = required(name, "name")?;
    let invalid = KakuninError::InvalidArgument;
    if name.is_empty() || name.len() > 200 {
        return Err(invalid("trust anchor name must be 1 to 200 bytes".into()).into());
    }
    let ders = certificate_input::decode(pem).map_err(|e| invalid(format!("trust anchor: {e}")))?;
    let [der] = ders.as_slice() else {
        return Err(invalid(format!(
            "trust anchor: expected one certificate, got {}",
            ders.len()
        ))
        .into());
    };
    chain::check_anchor(der).map_err(|e| invalid(format!("trust anchor is {e}")))?;
    let info = kakunin_core::profile::read_ca_summary(der)
        .map_err(|e| invalid(format!("trust anchor is {e}")))?;
    let fingerprint = kakunin_core::sha256_hex(der);
    let actor = privilege::current_user_name();
    // No row limit on these writes: with SPI's tcount the executor stops early
    // and the statement trigger that invalidates other backends' caches does not fire.
    let inserted = privilege::as_extension_owner(|| {
        spi::connect_mut(|client| {
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
        return Err(invalid(format!(
            "a trust anchor named \"{name}\" or with fingerprint {fingerprint} already exists"
        ))
        .into());
    }
    let added = serde_json::json!({
        "name": name,
        "fingerprint": fingerprint,
        "subject": info.subject,
        "not_after": info.not_after,
    });
    crate::audit::append::admin_act("kakunin.trust_anchor.added", added.clone());
    Ok(pgrx::JsonB(added))
}

/// `kakunin.remove_trust_anchor(name)`: stops trusting an anchor; true if one was removed.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn remove_trust_anchor(name: Option<&str>) -> SqlResult<bool> {
    privilege::require_admin("kakunin.remove_trust_anchor")?;
    let name = required(name, "name")?;
    let removed = privilege::as_extension_owner(|| {
        spi::connect_mut(|client| {
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
        crate::audit::append::admin_act(
            "kakunin.trust_anchor.removed",
            serde_json::json!({"name": name}),
        );
    }
    Ok(removed > 0)
}
