//! Verifying a whole audit log: entries are fed in position order; each one's
//! leaf hash is recomputed from its content and compared with the stored one,
//! the tree is rebuilt, and every checkpoint is checked (root and signature)
//! when the rebuilt tree reaches its size. The first failure is reported.

use sha2::{Digest, Sha256};

use crate::audit::{verify_signature, Checkpoint, EntryRef};
use crate::merkle::Frontier;

/// A digest of one level of interior nodes, in index order: rebuilt from the
/// entries on one side, read from the stored tree on the other, so that every
/// stored node is checked with memory that does not grow with the log.
#[derive(Clone, Default)]
pub struct LevelDigest {
    hasher: Sha256,
    /// Nodes fed so far; the next one must have this index.
    pub count: u64,
}

/// Digests of every level (index 0 is level 1) of a tree's interior nodes.
#[derive(Clone, Default)]
pub struct NodeDigests(Vec<LevelDigest>);

impl NodeDigests {
    /// Feeds node (`level` >= 1, `idx`); `Err` if it is not the next index of
    /// its level (a duplicated or missing node).
    pub fn push(&mut self, level: u32, idx: u64, hash: &[u8]) -> Result<(), String> {
        let Some(slot) = (level as usize).checked_sub(1) else {
            return Err(format!("stored tree node at level {level} cannot exist"));
        };
        if self.0.len() <= slot {
            self.0.resize_with(slot + 1, LevelDigest::default);
        }
        let digest = &mut self.0[slot];
        if idx != digest.count {
            return Err(format!(
                "stored tree node (level {level}, index {}) is missing",
                digest.count.min(idx)
            ));
        }
        digest.hasher.update(hash);
        digest.count += 1;
        Ok(())
    }

    /// `Err` naming the first level where `stored` differs from `self`.
    pub fn compare(&self, stored: &NodeDigests) -> Result<(), String> {
        for level in 0..self.0.len().max(stored.0.len()) {
            let (ours, theirs) = (self.0.get(level), stored.0.get(level));
            let count = |d: Option<&LevelDigest>| d.map_or(0, |d| d.count);
            let digest = |d: Option<&LevelDigest>| d.map(|d| d.hasher.clone().finalize());
            if count(ours) != count(theirs) || digest(ours) != digest(theirs) {
                return Err(format!(
                    "stored tree nodes at level {} no longer match the entries",
                    level + 1
                ));
            }
        }
        Ok(())
    }
}

/// A stored checkpoint, as read back (nothing about it is trusted).
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Entries verified before it.
    pub entries: u64,
    pub first_bad_seq: u64,
    pub reason: String,
}

pub struct LogVerifier {
    frontier: Frontier,
    /// Sorted by tree size.
    checkpoints: Vec<StoredCheckpoint>,
    next_checkpoint: usize,
    /// The log's Ed25519 public key and key name (the note origin), if any.
    key: Option<(Vec<u8>, String)>,
    scratch: Vec<u8>,
    nodes: NodeDigests,
}

impl LogVerifier {
    /// `checkpoints` in any order; `key` as (public key, key name).
    pub fn new(mut checkpoints: Vec<StoredCheckpoint>, key: Option<(Vec<u8>, String)>) -> Self {
        checkpoints.sort_by_key(|c| c.tree_size);
        LogVerifier {
            frontier: Frontier::new(),
            checkpoints,
            next_checkpoint: 0,
            key,
            scratch: Vec::new(),
            nodes: NodeDigests::default(),
        }
    }

    pub fn entries(&self) -> u64 {
        self.frontier.size()
    }

    /// Checks the next entry, which must sit at position `entries()`.
    pub fn push(&mut self, entry: &EntryRef, stored_leaf: Option<&[u8]>) -> Result<(), Failure> {
        self.check_checkpoints()?;
        let expected = self.frontier.size();
        if entry.seq != expected {
            let (bad, why) = if entry.seq < expected {
                (entry.seq, "duplicated")
            } else {
                (expected, "missing")
            };
            return Err(self.failure(bad, format!("seq {bad} is {why}")));
        }
        let leaf = match entry.leaf_hash(&mut self.scratch) {
            Ok(leaf) => leaf,
            Err(e) => {
                return Err(self.failure(
                    expected,
                    format!("entry {expected} cannot be verified: its payload is refused ({e})"),
                ))
            }
        };
        if Some(leaf.as_slice()) != stored_leaf {
            return Err(self.failure(
                expected,
                format!("entry {expected} no longer matches its leaf hash"),
            ));
        }
        for (level, idx, node) in self.frontier.push_completing(leaf) {
            // Nodes of one level complete in index order: this cannot fail.
            let _ = self.nodes.push(level, idx, &node);
        }
        Ok(())
    }

