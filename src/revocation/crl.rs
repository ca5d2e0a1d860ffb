//! `kakunin.load_crl(crl)`: the offline revocation channel. A CRL is accepted
//! only if a trust anchor whose subject is the CRL's issuer verifies its
//! signature, and only if it is not older than the CRL already loaded for that
//! issuer; its serials then enter the registry as revoked. The staleness of the
//! loaded CRL (past nextUpdate) is read at bind time and per statement ([`stale_status`]).

use std::cell::Cell;

use kakunin_core::binding::CertStatus;
use kakunin_core::crl;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;

use super::registry::{self, CrlEntry};
use super::trust;
use crate::pg::error::{required, spi_failed, KakuninError, Result, SqlResult};
use crate::pg::invalidation::{EpochCache, Read};
use crate::pg::privilege;
use crate::pg::spi::{self, Visibility};

/// `kakunin.load_crl(crl) → jsonb`: PEM or base64 DER. kakunin_admin only.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn load_crl(crl: Option<&str>) -> SqlResult<pgrx::JsonB> {
    privilege::require_admin("kakunin.load_crl")?;
    let parsed = crl::parse(required(crl, "crl")?).map_err(KakuninError::InvalidArgument)?;
    check_signature(&parsed)?;
    check_not_older(&parsed)?;

    let actor = privilege::current_user_name();
    let issuer = hex::encode(&parsed.issuer_der);
    privilege::as_extension_owner(|| {
        spi::run(
            "INSERT INTO kakunin.crls (issuer_der, issuer, crl_number, this_update, next_update, entries, crl, loaded_by)
             VALUES ($1, $2, $3, pg_catalog.to_timestamp($4), pg_catalog.to_timestamp($5), $6, $7, $8)
             ON CONFLICT (issuer_der) DO UPDATE
             SET issuer = excluded.issuer, crl_number = excluded.crl_number,
                 this_update = excluded.this_update, next_update = excluded.next_update,
                 entries = excluded.entries, crl = excluded.crl,
                 loaded_at = pg_catalog.now(), loaded_by = excluded.loaded_by",
            &[
                parsed.issuer_der.as_slice().into(),
                parsed.issuer.as_str().into(),
                parsed.number.clone().into(),
                (parsed.this_update as f64).into(),
                parsed.next_update.map(|t| t as f64).into(),
                (parsed.revoked.len() as i32).into(),
                parsed.der().into(),
                actor.as_str().into(),
            ],
        )
    })
    .unwrap_or_else(|e| spi_failed("store the CRL", e));
    let entries: Vec<CrlEntry> = parsed
        .revoked
        .iter()
        .map(|r| CrlEntry {
            serial: r.serial.clone(),
            // certificateHold is the one reason a CA may lift (RFC 5280 §5.3.1).
            status: match r.reason.as_deref() {
                Some("certificateHold") => CertStatus::Suspended,
                _ => CertStatus::Revoked,
            },
            reason: format!("crl: {}", r.reason.as_deref().unwrap_or("unspecified")),
        })
        .collect();
    let newly_revoked = registry::apply_crl(&issuer, parsed.this_update, &entries);
    let loaded = json!({
        "issuer": parsed.issuer,
        "crl_number": parsed.number,
        "this_update": kakunin_core::rfc3339(parsed.this_update),
        "next_update": parsed.next_update.map(kakunin_core::rfc3339),
        "revoked": entries.len(),
        "newly_revoked": newly_revoked,
    });
    crate::audit::append::admin_act("kakunin.crl.loaded", loaded.clone());
    Ok(pgrx::JsonB(loaded))
}

/// A CRL counts only if a trust anchor whose subject is its issuer verifies
/// its signature.
fn check_signature(parsed: &crl::Crl) -> Result<()> {
    let (_, anchors) = trust::anchors(Read::new(Visibility::Latest));
    let issuers: Vec<_> = anchors
        .iter()
        .filter_map(|der| kakunin_core::profile::read_ca_summary(der).ok())
        .filter(|ca| ca.subject_der == parsed.issuer_der)
        .collect();
    if issuers.is_empty() {
        return Err(KakuninError::identity(format!(
            "CRL refused: its issuer \"{}\" is not a trust anchor",
            parsed.issuer
        )));
    }
    if !issuers.iter().any(|ca| parsed.verify(&ca.spki_der).is_ok()) {
        return Err(KakuninError::identity(format!(
            "CRL refused: its signature does not verify with the key of trust anchor \"{}\"",
            parsed.issuer
        )));
    }
    Ok(())
}

/// A CRL older than the one already loaded for its issuer is refused.
fn check_not_older(parsed: &crl::Crl) -> Result<()> {
    let loaded = spi::connect(|client| {
        let table = client.select(
            "SELECT crl_number, extract(epoch FROM this_update)::float8 FROM kakunin.crls
             WHERE issuer_der OPERATOR(pg_catalog.=) $1",
            None,
            &[parsed.issuer_der.as_slice().into()],
        )?;
        match table.is_empty() {
            true => Ok(None),
            false => {
                let row = table.first();
                Ok(Some((
                    row.get::<String>(1)?,
                    row.get::<f64>(2)?.unwrap_or(0.0) as i64,
                )))
            }
        }
    })
    .unwrap_or_else(|e| spi_failed("read kakunin.crls", e));
    match loaded {
        Some((number, this_update)) if parsed.is_older_than(number.as_deref(), this_update) => {
            Err(KakuninError::InvalidArgument(format!(
                "CRL refused: it is older than the CRL already loaded for \"{}\" (number {}, thisUpdate {})",
                parsed.issuer,
                number.as_deref().unwrap_or("none"),
                kakunin_core::rfc3339(this_update)
            )))
        }
        _ => Ok(()),
    }
}

thread_local! {
    static PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    /// issuer DER -> nextUpdate of its loaded CRL, if any
    static NEXT_UPDATE: EpochCache<Vec<u8>, Option<i64>> = EpochCache::new(1024);
}

/// `Unknown` if the loaded CRL of `issuer_der` is past its nextUpdate at `at`:
/// the revocation data is stale, so nothing can be said about the certificate.
pub fn stale_status(issuer_der: &[u8], read: Read, at: i64) -> Option<CertStatus> {
    let next_update = match NEXT_UPDATE.with(|c| c.get(issuer_der)) {
        Some(next_update) => next_update,
        None => {
            let arg = issuer_der.into_datum().unwrap_or(pg_sys::Datum::from(0));
            let next_update = spi::query(
                read.visibility,
                &PLAN,
                c"SELECT coalesce(extract(epoch FROM next_update)::float8, 'infinity')
                  FROM kakunin.crls WHERE issuer_der OPERATOR(pg_catalog.=) $1",
                &[pg_sys::BYTEAOID],
                &[arg],
                |row| {
                    row.get::<f64>(1)
                        .map(|t| if t.is_finite() { t as i64 } else { i64::MAX })
                },
            )
            .into_iter()
            .flatten()
            .next();
            NEXT_UPDATE.with(|c| c.insert(issuer_der.to_vec(), read, next_update));
            next_update
        }
    };
    next_update.filter(|t| *t < at).map(|_| CertStatus::Unknown)
}
