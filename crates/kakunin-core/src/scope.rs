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

/// Gives `child` every limit of `parent` it does not set itself: a derived key
/// that names no limit is bound by its parent's, never unlimited.
pub fn inherit_limits(child: &mut Map<String, Value>, parent: &Map<String, Value>) {
    let Some(Value::Object(parent_limits)) = parent.get("limits") else {
        return;
    };
    let limits = child
        .entry("limits")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(limits) = limits {
        for (name, cap) in parent_limits {
            limits.entry(name.clone()).or_insert_with(|| cap.clone());
        }
    }
}

/// Checks that `child` (the claims of a key being derived) asks for nothing
/// `parent` (the deriving credential's scope or claims) does not grant:
/// `instruments` and `venues` are subsets (absent = none); every limit the
/// parent sets is set by the child to a number no greater (a limit the parent
/// lacks may be added: it only restricts); any other claim the child carries
/// has exactly the parent's value. `Err` names the first claim that widens.
pub fn narrows(child: &Map<String, Value>, parent: &Map<String, Value>) -> Result<(), String> {
    for key in ["instruments", "venues"] {
        let own = string_list(parent, key)?;
        if let Some(extra) = string_list(child, key)?
            .into_iter()
            .find(|i| !own.contains(i))
        {
            return Err(format!(
                "\"{extra}\" is not in the deriving credential's {key}"
            ));
        }
    }
    let no_limits = Map::new();
    let limits = |m: &Map<String, Value>| -> Result<Map<String, Value>, String> {
        match m.get("limits") {
            None => Ok(no_limits.clone()),
            Some(Value::Object(l)) => Ok(l.clone()),
            Some(_) => Err("scope field \"limits\" must be an object".into()),
        }
    };
    let (child_limits, parent_limits) = (limits(child)?, limits(parent)?);
    for (name, cap) in &parent_limits {
        let narrower = match (child_limits.get(name), cap) {
            (Some(Value::Number(c)), Value::Number(p)) => {
                decimal_cmp(&c.to_string(), &p.to_string()).is_some_and(|o| o.is_le())
            }
            (Some(c), p) => c == p,
            (None, _) => false,
        };
        if !narrower {
            return Err(format!(
                "limit \"{name}\" must be at most the deriving credential's ({cap})"
            ));
        }
    }
    for (key, value) in child {
        if !matches!(key.as_str(), "instruments" | "venues" | "limits")
            && parent.get(key) != Some(value)
        {
            return Err(format!(
                "claim \"{key}\" differs from the deriving credential's"
            ));
        }
    }
    Ok(())
}

/// Compares two JSON numbers exactly, as the decimals their text denotes
/// (`1000000.00000000005` is more than `1000000`, which floating point would
/// not tell); None if either is not a JSON number.
pub fn decimal_cmp(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    /// (negative, significant digits without leading or trailing zeros,
    /// position of the first of them: the value is 0.DIGITS x 10^position).
    fn parse(text: &str) -> Option<(bool, String, i64)> {
        let (negative, text) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(i) => (&text[..i], text[i + 1..].parse::<i64>().ok()?),
            None => (text, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = format!("{int}{frac}");
        let leading = digits.len() - digits.trim_start_matches('0').len();
        let significant = digits
            .trim_start_matches('0')
            .trim_end_matches('0')
            .to_string();
        let position = int.len() as i64 - leading as i64 + exponent;
        Some((negative && !significant.is_empty(), significant, position))
    }
    let (an, ad, ap) = parse(a)?;
    let (bn, bd, bp) = parse(b)?;
    let magnitude = |d: &str, p: i64, e: &str, q: i64| -> Ordering {
        match (d.is_empty(), e.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ => p.cmp(&q).then_with(|| d.cmp(e)),
        }
    };
    Some(match (an, bn) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => magnitude(&ad, ap, &bd, bp),
        (true, true) => magnitude(&bd, bp, &ad, ap),
    })
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

    fn object(text: &str) -> Map<String, Value> {
        FinancialScope::from_json(text).unwrap().document
    }

    #[test]
    fn derived_claims_may_only_narrow() {
        let parent = object(
            r#"{"instruments":["AAPL","MSFT"],"venues":["XNAS"],"limits":{"max_notional":1000},"team":"risk"}"#,
        );
        for ok in [
            r#"{"limits":{"max_notional":1000}}"#,
            r#"{"instruments":["AAPL"],"limits":{"max_notional":1000}}"#,
            r#"{"venues":["XNAS"],"limits":{"max_notional":10,"max_orders":3},"team":"risk"}"#,
        ] {
            assert_eq!(narrows(&object(ok), &parent), Ok(()), "{ok}");
        }
        // Without the parent's limit the child would be unlimited: wider, unless
        // it inherits the limit.
        assert!(narrows(&object("{}"), &parent).is_err());
        let mut child = object(r#"{"instruments":["AAPL"],"limits":{"max_orders":3}}"#);
        inherit_limits(&mut child, &parent);
        assert_eq!(child["limits"]["max_notional"], 1000);
        assert_eq!(child["limits"]["max_orders"], 3);
        assert_eq!(narrows(&child, &parent), Ok(()));
        for wide in [
            r#"{"instruments":["TSLA"],"limits":{"max_notional":1}}"#,
            r#"{"venues":["XNYS"],"limits":{"max_notional":1}}"#,
            r#"{"limits":{"max_notional":1001}}"#,
            r#"{"limits":{"max_notional":"1"}}"#,
            r#"{"limits":{"max_notional":1},"team":"ops"}"#,
            r#"{"limits":{"max_notional":1},"admin":true}"#,
        ] {
            assert!(narrows(&object(wide), &parent).is_err(), "{wide}");
        }
        // A parent with no scope at all grants no instruments or venues.
        assert!(narrows(&object(r#"{"instruments":["AAPL"]}"#), &Map::new()).is_err());
        assert!(narrows(&object(r#"{"limits":{"max_notional":5}}"#), &Map::new()).is_ok());
    }

    #[test]
    fn numbers_compare_exactly() {
        use std::cmp::Ordering::*;
        for (a, b, o) in [
            ("1000000.00000000005", "1000000", Greater),
            ("1000000", "1000000.000", Equal),
            ("1e6", "1000000", Equal),
            ("999999.9999999999999", "1e6", Less),
            ("-5", "3", Less),
            ("-0", "0", Equal),
            ("-10", "-9.5", Less),
            ("0.001", "0.01", Less),
            (
                "12345678901234567890123",
                "12345678901234567890122",
                Greater,
            ),
        ] {
            assert_eq!(decimal_cmp(a, b), Some(o), "{a} vs {b}");
        }
        assert_eq!(decimal_cmp("x", "1"), None);
        let parent = object(r#"{"limits":{"max_notional":1000000}}"#);
        let wider = object(r#"{"limits":{"max_notional":1000000.00000000005}}"#);
        assert!(
            narrows(&wider, &parent).is_err(),
            "floating point would let this through"
        );
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
