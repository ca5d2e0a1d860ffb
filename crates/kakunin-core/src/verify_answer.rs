//! Answers of the CA's online verify endpoint (`GET <verify_url><serial>`) and
//! how long each may be cached, as the CA documents it: `active` for five
//! minutes, `revoked` and `expired` for sixty seconds. Anything that is not a
//! well-formed answer for the serial asked is `unknown`, never cached.

use serde_json::Value;

use crate::binding::CertStatus;
use crate::scope::FinancialScope;

pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: CertStatus,
    pub agent_id: Option<String>,
    pub tenant_id: Option<String>,
    /// `financial_scope`, or `permitted_instruments` turned into a scope.
    pub scope: Option<FinancialScope>,
    /// Why the status is unknown (for messages); None for a real answer.
    pub failure: Option<String>,
}

impl Answer {
    pub fn unknown(why: impl Into<String>) -> Answer {
        Answer {
            status: CertStatus::Unknown,
            agent_id: None,
            tenant_id: None,
            scope: None,
            failure: Some(why.into()),
        }
    }

    /// Seconds this answer may be served from cache; None: do not cache.
    pub fn ttl_seconds(&self) -> Option<u64> {
        match self.status {
            _ if self.failure.is_some() => None,
            CertStatus::Active => Some(300),
            CertStatus::Unknown => None,
            _ => Some(60),
        }
    }
}

impl Answer {
    /// A cacheable answer as compact JSON, for a cache shared between
    /// backends; [`Answer::decode`] reads it back.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::json!({
            "s": self.status.as_str(),
            "a": self.agent_id,
            "t": self.tenant_id,
            "c": self.scope.as_ref().map(FinancialScope::to_json),
        })
        .to_string()
        .into_bytes()
    }

    /// What [`Answer::encode`] wrote; None for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Answer> {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        let scope = match value.get("c") {
            None | Some(Value::Null) => None,
            Some(scope) => Some(FinancialScope::from_json(&scope.to_string()).ok()?),
        };
        Some(Answer {
            status: CertStatus::parse(value.get("s")?.as_str()?)?,
            agent_id: text("a"),
            tenant_id: text("t"),
            scope,
            failure: None,
        })
    }
}

/// Interprets an HTTP response for `serial` (canonical hex).
pub fn parse(http_status: u16, body: &[u8], serial: &str) -> Answer {
    match http_status {
        200 => {}
        404 => return Answer::unknown("the verify endpoint does not know this serial (404)"),
        429 => return Answer::unknown("the verify endpoint is rate limiting (429)"),
        s => return Answer::unknown(format!("the verify endpoint answered HTTP {s}")),
    }
    if body.len() > MAX_BODY_BYTES {
        return Answer::unknown("the verify endpoint's answer is too large");
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Answer::unknown("the verify endpoint's answer is not JSON");
    };
    let Some(data) = value.get("data") else {
        return Answer::unknown("the verify endpoint's answer has no data");
    };
    let answered_serial = data
        .get("serial_number")
        .and_then(Value::as_str)
        .and_then(|s| crate::serial::normalize(s).ok());
    if answered_serial.as_deref() != Some(serial) {
        return Answer::unknown("the verify endpoint answered for another serial");
    }
    let Some(status) = data
        .get("status")
        .and_then(Value::as_str)
        .and_then(CertStatus::parse)
        .filter(|s| *s != CertStatus::Unknown)
    else {
        return Answer::unknown("the verify endpoint's status is not one we know");
    };
    // `valid: false` with `active` is contradictory: trust the stricter word.
    let status = match (status, data.get("valid").and_then(Value::as_bool)) {
        (CertStatus::Active, Some(false)) => CertStatus::Unknown,
        (s, _) => s,
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let scope = match (
        data.get("financial_scope"),
        data.get("permitted_instruments"),
    ) {
        (Some(scope @ Value::Object(_)), _) => FinancialScope::from_json(&scope.to_string()).ok(),
        (_, Some(list @ Value::Array(_))) => {
            FinancialScope::from_json(&serde_json::json!({ "instruments": list }).to_string()).ok()
        }
        _ => None,
    };
    Answer {
        status,
        agent_id: text(data.get("agent").and_then(|a| a.get("id"))),
        tenant_id: text(data.get("agent").and_then(|a| a.get("tenant_id"))),
        scope,
        failure: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(status: &str, serial: &str) -> Vec<u8> {
        serde_json::json!({"data": {"serial_number": serial, "status": status, "valid": status == "active",
            "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2027-01-01T00:00:00Z",
            "agent": {"id": "agent-b", "name": "B", "model": "m", "version": "1"},
            "permitted_instruments": ["TSLA"]}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn answers_and_their_lifetimes() {
        let active = parse(200, &body("active", "0A:1B"), "0a1b");
        assert_eq!(active.status, CertStatus::Active);
        assert_eq!(active.agent_id.as_deref(), Some("agent-b"));
        assert_eq!(active.scope.unwrap().instruments, ["TSLA"]);
        assert_eq!(
            parse(200, &body("active", "0a1b"), "0a1b").ttl_seconds(),
            Some(300)
        );
        assert_eq!(
            parse(200, &body("revoked", "0a1b"), "0a1b").ttl_seconds(),
            Some(60)
        );
        assert_eq!(
            parse(200, &body("expired", "0a1b"), "0a1b").ttl_seconds(),
            Some(60)
        );
    }

    #[test]
    fn failures_are_unknown_and_not_cached() {
        for answer in [
            parse(404, b"", "0a1b"),
            parse(500, b"{}", "0a1b"),
            parse(429, b"", "0a1b"),
            parse(200, b"garbage", "0a1b"),
            parse(200, b"{}", "0a1b"),
            parse(200, &body("active", "ffff"), "0a1b"),
            parse(200, &body("weird", "0a1b"), "0a1b"),
            parse(200, &vec![b' '; MAX_BODY_BYTES + 1], "0a1b"),
        ] {
            assert_eq!(answer.status, CertStatus::Unknown, "{answer:?}");
            assert_eq!(answer.ttl_seconds(), None);
        }
    }

    #[test]
    fn answers_survive_encoding() {
        let body = br#"{"data": {"serial_number": "01", "status": "active", "agent": {"id": "agt-7"}, "permitted_instruments": ["AAPL"]}}"#;
        let answer = parse(200, body, "01");
        assert_eq!(
            (answer.status, answer.agent_id.as_deref()),
            (CertStatus::Active, Some("agt-7"))
        );
        assert_eq!(Answer::decode(&answer.encode()), Some(answer));
        let bare = Answer {
            status: CertStatus::Revoked,
            agent_id: None,
            tenant_id: None,
            scope: None,
            failure: None,
        };
        assert_eq!(Answer::decode(&bare.encode()), Some(bare));
        assert_eq!(Answer::decode(b"not json"), None);
    }
}