    /// After the last entry: every checkpoint must have been reached. Returns
    /// the number of entries and the digests of the interior nodes they imply
    /// (to compare with the stored tree, [`NodeDigests::compare`]).
    pub fn finish(mut self) -> Result<(u64, NodeDigests), Failure> {
        self.check_checkpoints()?;
        if let Some(checkpoint) = self.checkpoints.get(self.next_checkpoint) {
            let bad = self.frontier.size();
            let size = checkpoint.tree_size;
            return Err(self.failure(
                bad,
                format!("checkpoint at tree size {size} covers entries that are missing"),
            ));
        }
        Ok((self.frontier.size(), std::mem::take(&mut self.nodes)))
    }

    /// Checks every checkpoint whose size the rebuilt tree has reached.
    fn check_checkpoints(&mut self) -> Result<(), Failure> {
        while let Some(checkpoint) = self.checkpoints.get(self.next_checkpoint) {
            let size = checkpoint.tree_size;
            if size != self.frontier.size() {
                return Ok(());
            }
            let root = self.frontier.root();
            let bad = size.saturating_sub(1);
            if root.as_slice() != checkpoint.root_hash.as_slice() {
                return Err(self.failure(
                    bad,
                    format!("checkpoint at tree size {size} no longer matches the entries"),
                ));
            }
            let signed = self.key.as_ref().is_some_and(|(public, name)| {
                let body = Checkpoint {
                    origin: name.clone(),
                    tree_size: size,
                    root,
                }
                .body();
                verify_signature(public, body.as_bytes(), &checkpoint.signature)
            });
            if !signed {
                return Err(self.failure(
                    bad,
                    format!("checkpoint at tree size {size} has an invalid signature"),
                ));
            }
            self.next_checkpoint += 1;
        }
        Ok(())
    }

