//! `kakunin.handle_webhook(body, signature_header)`: the push channel of the
//! certificate authority, and `kakunin.set_webhook_secret(secret)`.
//!
//! A refused delivery raises SQLSTATE 28000 whose DETAIL is an RFC 7807 problem
//! document (`{"type", "title", "status": 401, "detail"}`) the webhook route
//! can return as is. The secret never appears in a message.

use kakunin_core::binding::CertStatus;
use kakunin_core::webhook::{self, Event, WebhookError};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use serde_json::json;

use super::registry::{self, Source, Subject};
use crate::pg::error::{required, spi_failed, KakuninError, SqlResult};
use crate::pg::{privilege, spi, time};

const MIN_SECRET_BYTES: usize = 16;

fn refuse(slug: &str, title: &str, detail: &str) -> ! {
    let problem = json!({
        "type": format!("urn:kakunin:webhook:{slug}"),
        "title": title,
        "status": 401,
        "detail": detail,
    });
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        format!("webhook refused: {title}"),
        problem.to_string()
    );
}

fn refuse_with(error: WebhookError) -> ! {
    refuse(error.slug(), error.title(), &error.to_string())
}

/// `kakunin.set_webhook_secret(secret)`: stores the HMAC secret (admins only).
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn set_webhook_secret(secret: Option<&str>) -> SqlResult<()> {
    privilege::require_admin("kakunin.set_webhook_secret")?;
    let secret = required(secret, "secret")?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(KakuninError::InvalidArgument(format!(
            "the webhook secret must be at least {MIN_SECRET_BYTES} bytes"
        ))
        .into());
    }
    let actor = privilege::current_user_name();
    privilege::as_extension_owner(|| {
        spi::run(
            "INSERT INTO kakunin.webhook_secret (secret, set_by) VALUES ($1, $2)
             ON CONFLICT (singleton) DO UPDATE
             SET secret = excluded.secret, set_at = pg_catalog.now(), set_by = excluded.set_by",
            &[secret.as_bytes().into(), actor.as_str().into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("store the webhook secret", e));
    // The act, never the secret.
    crate::audit::append::admin_act("kakunin.webhook_secret.set", serde_json::json!({}));
    Ok(())
}

fn webhook_secret() -> Option<Vec<u8>> {
    privilege::as_extension_owner(|| {
        spi::select_one::<Vec<u8>>("SELECT secret FROM kakunin.webhook_secret", &[])
    })
    .unwrap_or_else(|e| spi_failed("read the webhook secret", e))
}

/// `kakunin.handle_webhook(body, signature_header) → jsonb`.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn handle_webhook(body: Option<&str>, signature_header: Option<&str>) -> pgrx::JsonB {
    let header = signature_header.unwrap_or_default();
    if header.trim().is_empty() {
        refuse_with(WebhookError::MissingHeader);
    }
    let body = body.unwrap_or_default();
    let Some(secret) = webhook_secret() else {
        refuse(
            "not-configured",
            "Webhook secret not configured",
            "kakunin.set_webhook_secret has not been called; no delivery can be verified",
        );
    };
    let now = time::now_unix();
    let signed_at = webhook::verify(&secret, header, body, now).unwrap_or_else(|e| refuse_with(e));
    let event = webhook::parse_event(body).unwrap_or_else(|e| refuse_with(e));
    let outcome = apply(&event, event.at.unwrap_or(signed_at));
    if !record(&event, signed_at, outcome) {
        refuse(
            "replay",
            "Replayed event",
            &format!(
                "event {} was already received within the replay window",
                event.id
            ),
        );
    }
    pgrx::JsonB(json!({
        "status": outcome,
        "event_id": event.id,
        "type": event.kind,
        "serial": event.serial,
        "agent_id": event.agent_id,
    }))
}

/// Records the event id; false if it was seen within the window (a replay,
/// whose effects are rolled back with the error that follows).
fn record(event: &Event, signed_at: i64, outcome: &str) -> bool {
    privilege::as_extension_owner(|| {
        spi::connect_mut(|client| {
            client.update(
                "DELETE FROM kakunin.webhook_events
                 WHERE received_at OPERATOR(pg_catalog.<) pg_catalog.now() - interval '10 minutes'",
                None,
                &[],
            )?;
            client
                .update(
                    "INSERT INTO kakunin.webhook_events (event_id, event_type, serial, agent_id, signed_at, outcome)
                     VALUES ($1, $2, $3, $4, pg_catalog.to_timestamp($5), $6)
                     ON CONFLICT (event_id) DO NOTHING",
                    None,
                    &[
                        event.id.as_str().into(),
                        event.kind.as_str().into(),
                        event.serial.clone().into(),
                        event.agent_id.clone().into(),
                        (signed_at as f64).into(),
                        outcome.into(),
                    ],
                )
                .map(|t| t.len() == 1)
        })
    })
    .unwrap_or_else(|e| spi_failed("record the webhook event", e))
}

/// Applies an event, stated at `stated_at` (the event's own time, else the
/// delivery's), to the registry under the registry's rule
/// ([`registry::SUPERSEDES`]): `superseded` when a newer statement or a
/// revocation stands. Unknown types are acknowledged and ignored.
fn apply(event: &Event, stated_at: i64) -> &'static str {
    let status = match event.kind.as_str() {
        "certificate.revoked" => CertStatus::Revoked,
        "certificate.suspended" => CertStatus::Suspended,
        "certificate.reinstated" => CertStatus::Active,
        "agent.retired" => CertStatus::Retired,
        _ => return "ignored",
    };
    let reason = event.reason.as_deref().or(Some(event.kind.as_str()));
    // A webhook names no issuer: it speaks for the serial under every issuer.
    let subject = match (&event.serial, &event.agent_id) {
        (Some(serial), _) => Subject::Certificate { serial, issuer: "" },
        (None, Some(agent)) if status == CertStatus::Retired => Subject::Agent(agent),
        _ => refuse_with(WebhookError::MalformedEvent(
            "data.serial_number is missing",
        )),
    };
    if registry::state(
        subject,
        Source::Webhook,
        status,
        stated_at,
        reason,
        "webhook",
    ) {
        "applied"
    } else {
        "superseded"
    }
}
