//! The audit log's byte-level formats, shared by the extension and the offline
//! `verify-evidence` command:
//!
//! - the canonical encoding of an entry, whose RFC 6962 leaf hash the log
//!   stores (stable across versions: it starts with a format version);
//! - checkpoints as C2SP `tlog-checkpoint` signed notes, Ed25519-signed.

use base64::Engine;
use ring::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical_json;
use crate::merkle::{self, Hash};

/// One audit entry as stored, owned (export, offline verification).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    /// Microseconds since the Unix epoch (exact; no time-zone formatting).
    pub ts_micros: i64,
    pub tenant_id: Option<String>,
    pub actor_id: String,
    pub request_id: Option<String>,
    pub action: String,
    pub payload: Value,
}

impl Entry {
    /// Version 1 of the canonical bytes (see [`EntryRef::write_canonical`]).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let payload = self.payload.to_string();
        let mut out = Vec::new();
        // Cannot fail: the payload text was just printed by serde_json.
        let _ = self.as_ref(&payload).write_canonical(&mut out);
        out
    }

    pub fn leaf_hash(&self) -> Hash {
        merkle::leaf_hash(&self.canonical_bytes())
    }

    fn as_ref<'a>(&'a self, payload: &'a str) -> EntryRef<'a> {
        EntryRef {
            seq: self.seq,
            ts_micros: self.ts_micros,
            tenant_id: self.tenant_id.as_deref(),
            actor_id: &self.actor_id,
            request_id: self.request_id.as_deref(),
            action: &self.action,
            payload,
        }
    }
}

/// One audit entry borrowed from where it is stored, its payload as JSON text
/// (what the database hands over; verifying never builds a JSON value).
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub seq: u64,
    pub ts_micros: i64,
    pub tenant_id: Option<&'a str>,
    pub actor_id: &'a str,
    pub request_id: Option<&'a str>,
    pub action: &'a str,
    pub payload: &'a str,
}

impl EntryRef<'_> {
    /// Appends version 1 of the canonical bytes to `out`: the canonical JSON
    /// (see [`canonical_json`]) of
    /// `[1, seq, ts_micros, tenant_id, actor_id, request_id, action, payload]`.
    /// Fails only if the payload is not JSON.
    pub fn write_canonical(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        use std::io::Write;
        let text = |out: &mut Vec<u8>, s: Option<&str>| match s {
            Some(s) => serde_json::to_writer(out, s),
            None => {
                out.extend_from_slice(b"null");
                Ok(())
            }
        };
        write!(out, "[1,{},{},", self.seq, self.ts_micros).map_err(serde_json::Error::io)?;
        text(out, self.tenant_id)?;
        out.push(b',');
        text(out, Some(self.actor_id))?;
        out.push(b',');
        text(out, self.request_id)?;
        out.push(b',');
        text(out, Some(self.action))?;
        out.push(b',');
        canonical_json::write(self.payload, out)?;
        out.push(b']');
        Ok(())
    }

    /// An owned copy, its payload parsed.
    pub fn to_entry(&self) -> Result<Entry, serde_json::Error> {
        Ok(Entry {
            seq: self.seq,
            ts_micros: self.ts_micros,
            tenant_id: self.tenant_id.map(str::to_string),
            actor_id: self.actor_id.to_string(),
            request_id: self.request_id.map(str::to_string),
            action: self.action.to_string(),
            payload: serde_json::from_str(self.payload)?,
        })
    }

    /// The RFC 6962 leaf hash of the canonical bytes, built in `scratch`
    /// (cleared first) so a caller hashing many entries allocates once.
    pub fn leaf_hash(&self, scratch: &mut Vec<u8>) -> Result<Hash, serde_json::Error> {
        scratch.clear();
        self.write_canonical(scratch)?;
        Ok(merkle::leaf_hash(scratch))
    }
}

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint body of a C2SP tlog-checkpoint note (what is signed).
    pub fn body(&self) -> String {
        let root = base64::engine::general_purpose::STANDARD.encode(self.root);
        format!("{}\n{}\n{}\n", self.origin, self.tree_size, root)
    }

    /// The full signed note: body, blank line, one signature line
    /// `— <key name> <base64(key hash ‖ signature)>` (C2SP signed-note).
    pub fn note(&self, key_name: &str, public_key: &[u8], signature: &[u8]) -> String {
        let mut sig = key_hash(key_name, public_key).to_vec();
        sig.extend_from_slice(signature);
        format!(
            "{}\n\u{2014} {key_name} {}\n",
            self.body(),
            base64::engine::general_purpose::STANDARD.encode(sig)
        )
    }
}

