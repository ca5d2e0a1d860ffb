//! Signed webhooks from the certificate authority.
//!
//! Header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, with
//! several `v1=` values during a secret rotation (any match passes). The
//! timestamp must be within [`WINDOW_SECONDS`] of now, either way, which bounds
//! how long a captured delivery could be replayed; within the window the caller
//! refuses an event id it has seen.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

pub const WINDOW_SECONDS: i64 = 300;
const MAX_SIGNATURES: usize = 8;
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookError {
    MissingHeader,
    MalformedHeader(&'static str),
    BadSignature,
    Stale { t: i64, now: i64 },
    FromTheFuture { t: i64, now: i64 },
    TooLarge,
    MalformedEvent(&'static str),
}

impl WebhookError {
    /// Short title for an RFC 7807 problem document.
    pub fn title(&self) -> &'static str {
        match self {
            WebhookError::MissingHeader => "Missing signature header",
            WebhookError::MalformedHeader(_) => "Malformed signature header",
            WebhookError::BadSignature => "Invalid signature",
            WebhookError::Stale { .. } => "Timestamp too old",
            WebhookError::FromTheFuture { .. } => "Timestamp in the future",
            WebhookError::TooLarge => "Body too large",
            WebhookError::MalformedEvent(_) => "Malformed event",
        }
    }

    /// Problem type slug (`type` is `urn:kakunin:webhook:<slug>`).
    pub fn slug(&self) -> &'static str {
        match self {
            WebhookError::MissingHeader => "missing-signature",
            WebhookError::MalformedHeader(_) => "malformed-signature",
            WebhookError::BadSignature => "invalid-signature",
            WebhookError::Stale { .. } => "stale-timestamp",
            WebhookError::FromTheFuture { .. } => "future-timestamp",
            WebhookError::TooLarge => "body-too-large",
            WebhookError::MalformedEvent(_) => "malformed-event",
        }
    }
}

impl std::fmt::Display for WebhookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookError::MissingHeader => write!(f, "the signature header is missing"),
            WebhookError::MalformedHeader(why) => {
                write!(f, "the signature header is malformed: {why}")
            }
            WebhookError::BadSignature => write!(f, "no v1 signature matches the body"),
            WebhookError::Stale { t, now } => write!(
                f,
                "timestamp {t} is more than {WINDOW_SECONDS} seconds before now ({now})"
            ),
            WebhookError::FromTheFuture { t, now } => write!(
                f,
                "timestamp {t} is more than {WINDOW_SECONDS} seconds after now ({now})"
            ),
            WebhookError::TooLarge => write!(f, "the body is larger than {MAX_BODY_BYTES} bytes"),
            WebhookError::MalformedEvent(why) => write!(f, "the event is malformed: {why}"),
        }
    }
}

impl std::error::Error for WebhookError {}

/// `(t, [v1 signatures])` from the header.
pub fn parse_header(header: &str) -> Result<(i64, Vec<Vec<u8>>), WebhookError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(WebhookError::MissingHeader);
    }
    let (mut t, mut signatures) = (None, Vec::new());
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(WebhookError::MalformedHeader("expected key=value pairs"))?;
        match key {
            "t" if t.is_none() => {
                t = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| WebhookError::MalformedHeader("t is not a unix timestamp"))?,
                )
            }
            "t" => return Err(WebhookError::MalformedHeader("t appears twice")),
            "v1" => {
                let sig = hex::decode(value)
                    .ok()
                    .filter(|s| s.len() == 32)
                    .ok_or(WebhookError::MalformedHeader("v1 is not 64 hex digits"))?;
                signatures.push(sig);
                if signatures.len() > MAX_SIGNATURES {
                    return Err(WebhookError::MalformedHeader("too many v1 values"));
                }
            }
            // Other schemes (v0, future versions) are ignored, as signers expect.
            _ => {}
        }
    }
    let t = t.ok_or(WebhookError::MalformedHeader("no t= value"))?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedHeader("no v1= signature"));
    }
    Ok((t, signatures))
}

