//! Canonical JSON, written straight from JSON text: object keys sorted by
//! their UTF-8 bytes (the last of duplicate keys wins), no whitespace, strings
//! escaped as serde_json escapes them, numbers in their exact text (an
//! exponent is written `e` with an explicit sign, as serde_json's
//! arbitrary-precision numbers print it).
//!
//! It is the same function as `canonical_json(&serde_json::Value)` over the
//! parsed value (the tests check them against each other), without building
//! that value: serde_json borrows every member as raw text and most strings and
//! numbers are copied as they are. Verifying the audit log runs this once per
//! entry, so allocation here is what bounds entries per second.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};
use serde_json::value::RawValue;

/// An object key, borrowed from the input unless it had escapes.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// How deeply arrays and objects may nest in an audit payload. The database
/// refuses deeper payloads when they are written (`kakunin.audit_guard`), and
/// [`write`] refuses them before recursing, so no input can exhaust a stack.
pub const MAX_DEPTH: usize = 64;

/// The deepest nesting of arrays and objects in `json`, counted without
/// recursion (strings are skipped, escapes included). Meaningful for valid JSON.
pub fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Refuses JSON text that readers could take in more than one way: an object
/// with the same key twice (one reader keeps the first value, another the
/// last). Nesting is bounded by serde_json's recursion limit (128).
pub fn check_unambiguous(json: &str) -> Result<(), String> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Unique;
    impl<'de> DeserializeSeed<'de> for Unique {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<Key>()? {
                if !seen.insert(key.0.clone().into_owned()) {
                    return Err(serde::de::Error::custom(format!(
                        "the key \"{}\" appears twice in one object",
                        key.0
                    )));
                }
                map.next_value_seed(Unique)?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Unique)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            // serde_json's arbitrary-precision numbers arrive as a one-entry map.
            IgnoredAny::deserialize(d).map(|_| ())
        }
    }
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(json);
    Unique.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())
}

/// Appends the canonical form of the JSON text `json` to `out`. Refuses JSON
/// nested deeper than [`MAX_DEPTH`].
pub fn write(json: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let depth = nesting_depth(json);
    if depth > MAX_DEPTH {
        return Err(<serde_json::Error as serde::de::Error>::custom(format!(
            "JSON nested {depth} levels deep (at most {MAX_DEPTH})"
        )));
    }
    let raw: &RawValue = serde_json::from_str(json)?;
    write_raw(raw, out)
}

fn write_raw(raw: &RawValue, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    // A RawValue's text is trimmed: its first byte says what it is.
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => {
            let members: BTreeMap<Key, &RawValue> = serde_json::from_str(text)?;
            out.push(b'{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key.0.as_ref())?;
                out.push(b':');
                write_raw(value, out)?;
            }
            out.push(b'}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_raw(item, out)?;
            }
            out.push(b']');
        }
        // Without escapes a string's text is already serde_json's output.
        Some(b'"') if !text.contains('\\') => out.extend_from_slice(text.as_bytes()),
        Some(b'"') => {
            let s: String = serde_json::from_str(text)?;
            serde_json::to_writer(&mut *out, &s)?;
        }
        Some(b'-' | b'0'..=b'9') if text.contains(['e', 'E']) => {
            let n: serde_json::Number = serde_json::from_str(text)?;
            out.extend_from_slice(n.to_string().as_bytes());
        }
        // Other numbers, true, false, null: their text is canonical.
        _ => out.extend_from_slice(text.as_bytes()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// The definition, over a parsed value: what `write` must equal.
    fn reference(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let fields: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{}:{}", Value::String((*k).clone()), reference(&map[*k])))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Array(items) => format!(
                "[{}]",
                items.iter().map(reference).collect::<Vec<_>>().join(",")
            ),
            other => other.to_string(),
        }
    }

    fn canonical(json: &str) -> String {
        let mut out = Vec::new();
        super::write(json, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn agrees(json: &str) {
        let value: Value = serde_json::from_str(json).unwrap();
        assert_eq!(canonical(json), reference(&value), "input: {json}");
    }

    #[test]
    fn matches_the_definition_on_tricky_inputs() {
        for json in [
            r#"{"b": 1.50, "a": [true, null, "x\"y"], "n": 12345678901234567890}"#,
            r#" { "\n": 1, "A": 2, "\u0041b": 3, "é": 4, "z": {"y": [], "x": {}} } "#,
            r#"{"k": 1, "k": 2}"#,
            r#"["\u001f\b\t\/", "tab\\tless", "\ud83d\ude00", "ünï"]"#,
            r#"[-0, 0, -0.0, 1E5, 1e-5, 2.5E+3, -1.0e0, 18446744073709551616, -9223372036854775809]"#,
            r#""just a string""#,
            "123",
            "null",
        ] {
            agrees(json);
        }
        assert_eq!(canonical(r#"{"b": 1, "a": 2}"#), r#"{"a":2,"b":1}"#);
    }

    #[test]
    fn matches_the_definition_on_many_generated_inputs() {
        // A small deterministic generator: nested objects and arrays of
        // strings with escapes, numbers in every form, and literals.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        fn gen(next: &mut impl FnMut(u64) -> u64, depth: u32) -> String {
            let atoms = [
                "0",
                "-1",
                "3.14159",
                "1e3",
                "-2E-2",
                "1.50",
                "true",
                "false",
                "null",
                r#""a""#,
                r#""\"q\"""#,
                r#""\\""#,
                r#""é\n""#,
                r#""Ab""#,
                r#""aB""#,
                r#""\u00e9""#,
            ];
            match if depth > 3 { 2 } else { next(4) } {
                0 => {
                    let members: Vec<String> = (0..next(5))
                        .map(|_| {
                            let key = atoms[9 + next(7) as usize];
                            format!("{key} : {}", gen(next, depth + 1))
                        })
                        .collect();
                    format!("{{ {} }}", members.join(" , "))
                }
                1 => {
                    let items: Vec<String> = (0..next(4)).map(|_| gen(next, depth + 1)).collect();
                    format!("[{}]", items.join(", "))
                }
                _ => atoms[next(atoms.len() as u64) as usize].to_string(),
            }
        }
        for _ in 0..5_000 {
            agrees(&gen(&mut next, 0));
        }
    }

    #[test]
    fn ambiguous_json_is_refused() {
        use super::check_unambiguous;
        assert_eq!(
            check_unambiguous(r#"{"a":1,"b":[{"a":2}],"n":123456789012345678901234567890.5}"#),
            Ok(())
        );
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":[{"k":1,"k":1}]}"#,
            r#"{"a":1} {"#,
            "not json",
        ] {
            assert!(check_unambiguous(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_deep_nesting_without_recursing() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(super::nesting_depth(&deep(64)), 64);
        assert_eq!(super::nesting_depth(r#"{"a":"[[[[\"{{"}"#), 1);
        assert_eq!(canonical(&deep(64)), deep(64));
        let mut out = Vec::new();
        for n in [65, 10_000, 1_000_000] {
            let err = super::write(&deep(n), &mut out).unwrap_err().to_string();
            assert!(err.contains("at most 64"), "{err}");
        }
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in ["", "{", r#"{"a" 1}"#, "[1,]", "01", r#""\x""#, "nul"] {
            assert!(super::write(bad, &mut Vec::new()).is_err(), "{bad}");
        }
    }
}
