//! The record a successful bind leaves for the rest of the transaction, and the
//! status rules the helpers apply to it.
//!
//! It travels as text (`<nonce>|<json>`) in a locked-down setting, because
//! PostgreSQL copies settings to parallel workers and copies no Rust state. The
//! nonce is unique per bind within a backend, so a cache keyed by it can never
//! serve one binding's values for another.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// Who is bound for the transaction, what they may touch, and the credential
/// that established it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub agent_id: String,
    pub tenant_id: Option<String>,
    pub instruments: Vec<String>,
    pub venues: Vec<String>,
    /// The whole financial scope (a certificate's) or claims (an API key's).
    pub scope: Value,
    pub credential: Credential,
    /// A status fixed at bind time by a source that is not re-read per
    /// statement (the online verify endpoint): never softened afterwards.
    pub fixed_status: Option<CertStatus>,
}

/// The credential a binding was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    /// An X.509 certificate validated in the database.
    Certificate {
        /// Lowercase hex.
        serial: String,
        /// Hex of the issuer's Name (DER), to follow its CRL's freshness.
        issuer: String,
        /// SHA-256 of the leaf DER, hex.
        fingerprint: String,
        /// notAfter, unix seconds.
        not_after: i64,
        /// Whether the caller proved possession of the key (else a
        /// `kakunin_gateway` member vouched for it).
        proven: bool,
    },
    /// A serial forwarded by a gateway that checked the certificate itself,
    /// vouched for by the CA's verify endpoint.
    Serial { serial: String },
    /// An API key.
    ApiKey {
        /// The key id (a UUID, hyphenated).
        key_id: String,
        capabilities: Vec<String>,
        /// Unix seconds; None: no expiry.
        expires_at: Option<i64>,
    },
}

impl Binding {
    /// How the identity was bound: `gateway` or `proof` (a certificate),
    /// `serial`, or `api_key`.
    pub fn method(&self) -> &'static str {
        match &self.credential {
            Credential::Certificate { proven: true, .. } => "proof",
            Credential::Certificate { proven: false, .. } => "gateway",
            Credential::Serial { .. } => "serial",
            Credential::ApiKey { .. } => "api_key",
        }
    }

    /// The certificate serial, for a certificate or serial binding.
    pub fn serial(&self) -> Option<&str> {
        match &self.credential {
            Credential::Certificate { serial, .. } | Credential::Serial { serial } => Some(serial),
            Credential::ApiKey { .. } => None,
        }
    }

    /// The API key id, for a key binding.
    pub fn key_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::ApiKey { key_id, .. } => Some(key_id),
            _ => None,
        }
    }

    /// The API key's capabilities (none for a certificate).
    pub fn capabilities(&self) -> &[String] {
        match &self.credential {
            Credential::ApiKey { capabilities, .. } => capabilities,
            _ => &[],
        }
    }

    /// When the credential stops being valid (unix seconds), if it says.
    pub fn expires_at(&self) -> Option<i64> {
        match &self.credential {
            Credential::Certificate { not_after, .. } => Some(*not_after),
            Credential::ApiKey { expires_at, .. } => *expires_at,
            Credential::Serial { .. } => None,
        }
    }
}

impl Binding {
    /// Splits an encoded binding into its nonce and record; `None` for anything
    /// else (the empty default included).
    pub fn decode(text: &str) -> Option<(&str, Binding)> {
        let (nonce, json) = text.split_once('|')?;
        let binding = serde_json::from_str(json).ok()?;
        Some((nonce, binding))
    }
}

/// A binding with its record (JSON), checked once to decode to itself: a
/// binding that did not would read differently in the processes that copy
/// the setting (parallel workers, restores), so it cannot be sealed (issue 14).
/// A sealed binding can be stored any number of times, each with a new nonce.
#[derive(Debug)]
pub struct Sealed {
    binding: Rc<Binding>,
    record: String,
}

impl Sealed {
    /// `None` when the binding does not survive its own encoding (for example
    /// a number JSON cannot carry exactly).
    pub fn new(binding: Binding) -> Option<Sealed> {
        // Serialising strings, numbers and JSON values cannot fail.
        let record = serde_json::to_string(&binding).ok()?;
        (serde_json::from_str::<Binding>(&record).ok()? == binding).then(|| Sealed {
            binding: Rc::new(binding),
            record,
        })
    }

    pub fn binding(&self) -> &Rc<Binding> {
        &self.binding
    }

    /// The setting's text: `<nonce>|<record>`, which [`Binding::decode`] reads.
    pub fn encode(&self, nonce: &str) -> String {
        let mut text = String::with_capacity(nonce.len() + 1 + self.record.len());
        text.push_str(nonce);
        text.push('|');
        text.push_str(&self.record);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let certificate = Binding {
            agent_id: "a-1".into(),
            tenant_id: Some("t".into()),
            instruments: vec!["AAPL".into()],
            venues: vec![],
            scope: serde_json::json!({"instruments": ["AAPL"]}),
            credential: Credential::Certificate {
                serial: "0a".into(),
                issuer: "3000".into(),
                fingerprint: "ff".into(),
                not_after: 10,
                proven: false,
            },
            fixed_status: Some(CertStatus::Unknown),
        };
        let key = Binding {
            credential: Credential::ApiKey {
                key_id: "k".into(),
                capabilities: vec!["read".into()],
                expires_at: None,
            },
            fixed_status: None,
            ..certificate.clone()
        };
        let serial = Binding {
            credential: Credential::Serial {
                serial: "0b".into(),
            },
            ..certificate.clone()
        };
        for (b, method) in [
            (certificate, "gateway"),
            (key, "api_key"),
            (serial, "serial"),
        ] {
            assert_eq!(b.method(), method);
            let sealed = Sealed::new(b.clone()).expect("plain values seal");
            assert_eq!(sealed.binding().as_ref(), &b);
            let text = sealed.encode("42.1");
            assert_eq!(Binding::decode(&text), Some(("42.1", b)));
        }
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
