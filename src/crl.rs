//! `kakunin.load_crl(crl)`: the offline revocation channel. A CRL is accepted
//! only if a trust anchor whose subject is the CRL's issuer verifies its
//! signature, and only if it is not older than the CRL already loaded for that
//! issuer; its serials then enter the registry as revoked. The staleness of the
//! loaded CRL (past nextUpdate) is read at bind time ([`stale_after`]).

use std::cell::Cell;

use kakunin_core::binding::CertStatus;
use kakunin_core::crl;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;

use crate::error::{spi_failed, KakuninError, OrRaise};
use crate::invalidation::{self, EpochCache};
use crate::registry::{self, tag_for};
use crate::spi_plans::{self, Visibility};
use crate::{privilege, trust};

/// `kakunin.load_crl(crl) → jsonb`: PEM or base64 DER. kakunin_admin only.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn load_crl(crl: Option<&str>) -> pgrx::JsonB {
    privilege::require_admin("kakunin.load_crl");
    let text = crl.ok_or(KakuninError::NullArgument("crl")).or_raise();
    let parsed = crl::parse(text)
        .map_err(KakuninError::InvalidArgument)
        .or_raise();

    let before = invalidation::epoch();
    invalidation::refresh();
    let (_, anchors) = trust::anchors(Visibility::Latest, before);
    let issuers: Vec<_> = anchors
        .iter()
        .filter_map(|der| kakunin_core::profile::read_ca_summary(der).ok())
        .filter(|ca| ca.subject_der == parsed.issuer_der)
        .collect();
    if issuers.is_empty() {
        KakuninError::Identity(format!(
            "CRL refused: its issuer \"{}\" is not a trust anchor",
            parsed.issuer
        ))
        .raise();
    }
    if !issuers.iter().any(|ca| parsed.verify(&ca.spki_der).is_ok()) {
        KakuninError::Identity(format!(
            "CRL refused: its signature does not verify with the key of trust anchor \"{}\"",
            parsed.issuer
        ))
        .raise();
    }

    let loaded = spi_plans::connect(|client| {
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
    if let Some((number, this_update)) = &loaded {
        if parsed.is_older_than(number.as_deref(), *this_update) {
            KakuninError::InvalidArgument(format!(
                "CRL refused: it is older than the CRL already loaded for \"{}\" (number {}, thisUpdate {})",
                parsed.issuer,
                number.as_deref().unwrap_or("none"),
                kakunin_core::rfc3339(*this_update)
            ))
            .raise();
        }
    }

    let actor = privilege::current_user_name();
    let serials: Vec<String> = parsed.revoked.iter().map(|r| r.serial.clone()).collect();
    let reasons: Vec<String> = parsed
        .revoked
        .iter()
        .map(|r| format!("crl: {}", r.reason.as_deref().unwrap_or("unspecified")))
        .collect();
    // certificateHold is the one reason a CA may lift (RFC 5280 §5.3.1).
    let statuses: Vec<&str> = parsed
        .revoked
        .iter()
        .map(|r| match r.reason.as_deref() {
            Some("certificateHold") => "suspended",
            _ => "revoked",
        })
        .collect();
    let issuer = hex::encode(&parsed.issuer_der);
    let newly_revoked = privilege::as_extension_owner(|| {
        spi_plans::connect_mut(|client| {
            client.update(
                "INSERT INTO kakunin.crls (issuer_der, issuer, crl_number, this_update, next_update, entries, crl, loaded_by)
                 VALUES ($1, $2, $3, pg_catalog.to_timestamp($4), pg_catalog.to_timestamp($5), $6, $7, $8)
                 ON CONFLICT (issuer_der) DO UPDATE
                 SET issuer = excluded.issuer, crl_number = excluded.crl_number,
                     this_update = excluded.this_update, next_update = excluded.next_update,
                     entries = excluded.entries, crl = excluded.crl,
                     loaded_at = pg_catalog.now(), loaded_by = excluded.loaded_by",
                None,
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
            )?;
            // A CRL speaks for its issuer only, as of its thisUpdate, under the
            // registry's rule; a hold it no longer lists is lifted.
            client.update(
                &format!(
                    "UPDATE kakunin.certificate_status AS c
                     SET status = 'active', reason = 'crl: hold lifted', stated_at = excluded.stated_at,
                         changed_at = pg_catalog.now(), changed_by = 'crl'
                     FROM (SELECT pg_catalog.to_timestamp($3) AS stated_at) AS excluded
                     WHERE c.source OPERATOR(pg_catalog.=) 'crl' AND c.issuer OPERATOR(pg_catalog.=) $2
                       AND c.status OPERATOR(pg_catalog.=) 'suspended'
                       AND c.serial OPERATOR(pg_catalog.<>) ALL ($1::text[]) AND {}",
                    registry::SUPERSEDES
                ),
                None,
                &[
                    serials.clone().into(),
                    issuer.as_str().into(),
                    (parsed.this_update as f64).into(),
                ],
            )?;
            client
                .update(
                    &format!(
                        "INSERT INTO kakunin.certificate_status AS c
                             (serial, issuer, source, status, reason, stated_at, changed_at, changed_by)
                         SELECT s, $3, 'crl', st, r, pg_catalog.to_timestamp($4), pg_catalog.now(), 'crl'
                         FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]),
                                         pg_catalog.unnest($5::text[])) AS u(s, r, st)
                         ON CONFLICT (serial, issuer, source) DO UPDATE
                         SET status = excluded.status, reason = excluded.reason, stated_at = excluded.stated_at,
                             changed_at = excluded.changed_at, changed_by = excluded.changed_by
                         WHERE {} AND c.status OPERATOR(pg_catalog.<>) excluded.status
                         RETURNING serial",
                        registry::SUPERSEDES
                    ),
                    None,
                    &[
                        serials.clone().into(),
                        reasons.into(),
                        issuer.as_str().into(),
                        (parsed.this_update as f64).into(),
                        statuses.into(),
                    ],
                )
                .map(|t| t.len())
        })
    })
    .unwrap_or_else(|e| spi_failed("apply the CRL", e));
    let loaded = json!({
        "issuer": parsed.issuer,
        "crl_number": parsed.number,
        "this_update": kakunin_core::rfc3339(parsed.this_update),
        "next_update": parsed.next_update.map(kakunin_core::rfc3339),
        "revoked": serials.len(),
        "newly_revoked": newly_revoked,
    });
    crate::audit::admin_act("kakunin.crl.loaded", loaded.clone());
    pgrx::JsonB(loaded)
}

thread_local! {
    static PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    /// issuer DER -> nextUpdate of its loaded CRL, if any
    static NEXT_UPDATE: EpochCache<Vec<u8>, Option<i64>> = EpochCache::new(1024);
}

/// `Unknown` if the loaded CRL of `issuer_der` is past its nextUpdate at `at`:
/// the revocation data is stale, so nothing can be said about the certificate.
pub fn stale_status(
    issuer_der: &[u8],
    visibility: Visibility,
    epoch_before: u64,
    at: i64,
) -> Option<CertStatus> {
    let next_update = match NEXT_UPDATE.with(|c| c.get(issuer_der)) {
        Some(next_update) => next_update,
        None => {
            let arg = issuer_der.into_datum().unwrap_or(pg_sys::Datum::from(0));
            let next_update = spi_plans::query(
                visibility,
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
            NEXT_UPDATE.with(|c| {
                c.insert(
                    issuer_der.to_vec(),
                    tag_for(visibility, epoch_before),
                    next_update,
                )
            });
            next_update
        }
    };
    next_update.filter(|t| *t < at).map(|_| CertStatus::Unknown)
}