/// The v1 signature of `body` signed at `t` (what a CA sends).
pub fn sign(secret: &[u8], t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks the header against `body` at `now`; returns the signed timestamp.
/// Signatures are compared in constant time.
pub fn verify(secret: &[u8], header: &str, body: &str, now: i64) -> Result<i64, WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge);
    }
    let (t, signatures) = parse_header(header)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::BadSignature)?;
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    // Compare against every candidate (no early exit on a match position).
    let matched = signatures.iter().fold(false, |any, sig| {
        mac.clone().verify_slice(sig).is_ok() | any
    });
    if !matched {
        return Err(WebhookError::BadSignature);
    }
    if t < now - WINDOW_SECONDS {
        return Err(WebhookError::Stale { t, now });
    }
    if t > now + WINDOW_SECONDS {
        return Err(WebhookError::FromTheFuture { t, now });
    }
    Ok(t)
}

/// A certificate-authority event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub serial: Option<String>,
    pub agent_id: Option<String>,
    pub reason: Option<String>,
    /// When the CA made the statement (unix seconds), from the event's
    /// `created_at` / `occurred_at` / `created` / `timestamp` (unix seconds or
    /// RFC 3339). Not the delivery's `t=`, which a retry renews.
    pub at: Option<i64>,
}

/// Unix seconds from a JSON number or an RFC 3339 string.
fn event_time(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp())
        }
        _ => None,
    }
}

