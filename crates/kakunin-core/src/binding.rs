//! The record a successful bind leaves for the rest of the transaction, and the
//! status rules the helpers apply to it.
//!
//! It travels as text (`<nonce>|<json>`) in a locked-down setting, because
//! PostgreSQL copies settings to parallel workers and copies no Rust state. The
//! nonce is unique per bind within a backend, so a cache keyed by it can never
//! serve one binding's values for another.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Active,
    Suspended,
    Retired,
    Revoked,
    Expired,
    /// The status could not be established (verify endpoint down, stale CRL):
    /// bound, but never admitted by an `= 'active'` policy.
    Unknown,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Active => "active",
            CertStatus::Suspended => "suspended",
            CertStatus::Retired => "retired",
            CertStatus::Revoked => "revoked",
            CertStatus::Expired => "expired",
            CertStatus::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "active" => CertStatus::Active,
            "suspended" => CertStatus::Suspended,
            "retired" => CertStatus::Retired,
            "revoked" => CertStatus::Revoked,
            "expired" => CertStatus::Expired,
            "unknown" => CertStatus::Unknown,
            _ => return None,
        })
    }
}

/// Status of a certificate at `now`: the registry's verdict (absent = active)
/// unless it is active and the certificate is past `notAfter`. A registry
/// verdict (revoked, suspended, retired) is never softened to `expired`.
/// The more severe of two statuses (revoked > retired > suspended > unknown >
/// expired > active), for combining what several sources say.
pub fn worst(a: CertStatus, b: CertStatus) -> CertStatus {
    fn rank(s: CertStatus) -> u8 {
        match s {
            CertStatus::Active => 0,
            CertStatus::Expired => 1,
            CertStatus::Unknown => 2,
            CertStatus::Suspended => 3,
            CertStatus::Retired => 4,
            CertStatus::Revoked => 5,
        }
    }
    if rank(a) >= rank(b) {
        a
    } else {
        b
    }
}

pub fn effective_status(registry: Option<CertStatus>, not_after: i64, now: i64) -> CertStatus {
    match registry {
        Some(status) if status != CertStatus::Active => status,
        _ if now >= not_after => CertStatus::Expired,
        _ => CertStatus::Active,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub agent_id: String,
    pub tenant_id: Option<String>,
    pub serial: String,
    pub not_after: i64,
    pub instruments: Vec<String>,
    pub venues: Vec<String>,
    pub scope: Value,
    /// SHA-256 of the leaf DER.
    pub fingerprint: String,
    /// `gateway` or `proof` for a certificate, `api_key` for an API key.
    pub method: String,
    /// The API key bound, if the identity came from one (then `serial` is empty).
    #[serde(default)]
    pub key_id: Option<String>,
    /// The API key's capabilities (empty for a certificate binding).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Hex of the certificate issuer's Name (DER), to follow its CRL's freshness.
    #[serde(default)]
    pub issuer: String,
    /// A status fixed at bind time by a source that is not re-read per
    /// statement (the online verify endpoint): never softened afterwards.
    #[serde(default)]
    pub bound_status: Option<String>,
}

impl Binding {
    pub fn encode(&self, nonce: &str) -> String {
        // Serialising plain strings and numbers cannot fail.
        format!(
            "{nonce}|{}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// Splits an encoded binding into its nonce and record; `None` for anything
    /// else (the empty default included).
    pub fn decode(text: &str) -> Option<(&str, Binding)> {
        let (nonce, json) = text.split_once('|')?;
        let binding = serde_json::from_str(json).ok()?;
        Some((nonce, binding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let b = Binding {
            agent_id: "a-1".into(),
            tenant_id: Some("t".into()),
            serial: "0a".into(),
            not_after: 10,
            instruments: vec!["AAPL".into()],
            venues: vec![],
            scope: serde_json::json!({"instruments": ["AAPL"]}),
            fingerprint: "ff".into(),
            method: "gateway".into(),
            key_id: None,
            capabilities: vec![],
            issuer: String::new(),
            bound_status: None,
        };
        let text = b.encode("42.1");
        assert_eq!(Binding::decode(&text), Some(("42.1", b)));
        assert_eq!(Binding::decode(""), None);
        assert_eq!(Binding::decode("x|{"), None);
    }

    #[test]
    fn registry_wins_over_expiry() {
        use CertStatus::*;
        assert_eq!(effective_status(None, 100, 99), Active);
        assert_eq!(effective_status(None, 100, 100), Expired);
        assert_eq!(effective_status(Some(Active), 100, 100), Expired);
        assert_eq!(effective_status(Some(Revoked), 100, 100), Revoked);
        assert_eq!(effective_status(Some(Suspended), 100, 1), Suspended);
    }

    #[test]
    fn status_names_round_trip() {
        for s in [
            "active",
            "suspended",
            "retired",
            "revoked",
            "expired",
            "unknown",
        ] {
            assert_eq!(CertStatus::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(CertStatus::parse("ACTIVE"), None);
    }
}