/// C2SP signed-note key hash for an Ed25519 key: the first four bytes of
/// SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key).
pub fn key_hash(key_name: &str, public_key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(key_name.as_bytes());
    h.update(b"\n");
    h.update([0x01]);
    h.update(public_key);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A C2SP vkey string: `<name>+<hex key hash>+<base64(0x01 ‖ public key)>`.
pub fn verifier_key(key_name: &str, public_key: &[u8]) -> String {
    let mut material = vec![0x01];
    material.extend_from_slice(public_key);
    format!(
        "{key_name}+{}+{}",
        hex::encode(key_hash(key_name, public_key)),
        base64::engine::general_purpose::STANDARD.encode(material)
    )
}

/// A new Ed25519 private key seed from the operating system's CSPRNG.
pub fn generate_seed() -> Result<[u8; 32], String> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut seed = [0u8; 32];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| "no randomness available".to_string())?;
    Ok(seed)
}

/// Signs `message` with the Ed25519 key derived from `seed` (32 bytes).
pub fn sign(seed: &[u8], message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let pair =
        Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| "bad Ed25519 seed".to_string())?;
    Ok((
        pair.sign(message).as_ref().to_vec(),
        pair.public_key().as_ref().to_vec(),
    ))
}

/// The Ed25519 public key of `seed`.
pub fn public_key(seed: &[u8]) -> Result<Vec<u8>, String> {
    Ed25519KeyPair::from_seed_unchecked(seed)
        .map(|pair| pair.public_key().as_ref().to_vec())
        .map_err(|_| "bad Ed25519 seed".to_string())
}

pub fn verify_signature(public_key: &[u8], message: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(message, sig)
        .is_ok()
}

/// Parses a signed note and checks its signature line against `public_key`
/// under `key_name`; returns the checkpoint it commits to.
pub fn open_note(note: &str, key_name: &str, public_key: &[u8]) -> Result<Checkpoint, String> {
    let (body, signatures) = note
        .split_once("\n\n")
        .ok_or("note has no signature block")?;
    let body = format!("{body}\n");
    let mut lines = body.lines();
    let origin = lines.next().ok_or("note has no origin")?.to_string();
    let tree_size: u64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("note has no tree size")?;
    let root: Hash = lines
        .next()
        .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
        .and_then(|r| r.try_into().ok())
        .ok_or("note has no root hash")?;
    let expected_hash = key_hash(key_name, public_key);
    for line in signatures.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((name, sig_b64)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig_b64) else {
            continue;
        };
        if name == key_name && sig.len() == 68 && sig[..4] == expected_hash {
            if verify_signature(public_key, body.as_bytes(), &sig[4..]) {
                return Ok(Checkpoint {
                    origin,
                    tree_size,
                    root,
                });
            }
            return Err("the note's signature does not verify".into());
        }
    }
    Err(format!("the note carries no signature by {key_name}"))
}