/// Reads the CA's event: `{"event": "certificate.revoked", "data":
/// {"serial_number", "agent_id"?, "reason"?}}` as the seed's handler reads it
/// (`event.event`, `event.data.serial_number`), with `type` accepted for
/// `event` and an optional `id`. Without an `id`, the event is identified by
/// the SHA-256 of its body, so a retried delivery of the same event is still
/// recognised as a replay.
pub fn parse_event(body: &str) -> Result<Event, WebhookError> {
    let value: Value =
        serde_json::from_str(body).map_err(|_| WebhookError::MalformedEvent("body is not JSON"))?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let id = match value.get("id") {
        None | Some(Value::Null) => format!("sha256:{}", crate::sha256_hex(body.as_bytes())),
        Some(id) => text(Some(id))
            .filter(|id| !id.is_empty() && id.len() <= 200)
            .ok_or(WebhookError::MalformedEvent(
                "id must be a string of 1 to 200 characters",
            ))?,
    };
    let kind = text(value.get("event").or_else(|| value.get("type"))).ok_or(
        WebhookError::MalformedEvent("event (the event type) is missing"),
    )?;
    let data = value.get("data");
    let serial = data
        .and_then(|d| d.get("serial_number").or_else(|| d.get("serial")))
        .and_then(Value::as_str)
        .map(|s| {
            crate::serial::normalize(s)
                .map_err(|_| WebhookError::MalformedEvent("serial_number is not hex"))
        })
        .transpose()?;
    Ok(Event {
        id,
        kind,
        serial,
        agent_id: text(data.and_then(|d| {
            d.get("agent_id")
                .or_else(|| d.get("agent").and_then(|a| a.get("id")))
        })),
        reason: text(data.and_then(|d| d.get("reason"))),
        at: ["created_at", "occurred_at", "created", "timestamp"]
            .iter()
            .find_map(|k| value.get(*k))
            .map(|v| {
                event_time(v).ok_or(WebhookError::MalformedEvent(
                    "the event time is not unix seconds or RFC 3339",
                ))
            })
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &str = r#"{"id":"evt_1","type":"certificate.revoked","data":{"serial_number":"0A:1B","reason":"keyCompromise"}}"#;

    #[test]
    fn the_seed_cas_own_format_is_read() {
        // The seed's handler: event.event === 'certificate.revoked', event.data.serial_number.
        let body = r#"{"event":"certificate.revoked","data":{"serial_number":"5A:5A:00:01","agent_id":"agt-1"}}"#;
        let event = parse_event(body).unwrap();
        assert_eq!(event.kind, "certificate.revoked");
        assert_eq!(event.serial.as_deref(), Some("5a5a0001"));
        assert_eq!(event.agent_id.as_deref(), Some("agt-1"));
        assert_eq!(
            event.id,
            format!("sha256:{}", crate::sha256_hex(body.as_bytes()))
        );
        assert_eq!(
            parse_event(body).unwrap().id,
            event.id,
            "a retry is the same event"
        );
        assert_eq!(event.at, None);
        let timed = |t: &str| {
            parse_event(&format!(r#"{{"event":"x","created_at":{t},"data":{{}}}}"#)).map(|e| e.at)
        };
        assert_eq!(timed("1700000000"), Ok(Some(1_700_000_000)));
        assert_eq!(timed(r#""2023-11-14T22:13:20Z""#), Ok(Some(1_700_000_000)));
        assert!(timed(r#""yesterday""#).is_err());
    }

    #[test]
    fn a_signed_body_verifies_within_the_window() {
        let header = format!("t=1000,v1={}", sign(SECRET, 1000, BODY));
        assert_eq!(verify(SECRET, &header, BODY, 1000), Ok(1000));
        assert_eq!(verify(SECRET, &header, BODY, 1300), Ok(1000));
        assert!(matches!(
            verify(SECRET, &header, BODY, 1301),
            Err(WebhookError::Stale { .. })
        ));
        assert!(matches!(
            verify(SECRET, &header, BODY, 699),
            Err(WebhookError::FromTheFuture { .. })
        ));
    }

    #[test]
    fn rotation_any_v1_passes() {
        let header = format!(
            "t=5,v1={},v1={}",
            sign(b"old", 5, BODY),
            sign(SECRET, 5, BODY)
        );
        assert!(verify(SECRET, &header, BODY, 5).is_ok());
        assert!(verify(b"old", &header, BODY, 5).is_ok());
        assert_eq!(
            verify(b"other", &header, BODY, 5),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let header = format!("t=5,v1={}", sign(SECRET, 5, BODY));
        assert_eq!(
            verify(SECRET, &header, &BODY.replace("0A", "0B"), 5),
            Err(WebhookError::BadSignature)
        );
        // The timestamp is signed too.
        let moved = header.replacen("t=5", "t=6", 1);
        assert_eq!(
            verify(SECRET, &moved, BODY, 5),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(parse_header(""), Err(WebhookError::MissingHeader));
        for bad in [
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,t=2,v1=00",
            "garbage",
        ] {
            assert!(
                matches!(parse_header(bad), Err(WebhookError::MalformedHeader(_))),
                "{bad}"
            );
        }
        assert!(parse_header(&format!("t=1,v0=ignored,v1={}", "00".repeat(32))).is_ok());
    }

    #[test]
    fn events_are_read() {
        let e = parse_event(BODY).unwrap();
        assert_eq!(
            (e.id.as_str(), e.kind.as_str()),
            ("evt_1", "certificate.revoked")
        );
        assert_eq!(e.serial.as_deref(), Some("0a1b"));
        assert_eq!(e.reason.as_deref(), Some("keyCompromise"));
        let retired =
            parse_event(r#"{"id":"e","type":"agent.retired","data":{"agent":{"id":"a-1"}}}"#)
                .unwrap();
        assert_eq!(retired.agent_id.as_deref(), Some("a-1"));
        assert!(parse_event("[]").is_err());
        assert!(parse_event(r#"{"id":"e"}"#).is_err());
        assert!(parse_event(r#"{"id":5,"event":"x"}"#).is_err());
        assert!(parse_event(r#"{"id":"e","type":"x","data":{"serial_number":"zz"}}"#).is_err());
    }
}
