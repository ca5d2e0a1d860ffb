//! Trust anchors: the CA certificates agent certificates must chain to.
//! Stored in `kakunin.trust_anchors`, cached per backend per invalidation epoch.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use kakunin_core::certificate_input;
use kakunin_core::chain;
use pgrx::prelude::*;

use crate::pg::error::{required, spi_failed, KakuninError, Result, SqlResult};
use crate::pg::invalidation::{self, Read};
use crate::pg::{privilege, spi};

/// DER of each trusted anchor, with the tag it is valid for: the epoch tag
/// ([`Read::tag`]) doubled, plus one when test anchors are included, so that a
/// verdict reached through a test anchor is not reused once
/// `kakunin.allow_test_ca` is off.
pub type TaggedAnchors = (u64, Rc<Vec<Vec<u8>>>);

/// The cached table: (epoch tag, every anchor, the anchors not made for tests).
type Cached = (u64, Rc<Vec<Vec<u8>>>, Rc<Vec<Vec<u8>>>);

thread_local! {
    static ANCHORS: RefCell<Option<Cached>> = const { RefCell::new(None) };
    static ANCHORS_PLAN: Cell<pgrx::pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// The trusted anchors (DER) and the tag they are valid for, read from the
/// table only after an invalidation. Test anchors (`kakunin.enable_test_ca`)
/// count only while `kakunin.allow_test_ca` is on: a test CA's key lives in
/// the database, so a server that does not allow test CAs does not trust one
/// either (fail closed).
pub fn anchors(read: Read) -> TaggedAnchors {
    let current = invalidation::epoch();
    let cached = ANCHORS.with(|a| a.borrow().clone().filter(|(tag, ..)| *tag == current));
    let (tag, all, production) = cached.unwrap_or_else(|| {
        let rows: Vec<(Vec<u8>, bool)> = spi::query(
            read.visibility,
            &ANCHORS_PLAN,
            c"SELECT certificate, test_anchor FROM kakunin.trust_anchors",
            &[],
            &[],
            |row| Some((row.get::<Vec<u8>>(1)?, row.get::<bool>(2)?)),
        )
        .into_iter()
        .flatten()
        .collect();
        let production = rows
            .iter()
            .filter(|(_, test)| !test)
            .map(|(der, _)| der.clone());
        let entry = (
            read.tag(),
            Rc::new(rows.iter().map(|(der, _)| der.clone()).collect()),
            Rc::new(production.collect()),
        );
        ANCHORS.with(|a| *a.borrow_mut() = Some(entry.clone()));
        entry
    });
    if crate::gucs::allow_test_ca() && all.len() > production.len() {
        (tag * 2 + 1, all)
    } else {
        (tag * 2, production)
    }
}

/// Whether the latest [`anchors`] left test anchors out (so a refusal can say
/// why a certificate from the test CA does not chain).
pub fn test_anchors_ignored() -> bool {
    !crate::gucs::allow_test_ca()
        && ANCHORS.with(|a| {
            a.borrow()
                .as_ref()
                .is_some_and(|(_, all, production)| all.len() > production.len())
        })
}

/// `kakunin.add_trust_anchor(pem, name)`: trusts a CA certificate (root or
/// intermediate). Refuses anything that is not a parseable CA certificate.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn add_trust_anchor(pem: Option<&str>, name: Option<&str>) -> SqlResult<pgrx::JsonB> {
    privilege::require_admin("kakunin.add_trust_anchor")?;
    let pem = required(pem, "pem")?;
    let name = required(name, "name")?;
    let ders = certificate_input::decode(pem).map_err(|e| invalid(format!("trust anchor: {e}")))?;
    let [der] = ders.as_slice() else {
        return Err(invalid(format!(
            "trust anchor: expected one certificate, got {}",
            ders.len()
        ))
        .into());
    };
    Ok(pgrx::JsonB(insert_anchor(name, der, false)?))
}

fn invalid(message: String) -> KakuninError {
    KakuninError::InvalidArgument(message)
}

/// Adds the CA certificate `der` as anchor `name` (a test anchor if `test`),
/// audits it, and returns what was added. Refuses a certificate that cannot
/// be an anchor, and a name or certificate already trusted.
pub fn insert_anchor(name: &str, der: &[u8], test: bool) -> Result<serde_json::Value> {
    if name.is_empty() || name.len() > 200 {
        return Err(invalid("trust anchor name must be 1 to 200 bytes".into()));
    }
    chain::check_anchor(der).map_err(|e| invalid(format!("trust anchor is {e}")))?;
    // A test CA's key was kept in a database: never a production anchor, even
    // after kakunin.disable_test_ca() removed it (its certificates live on).
    if !test && kakunin_core::profile::is_test_ca(der) {
        return Err(invalid(
            "trust anchor is a kakunin test CA (made by kakunin.enable_test_ca); it can only be trusted as a test anchor".into(),
        ));
    }
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
                    "INSERT INTO kakunin.trust_anchors
                         (name, fingerprint, subject, certificate, not_after, added_by, test_anchor)
                     VALUES ($1, $2, $3, $4, pg_catalog.to_timestamp($5), $6, $7)
                     ON CONFLICT DO NOTHING",
                    None,
                    &[
                        name.into(),
                        fingerprint.as_str().into(),
                        info.subject.as_str().into(),
                        der.into(),
                        (info.not_after as f64).into(),
                        actor.as_str().into(),
                        test.into(),
                    ],
                )
                .map(|table| table.len())
        })
    })
    .unwrap_or_else(|e| spi_failed("write kakunin.trust_anchors", e));
    if inserted == 0 {
        return Err(invalid(format!(
            "a trust anchor named \"{name}\" or with fingerprint {fingerprint} already exists"
        )));
    }
    let added = serde_json::json!({
        "name": name,
        "fingerprint": fingerprint,
        "subject": info.subject,
        "not_after": info.not_after,
        "test_anchor": test,
    });
    crate::audit::append::admin_act("kakunin.trust_anchor.added", added.clone());
    Ok(added)
}

/// `kakunin.remove_trust_anchor(name)`: stops trusting an anchor; true if one was removed.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn remove_trust_anchor(name: Option<&str>) -> SqlResult<bool> {
    privilege::require_admin("kakunin.remove_trust_anchor")?;
    let name = required(name, "name")?;
    Ok(!remove_anchors(Some(name)).is_empty())
}

/// Stops trusting the anchor `name`, or (None) every test anchor; audits each
/// removal and returns the names removed. A test CA's key goes with its anchor
/// (`kakunin.test_ca` references it ON DELETE CASCADE).
pub fn remove_anchors(name: Option<&str>) -> Vec<String> {
    let removed: Vec<String> = privilege::as_extension_owner(|| {
        spi::connect_mut(|client| {
            let table = client.update(
                "DELETE FROM kakunin.trust_anchors
                 WHERE CASE WHEN $1 IS NULL THEN test_anchor ELSE name OPERATOR(pg_catalog.=) $1 END
                 RETURNING name",
                None,
                &[name.into()],
            )?;
            table
                .map(|row| row.get::<String>(1))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
    })
    .unwrap_or_else(|e| spi_failed("write kakunin.trust_anchors", e))
    .into_iter()
    .flatten()
    .collect();
    for name in &removed {
        crate::audit::append::admin_act(
            "kakunin.trust_anchor.removed",
            serde_json::json!({"name": name}),
        );
    }
    removed
}