/// Parses a C2SP verifier key into (name, Ed25519 public key), checking its
/// key hash.
pub fn parse_verifier_key(vkey: &str) -> Result<(String, Vec<u8>), String> {
    let mut parts = vkey.trim().splitn(3, '+');
    let (Some(name), Some(hash), Some(material)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("verifier key is not <name>+<hash>+<key>".into());
    };
    let material = base64::engine::general_purpose::STANDARD
        .decode(material)
        .map_err(|_| "verifier key material is not base64".to_string())?;
    let Some((&0x01, public)) = material.split_first() else {
        return Err("verifier key is not an Ed25519 key".into());
    };
    if public.len() != 32 || hex::encode(key_hash(name, public)) != hash {
        return Err("verifier key hash does not match its key".into());
    }
    Ok((name.to_string(), public.to_vec()))
}

/// What a verified evidence bundle proves.
#[derive(Debug, PartialEq, Eq)]
pub struct EvidenceSummary {
    pub key_name: String,
    pub tree_size: u64,
    pub root: Hash,
    pub entries: usize,
}

/// Verifies an evidence bundle from `kakunin.export_evidence` without trusting
/// the database: the checkpoint note's signature under the bundle's verifier
/// key, then each entry's leaf hash (recomputed from its fields) and inclusion
/// proof against the checkpoint's root. The first failure is the error.
/// [`verify_evidence`] over the bundle's text, which must first read one way
/// only: a key twice in any object (two readers could see two different
/// entries) refuses the bundle ([`canonical_json::check_unambiguous`]).
pub fn verify_evidence_text(text: &str) -> Result<EvidenceSummary, String> {
    canonical_json::check_unambiguous(text)
        .map_err(|e| format!("the bundle is ambiguous or not JSON: {e}"))?;
    let bundle: Value =
        serde_json::from_str(text).map_err(|e| format!("the bundle is not JSON: {e}"))?;
    verify_evidence(&bundle)
}