    fn failure(&self, first_bad_seq: u64, reason: String) -> Failure {
        Failure {
            entries: self.frontier.size(),
            first_bad_seq,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::sign;
    use crate::merkle::{self, Hash};

    const PAYLOADS: [&str; 5] = ["{}", r#"{"a": 1}"#, "[1, 2]", r#"{"b": "x"}"#, "7"];

    fn entry(seq: u64) -> EntryRef<'static> {
        EntryRef {
            seq,
            ts_micros: 1_800_000_000_000_000 + seq as i64,
            tenant_id: Some("t"),
            actor_id: "agent-a",
            request_id: None,
            action: "act",
            payload: PAYLOADS[seq as usize % PAYLOADS.len()],
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|s| entry(s).leaf_hash(&mut Vec::new()).unwrap())
            .collect()
    }

    fn signed_checkpoint(seed: &[u8; 32], leaves: &[Hash]) -> StoredCheckpoint {
        let root = merkle::root(leaves);
        let body = Checkpoint {
            origin: "kakunin/test".into(),
            tree_size: leaves.len() as u64,
            root,
        }
        .body();
        StoredCheckpoint {
            tree_size: leaves.len() as u64,
            root_hash: root.to_vec(),
            signature: sign(seed, body.as_bytes()).unwrap().0,
        }
    }

    /// Runs a verifier over `rows` (entries with their stored leaves).
    fn run(
        rows: &[(EntryRef, Hash)],
        checkpoints: Vec<StoredCheckpoint>,
        seed: &[u8; 32],
    ) -> Result<u64, Failure> {
        let key = (
            crate::audit::public_key(seed).unwrap(),
            "kakunin/test".to_string(),
        );
        let mut verifier = LogVerifier::new(checkpoints, Some(key));
        for (entry, leaf) in rows {
            verifier.push(entry, Some(leaf))?;
        }
        verifier.finish().map(|(entries, _)| entries)
    }

    #[test]
    fn every_stored_tree_node_is_checked() {
        let all = leaves(13);
        let mut verifier = LogVerifier::new(Vec::new(), None);
        for (seq, leaf) in all.iter().enumerate() {
            verifier.push(&entry(seq as u64), Some(leaf)).unwrap();
        }
        let (_, implied) = verifier.finish().unwrap();
        // What the sequencer stores: every node as it completes, read back by (level, idx).
        let mut frontier = Frontier::new();
        let mut nodes: Vec<(u32, u64, Hash)> = all
            .iter()
            .flat_map(|l| frontier.push_completing(*l))
            .collect();
        nodes.sort();
        let stored = |nodes: &[(u32, u64, Hash)]| {
            let mut digests = NodeDigests::default();
            nodes
                .iter()
                .try_for_each(|(level, idx, h)| digests.push(*level, *idx, h))
                .map(|_| digests)
        };
        assert_eq!(implied.compare(&stored(&nodes).unwrap()), Ok(()));
        let mut forged = nodes.clone();
        forged[3].2[0] ^= 1;
        assert_eq!(
            implied.compare(&stored(&forged).unwrap()),
            Err(format!(
                "stored tree nodes at level {} no longer match the entries",
                forged[3].0
            ))
        );
        let mut missing = nodes.clone();
        missing.remove(2);
        assert!(stored(&missing)
            .err()
            .is_some_and(|e| e.contains("is missing")));
        let mut extra = nodes.clone();
        extra.pop();
        assert!(implied.compare(&stored(&extra).unwrap()).is_err());
    }

    #[test]
    fn an_honest_log_verifies_and_each_kind_of_tampering_is_pinpointed() {
        let seed = [5u8; 32];
        let all = leaves(10);
        let rows: Vec<(EntryRef, Hash)> = (0..10).map(|s| (entry(s), all[s as usize])).collect();
        let checkpoints = || {
            vec![
                signed_checkpoint(&seed, &all[..7]),
                signed_checkpoint(&seed, &all[..3]),
            ]
        };
        assert_eq!(run(&rows, checkpoints(), &seed), Ok(10));

        let mut edited = rows.clone();
        edited[4].0.action = "other";
        let failure = run(&edited, checkpoints(), &seed).unwrap_err();
        assert_eq!((failure.first_bad_seq, failure.entries), (4, 4));
        assert_eq!(failure.reason, "entry 4 no longer matches its leaf hash");

        let mut missing = rows.clone();
        missing.remove(5);
        assert_eq!(
            run(&missing, checkpoints(), &seed).unwrap_err().reason,
            "seq 5 is missing"
        );
        let mut duplicated = rows.clone();
        duplicated.insert(6, rows[5]);
        assert_eq!(
            run(&duplicated, checkpoints(), &seed).unwrap_err().reason,
            "seq 5 is duplicated"
        );

        // Content and leaf rewritten together: the checkpoint above catches it.
        let mut rewritten = rows.clone();
        rewritten[1].0.action = "other";
        rewritten[1].1 = rewritten[1].0.leaf_hash(&mut Vec::new()).unwrap();
        let failure = run(&rewritten, checkpoints(), &seed).unwrap_err();
        assert_eq!(
            failure.reason,
            "checkpoint at tree size 3 no longer matches the entries"
        );
        assert_eq!(failure.first_bad_seq, 2);

        let mut forged = checkpoints();
        forged[0].signature[0] ^= 1;
        assert_eq!(
            run(&rows, forged, &seed).unwrap_err().reason,
            "checkpoint at tree size 7 has an invalid signature"
        );
        assert!(
            run(&rows, checkpoints(), &[6u8; 32]).is_err(),
            "another key signed nothing here"
        );

        assert_eq!(
            run(&rows[..5], checkpoints(), &seed).unwrap_err().reason,
            "checkpoint at tree size 7 covers entries that are missing"
        );
    }

    #[test]
    fn an_empty_log_verifies_only_without_checkpoints_beyond_it() {
        let seed = [5u8; 32];
        assert_eq!(run(&[], vec![], &seed), Ok(0));
        assert!(run(&[], vec![signed_checkpoint(&seed, &leaves(1))], &seed).is_err());
    }
}
