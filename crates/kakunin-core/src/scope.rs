//! The financial scope an agent certificate carries: which instruments and venues
//! it may trade and the limits that apply.
//!
//! It is the value of a non-critical extension (OID [`SCOPE_EXTENSION_OID`]) whose
//! content is a DER UTF8String holding JSON:
//! `{"instruments": [...], "venues": [...], "limits": {...}}`.

use serde_json::{Map, Value};

/// `2.25.<uuid as integer>`: an OID anyone may mint without registration (X.667).
pub const SCOPE_EXTENSION_OID: &str = "2.25.73486407453457443519485037193576502481";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FinancialScope {
    pub instruments: Vec<String>,
    pub venues: Vec<String>,
    /// The whole JSON object as the issuer wrote it, limits and any extra keys included.
    pub document: Map<String, Value>,
}

impl FinancialScope {
    /// Reads and type-checks the JSON held by the extension. Unknown keys are kept
    /// (the issuer may add fields) but the three known ones must have the right type.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("scope is not valid JSON: {e}"))?;
        let Value::Object(document) = value else {
            return Err("scope must be a JSON object".into());
        };
        let instruments = string_list(&document, "instruments")?;
        let venues = string_list(&document, "venues")?;
        match document.get("limits") {
            None | Some(Value::Object(_)) => {}
            Some(_) => return Err("scope field \"limits\" must be an object".into()),
        }
        Ok(FinancialScope {
            instruments,
            venues,
            document,
        })
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.document.clone())
    }
}

fn string_list(document: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match document.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(format!("scope field \"{key}\" must hold only strings")),
            })
            .collect(),
        Some(_) => Err(format!("scope field \"{key}\" must be an array of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scope_is_read() {
        let s = FinancialScope::from_json(
            r#"{"instruments":["AAPL","MSFT"],"venues":["XNAS"],"limits":{"max_notional":1000}}"#,
        )
        .unwrap();
        assert_eq!(s.instruments, ["AAPL", "MSFT"]);
        assert_eq!(s.venues, ["XNAS"]);
        assert_eq!(s.to_json()["limits"]["max_notional"], 1000);
    }

    #[test]
    fn missing_fields_mean_empty() {
        let s = FinancialScope::from_json("{}").unwrap();
        assert!(s.instruments.is_empty() && s.venues.is_empty());
    }

    #[test]
    fn wrong_types_are_refused() {
        for bad in [
            "[]",
            "not json",
            r#"{"instruments":"AAPL"}"#,
            r#"{"instruments":[1]}"#,
            r#"{"venues":{}}"#,
            r#"{"limits":[]}"#,
        ] {
            assert!(FinancialScope::from_json(bad).is_err(), "{bad}");
        }
    }
}