pub fn verify_evidence(bundle: &Value) -> Result<EvidenceSummary, String> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (name, public) =
        parse_verifier_key(&text(bundle, "verifier_key").ok_or("bundle has no verifier_key")?)?;
    let checkpoint = open_note(
        &text(bundle, "checkpoint").ok_or("bundle has no checkpoint")?,
        &name,
        &public,
    )?;
    let entries = bundle
        .get("entries")
        .and_then(Value::as_array)
        .ok_or("bundle has no entries")?;
    for item in entries {
        let seq = item
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or("an entry has no seq")?;
        let entry = Entry {
            seq,
            ts_micros: item
                .get("ts_micros")
                .and_then(Value::as_i64)
                .ok_or(format!("entry {seq}: no ts_micros"))?,
            tenant_id: text(item, "tenant_id"),
            actor_id: text(item, "actor_id").ok_or(format!("entry {seq}: no actor_id"))?,
            request_id: text(item, "request_id"),
            action: text(item, "action").ok_or(format!("entry {seq}: no action"))?,
            payload: item
                .get("payload")
                .cloned()
                .ok_or(format!("entry {seq}: no payload"))?,
        };
        let proof: Vec<Hash> = item
            .get("proof")
            .and_then(Value::as_array)
            .ok_or(format!("entry {seq}: no proof"))?
            .iter()
            .map(|h| {
                h.as_str()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|h| h.try_into().ok())
                    .ok_or(format!("entry {seq}: a proof hash is not 32 bytes of hex"))
            })
            .collect::<Result<_, _>>()?;
        merkle::verify_inclusion(
            seq,
            checkpoint.tree_size,
            &entry.leaf_hash(),
            &proof,
            &checkpoint.root,
        )
        .map_err(|e| format!("entry {seq} is not in the signed tree: {e}"))?;
    }
    Ok(EvidenceSummary {
        key_name: name,
        tree_size: checkpoint.tree_size,
        root: checkpoint.root,
        entries: entries.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            seq: 7,
            ts_micros: 1_800_000_000_123_456,
            tenant_id: Some("t".into()),
            actor_id: "agent-a".into(),
            request_id: None,
            action: "trade.placed".into(),
            payload: serde_json::from_str(
                r#"{"b": 1.50, "a": [true, null, "x\"y"], "n": 12345678901234567890}"#,
            )
            .unwrap(),
        }
    }

    #[test]
    fn canonical_bytes_are_stable() {
        assert_eq!(
            String::from_utf8(entry().canonical_bytes()).unwrap(),
            r#"[1,7,1800000000123456,"t","agent-a",null,"trade.placed",{"a":[true,null,"x\"y"],"b":1.50,"n":12345678901234567890}]"#
        );
    }

    #[test]
    fn key_order_and_whitespace_never_matter() {
        let mut other = entry();
        other.payload = serde_json::from_str(
            r#"{ "n":12345678901234567890 ,"a" : [ true , null , "x\"y" ], "b":1.50 }"#,
        )
        .unwrap();
        assert_eq!(other.leaf_hash(), entry().leaf_hash());
        other.payload["b"] = serde_json::from_str("1.5").unwrap();
        assert_ne!(
            other.leaf_hash(),
            entry().leaf_hash(),
            "1.5 and 1.50 are different texts"
        );
    }

    #[test]
    fn notes_sign_and_verify() {
        let seed = [7u8; 32];
        let cp = Checkpoint {
            origin: "kakunin/test".into(),
            tree_size: 3,
            root: [9u8; 32],
        };
        let (sig, public) = sign(&seed, cp.body().as_bytes()).unwrap();
        let note = cp.note("kakunin/test", &public, &sig);
        assert!(note.starts_with("kakunin/test\n3\nCQkJ"));
        assert_eq!(open_note(&note, "kakunin/test", &public).unwrap(), cp);
        let forged = note.replacen("\n3\n", "\n4\n", 1);
        assert!(open_note(&forged, "kakunin/test", &public).is_err());
        let other_key = public_key(&[8u8; 32]).unwrap();
        assert!(open_note(&note, "kakunin/test", &other_key).is_err());
        assert!(verifier_key("kakunin/test", &public).starts_with("kakunin/test+"));
    }

    #[test]
    fn evidence_bundles_verify_and_tampering_is_caught() {
        let seed = [3u8; 32];
        let entries: Vec<Entry> = (0..5).map(|seq| Entry { seq, ..entry() }).collect();
        let leaves: Vec<Hash> = entries.iter().map(Entry::leaf_hash).collect();
        let cp = Checkpoint {
            origin: "kakunin/db".into(),
            tree_size: 5,
            root: merkle::root(&leaves),
        };
        let (sig, public) = sign(&seed, cp.body().as_bytes()).unwrap();
        let items: Vec<Value> = entries
            .iter()
            .map(|e| {
                let proof = merkle::inclusion_proof(&leaves, e.seq, 5).unwrap();
                serde_json::json!({"seq": e.seq, "ts_micros": e.ts_micros, "tenant_id": e.tenant_id,
                    "actor_id": e.actor_id, "request_id": e.request_id, "action": e.action,
                    "payload": e.payload, "proof": proof.iter().map(hex::encode).collect::<Vec<_>>()})
            })
            .collect();
        let bundle = serde_json::json!({
            "verifier_key": verifier_key("kakunin/db", &public),
            "checkpoint": cp.note("kakunin/db", &public, &sig),
            "entries": items,
        });
        let summary = verify_evidence(&bundle).unwrap();
        assert_eq!((summary.tree_size, summary.entries), (5, 5));

        let mut tampered = bundle.clone();
        tampered["entries"][2]["action"] = Value::from("trade.cancelled");
        assert!(verify_evidence(&tampered)
            .unwrap_err()
            .starts_with("entry 2 is not in the signed tree"));
        let mut other_key = bundle.clone();
        other_key["verifier_key"] =
            Value::from(verifier_key("kakunin/db", &public_key(&[4u8; 32]).unwrap()));
        assert!(verify_evidence(&other_key).is_err());
        assert!(parse_verifier_key("x+00000000+AQ==").is_err());
    }
}
