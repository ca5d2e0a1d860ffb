//! Merkle tree hashing and proofs of RFC 6962 §2.1 (same tree as RFC 9162 §2.1).
//!
//! Leaves are given already hashed with [`leaf_hash`]; sizes and indices are
//! `u64` as in the RFCs. Proofs are ordered from the leaf level up, as logs
//! serve them. Proof generation reads leaves through a callback so it works
//! over stored logs ([`inclusion_proof_with`], [`consistency_proof_with`]); the
//! slice forms are conveniences over those.

use sha2::{Digest, Sha256};

/// A SHA-256 tree node or leaf hash.
pub type Hash = [u8; 32];

/// Why a Merkle computation or proof check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerkleError {
    /// The leaf index is not below the tree size.
    IndexOutOfRange { index: u64, size: u64 },
    /// A tree size is larger than the number of leaves supplied.
    SizeExceedsLeaves { size: u64, leaves: u64 },
    /// Consistency needs `0 < old <= new`.
    BadSizes { old: u64, new: u64 },
    /// A leaf range with `start > end`.
    BadRange { start: u64, end: u64 },
    /// The proof has the wrong number of hashes for the given index and sizes.
    WrongProofLength { expected: usize, actual: usize },
    /// The proof does not lead to the expected (new) root.
    RootMismatch,
    /// A consistency proof does not lead back to the old root.
    OldRootMismatch,
}

impl std::fmt::Display for MerkleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MerkleError::IndexOutOfRange { index, size } => {
                write!(f, "leaf index {index} is out of range for tree size {size}")
            }
            MerkleError::SizeExceedsLeaves { size, leaves } => {
                write!(f, "tree size {size} exceeds the {leaves} leaves available")
            }
            MerkleError::BadSizes { old, new } => write!(
                f,
                "consistency needs 0 < old size <= new size, got old {old} and new {new}"
            ),
            MerkleError::BadRange { start, end } => {
                write!(f, "leaf range start {start} is after its end {end}")
            }
            MerkleError::WrongProofLength { expected, actual } => {
                write!(f, "proof has {actual} hashes, expected {expected}")
            }
            MerkleError::RootMismatch => write!(f, "proof does not match the tree root"),
            MerkleError::OldRootMismatch => {
                write!(f, "consistency proof does not match the old tree root")
            }
        }
    }
}

impl std::error::Error for MerkleError {}

/// SHA-256(0x00 || data): the hash of one log entry.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// SHA-256(0x01 || left || right): the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// Root of the tree over `leaves` (already leaf-hashed), RFC 6962 §2.1 MTH
/// (largest power of two smaller than n split).
pub fn root(leaves: &[Hash]) -> Hash {
    let mut frontier = Frontier::new();
    for leaf in leaves {
        frontier.push(*leaf);
    }
    frontier.root()
}

/// Incremental tree over leaves appended in order, keeping only O(log n)
/// hashes (the right border / frontier).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees the tree splits into, one per set bit of
    /// `size`, largest (leftmost) first.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the next leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        // Each trailing one bit of the old size is a perfect subtree of the
        // same height as the carry, so it merges, like binary addition.
        let merges = self.size.trailing_ones() as usize;
        let keep = self.hashes.len() - merges;
        let mut carry = leaf;
        for left in self.hashes.drain(keep..).rev() {
            carry = node_hash(&left, &carry);
        }
        self.hashes.push(carry);
        self.size += 1;
    }

    /// Appends the next leaf hash and returns the perfect subtrees it completed
    /// above the leaf level, as `(level, index, hash)`: the node covering
    /// leaves `[index << level, (index + 1) << level)`. Storing them is what
    /// makes proofs over a stored log O(log² n) (see [`mth_from_nodes`]).
    pub fn push_completing(&mut self, leaf: Hash) -> Vec<(u32, u64, Hash)> {
        let merges = self.size.trailing_ones();
        let keep = self.hashes.len() - merges as usize;
        let mut carry = leaf;
        let mut completed = Vec::with_capacity(merges as usize);
        for (level, left) in (1..=merges).zip(self.hashes.drain(keep..).rev()) {
            carry = node_hash(&left, &carry);
            completed.push((level, (self.size + 1) / (1 << level) - 1, carry));
        }
        self.hashes.push(carry);
        self.size += 1;
        completed
    }

    /// The frontier of a stored tree of `size` leaves, from its perfect-subtree
    /// nodes (one per set bit of `size`).
    pub fn from_nodes(size: u64, node_at: &mut dyn FnMut(u32, u64) -> Hash) -> Self {
        let mut hashes = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                hashes.push(node_at(level, start >> level));
                start += 1 << level;
            }
        }
        Frontier { size, hashes }
    }

    /// Number of leaves pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// MTH of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        // MTH splits off the largest perfect subtree on the left at every
        // level, so the root folds the subtree roots from the right.
        let mut rest = self.hashes.iter().rev();
        match rest.next() {
            None => empty_root(),
            Some(last) => rest.fold(*last, |right, left| node_hash(left, &right)),
        }
    }
}

/// Hash of the subtree over leaves [start, end) fetched through `leaf_at`
/// (for proofs over stored logs): MTH(D[start:end]), so an empty range gives
/// [`empty_root`]. Reads each leaf once and keeps O(log n) hashes.
pub fn subtree_hash(
    start: u64,
    end: u64,
    leaf_at: &mut dyn FnMut(u64) -> Hash,
) -> Result<Hash, MerkleError> {
    if start > end {
        return Err(MerkleError::BadRange { start, end });
    }
    Ok(range_hash(start, end, leaf_at))
}

fn range_hash(start: u64, end: u64, leaf_at: &mut dyn FnMut(u64) -> Hash) -> Hash {
    let mut frontier = Frontier::new();
    for i in start..end {
        frontier.push(leaf_at(i));
    }
    frontier.root()
}

/// MTH(D[lo:hi]) from stored perfect-subtree nodes: `node_at(level, index)`
/// is the hash of leaves `[index << level, (index + 1) << level)` (level 0:
/// the leaf hashes). Follows MTH's own recursion and reads a stored node for
/// every aligned perfect subtree, so a proof's ranges cost O(log n) reads each.
pub fn mth_from_nodes(lo: u64, hi: u64, node_at: &mut dyn FnMut(u32, u64) -> Hash) -> Hash {
    let n = hi.saturating_sub(lo);
    if n == 0 {
        return empty_root();
    }
    if n.is_power_of_two() && lo % n == 0 {
        return node_at(n.trailing_zeros(), lo / n);
    }
    let k = split_point(n);
    let left = mth_from_nodes(lo, lo + k, node_at);
    let right = mth_from_nodes(lo + k, hi, node_at);
    node_hash(&left, &right)
}

/// [`inclusion_proof`] over a stored log's perfect-subtree nodes.
pub fn inclusion_proof_from_nodes(
    index: u64,
    size: u64,
    node_at: &mut dyn FnMut(u32, u64) -> Hash,
) -> Result<Vec<Hash>, MerkleError> {
    inclusion_walk(index, size, &mut |lo, hi| mth_from_nodes(lo, hi, node_at))
}

/// [`consistency_proof`] over a stored log's perfect-subtree nodes.
pub fn consistency_proof_from_nodes(
    old: u64,
    new: u64,
    node_at: &mut dyn FnMut(u32, u64) -> Hash,
) -> Result<Vec<Hash>, MerkleError> {
    consistency_walk(old, new, &mut |lo, hi| mth_from_nodes(lo, hi, node_at))
}

/// Largest power of two strictly smaller than `n`; needs `n >= 2`.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

fn leaf_count(leaves: &[Hash]) -> u64 {
    leaves.len() as u64
}

fn check_available(size: u64, leaves: &[Hash]) -> Result<(), MerkleError> {
    if size > leaf_count(leaves) {
        return Err(MerkleError::SizeExceedsLeaves {
            size,
            leaves: leaf_count(leaves),
        });
    }
    Ok(())
}

/// Inclusion proof (audit path) for leaf `index` in the tree of the first
/// `size` leaves, RFC 6962 §2.1.1 PATH(m, D[n]).
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
    check_available(size, leaves)?;
    inclusion_proof_with(index, size, &mut |i| leaves[i as usize])
}

/// [`inclusion_proof`] over leaves fetched through `leaf_at`. Every leaf below
/// `size` but `index` is read once and hashed: O(size) work, as no interior
/// nodes are stored.
pub fn inclusion_proof_with(
    index: u64,
    size: u64,
    leaf_at: &mut dyn FnMut(u64) -> Hash,
) -> Result<Vec<Hash>, MerkleError> {
    inclusion_walk(index, size, &mut |lo, hi| range_hash(lo, hi, leaf_at))
}

/// PATH(index, D[size]) with subtree hashes from `mth(lo, hi)`.
fn inclusion_walk(
    index: u64,
    size: u64,
    mth: &mut dyn FnMut(u64, u64) -> Hash,
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // Walk PATH's recursion from the root down; it emits siblings root-first.
    let mut proof = Vec::with_capacity(inclusion_proof_len(index, size));
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            proof.push(mth(mid, hi));
            hi = mid;
        } else {
            proof.push(mth(lo, mid));
            lo = mid;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Consistency proof between tree sizes `old` and `new`, RFC 6962 §2.1.2
/// PROOF(m, D[n]). Empty when `old == new`.
pub fn consistency_proof(leaves: &[Hash], old: u64, new: u64) -> Result<Vec<Hash>, MerkleError> {
    check_available(new, leaves)?;
    consistency_proof_with(old, new, &mut |i| leaves[i as usize])
}

/// [`consistency_proof`] over leaves fetched through `leaf_at`. Leaves below
/// `new` are read at most once each: O(new) work, as no interior nodes are
/// stored.
pub fn consistency_proof_with(
    old: u64,
    new: u64,
    leaf_at: &mut dyn FnMut(u64) -> Hash,
) -> Result<Vec<Hash>, MerkleError> {
    consistency_walk(old, new, &mut |lo, hi| range_hash(lo, hi, leaf_at))
}

/// PROOF(old, D[new]) with subtree hashes from `mth(lo, hi)`.
fn consistency_walk(
    old: u64,
    new: u64,
    mth: &mut dyn FnMut(u64, u64) -> Hash,
) -> Result<Vec<Hash>, MerkleError> {
    check_sizes(old, new)?;
    if old == new {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled; `has_old_root` is b.
    let mut proof = Vec::with_capacity(consistency_proof_len(old, new));
    let (mut lo, mut hi, mut has_old_root) = (0, new, true);
    while old != hi {
        let mid = lo + split_point(hi - lo);
        if old <= mid {
            proof.push(mth(mid, hi));
            hi = mid;
        } else {
            proof.push(mth(lo, mid));
            lo = mid;
            has_old_root = false;
        }
    }
    if !has_old_root {
        proof.push(mth(lo, hi));
    }
    proof.reverse();
    Ok(proof)
}

fn check_sizes(old: u64, new: u64) -> Result<(), MerkleError> {
    // Proving consistency with the empty tree proves nothing, so like the
    // reference Go verifier we refuse it rather than accept anything.
    if old == 0 || old > new {
        return Err(MerkleError::BadSizes { old, new });
    }
    Ok(())
}

/// Bit length of `x`.
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Length of PATH(index, D[size]): one sibling per level below the point where
/// the paths to `index` and `size - 1` diverge, plus one left sibling per set
/// bit above it. Needs `index < size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Length of PROOF(old, D[new]) for `0 < old < new`: the inclusion path of leaf
/// `old - 1` without the levels inside the rightmost perfect subtree of the old
/// tree, plus that subtree's root unless it is the whole old tree.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    let path = inclusion_proof_len(old - 1, new);
    let below = old.trailing_zeros() as usize;
    let seed = usize::from(!old.is_power_of_two());
    path - below + seed
}

fn check_proof_len(expected: usize, proof: &[Hash]) -> Result<(), MerkleError> {
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    Ok(())
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2 algorithm).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // The RFC fails when sn reaches 0 early or is not 0 at the end; that is
    // exactly a wrong length, checked up front for a precise error.
    check_proof_len(inclusion_proof_len(index, size), proof)?;
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ != 0 && fn_ & 1 == 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    debug_assert_eq!(sn, 0);
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2 algorithm). Equal sizes
/// need an empty proof and equal roots; `old_size` must not be 0.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    check_sizes(old_size, new_size)?;
    if old_size == new_size {
        check_proof_len(0, proof)?;
        if old_root != new_root {
            return Err(MerkleError::RootMismatch);
        }
        return Ok(());
    }
    check_proof_len(consistency_proof_len(old_size, new_size), proof)?;
    // A perfect old tree is itself the first node of the path, so the RFC
    // prepends its root instead of having the log send it.
    let (seed, rest) = match proof.split_first() {
        Some((first, rest)) if !old_size.is_power_of_two() => (*first, rest),
        _ => (*old_root, proof),
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ != 0 && fn_ & 1 == 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    debug_assert_eq!(sn, 0);
    if fr != *old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaf inputs of the Certificate Transparency reference tests.
    const INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// Their leaf hashes (transparency-dev/merkle testonly/constants.go).
    const LEAF_HASHES: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ];

    /// Roots of the trees over the first 0..=8 inputs (same source).
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn h(hex_str: &str) -> Hash {
        let bytes = hex::decode(hex_str).expect("test constant is hex");
        bytes.try_into().expect("test constant is 32 bytes")
    }

    fn rfc_leaves() -> Vec<Hash> {
        INPUTS
            .iter()
            .map(|s| leaf_hash(&hex::decode(s).expect("test constant is hex")))
            .collect()
    }

    /// Leaves d[i] = [i], as in the Merkle Tree Certificates draft vectors.
    fn byte_leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[i as u8])).collect()
    }

    fn len(leaves: &[Hash]) -> u64 {
        leaves.len() as u64
    }

    // Literal RFC 6962 §2.1 recursions, to cross-check the iterative code.
    fn ref_mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
            }
        }
    }

    fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        if d.len() <= 1 {
            return Vec::new();
        }
        let k = split_point(d.len() as u64) as usize;
        let (mut path, sibling) = if m < k {
            (ref_path(m, &d[..k]), ref_mth(&d[k..]))
        } else {
            (ref_path(m - k, &d[k..]), ref_mth(&d[..k]))
        };
        path.push(sibling);
        path
    }

    fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        if m == d.len() {
            return if b { Vec::new() } else { vec![ref_mth(d)] };
        }
        let k = split_point(d.len() as u64) as usize;
        let (mut proof, sibling) = if m <= k {
            (ref_subproof(m, &d[..k], b), ref_mth(&d[k..]))
        } else {
            (ref_subproof(m - k, &d[k..], false), ref_mth(&d[..k]))
        };
        proof.push(sibling);
        proof
    }

    fn flip_each_bit(proof: &[Hash], mut check: impl FnMut(&[Hash])) {
        for i in 0..proof.len() {
            for bit in 0..256 {
                let mut bad = proof.to_vec();
                bad[i][bit / 8] ^= 1 << (bit % 8);
                check(&bad);
            }
        }
    }

    fn flip_one_bit(hash: &Hash) -> Hash {
        let mut bad = *hash;
        bad[31] ^= 1;
        bad
    }

    #[test]
    fn hashes_match_the_reference_tree() {
        let leaves = rfc_leaves();
        for (leaf, want) in leaves.iter().zip(LEAF_HASHES) {
            assert_eq!(*leaf, h(want));
        }
        assert_eq!(empty_root(), h(ROOTS[0]));
        let mut frontier = Frontier::new();
        for (size, want) in ROOTS.iter().enumerate() {
            assert_eq!(root(&leaves[..size]), h(want), "root of size {size}");
            assert_eq!(frontier.size(), size as u64);
            assert_eq!(frontier.root(), h(want), "frontier of size {size}");
            if let Some(leaf) = leaves.get(size) {
                frontier.push(*leaf);
            }
        }
    }

    #[test]
    fn iterative_code_matches_rfc_recursion() {
        let leaves = byte_leaves(66);
        // Every small shape, and a few around a seventh level.
        for n in (0..=40).chain(62..=66) {
            let d = &leaves[..n];
            assert_eq!(root(d), ref_mth(d), "root {n}");
            for m in 0..n {
                let proof = inclusion_proof(&leaves, m as u64, n as u64).expect("in range");
                assert_eq!(proof, ref_path(m, d), "PATH({m}, D[{n}])");
                assert_eq!(proof.len(), inclusion_proof_len(m as u64, n as u64));
            }
            for m in 1..=n {
                let proof = consistency_proof(&leaves, m as u64, n as u64).expect("in range");
                assert_eq!(proof, ref_subproof(m, d, true), "PROOF({m}, D[{n}])");
                if m < n {
                    assert_eq!(proof.len(), consistency_proof_len(m as u64, n as u64));
                }
            }
        }
    }

    /// The reference leaves followed by eight more, and the roots of every
    /// prefix, so wrong sizes can be tried with the root of that size.
    fn sixteen() -> (Vec<Hash>, Vec<Hash>) {
        let mut leaves = rfc_leaves();
        leaves.extend_from_slice(&byte_leaves(16)[8..]);
        let roots = (0..=leaves.len()).map(|n| root(&leaves[..n])).collect();
        (leaves, roots)
    }

    #[test]
    fn every_small_inclusion_proof_verifies_and_tampering_fails() {
        let (leaves, roots) = sixteen();
        for size in 1..=8 {
            let tree_root = &roots[size as usize];
            for index in 0..size {
                let leaf = &leaves[index as usize];
                let proof = inclusion_proof(&leaves, index, size).expect("in range");
                assert_eq!(
                    verify_inclusion(index, size, leaf, &proof, tree_root),
                    Ok(())
                );

                flip_each_bit(&proof, |bad| {
                    assert!(verify_inclusion(index, size, leaf, bad, tree_root).is_err());
                });
                let bad_leaf = flip_one_bit(leaf);
                assert!(verify_inclusion(index, size, &bad_leaf, &proof, tree_root).is_err());
                let bad_root = flip_one_bit(tree_root);
                assert!(verify_inclusion(index, size, leaf, &proof, &bad_root).is_err());
                for other in (0..size + 2).filter(|i| *i != index) {
                    assert!(verify_inclusion(other, size, leaf, &proof, tree_root).is_err());
                }
                for other in (0..=len(&leaves)).filter(|s| *s != size) {
                    let other_root = &roots[other as usize];
                    assert!(verify_inclusion(index, other, leaf, &proof, other_root).is_err());
                }
                let mut longer = proof.clone();
                longer.push(*tree_root);
                assert!(verify_inclusion(index, size, leaf, &longer, tree_root).is_err());
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(verify_inclusion(index, size, leaf, shorter, tree_root).is_err());
                }
            }
        }
    }

    /// The verifier only sees the proof's shape: leaf 0 of 3 and of 4 both
    /// take two right siblings, so the 3-leaf proof and root also pass as
    /// size 4. Size and root must come from one signed checkpoint.
    #[test]
    fn inclusion_does_not_bind_the_size_on_its_own() {
        let leaves = rfc_leaves();
        let proof = inclusion_proof(&leaves, 0, 3).expect("in range");
        let root3 = root(&leaves[..3]);
        assert_eq!(verify_inclusion(0, 4, &leaves[0], &proof, &root3), Ok(()));
        assert!(verify_inclusion(0, 4, &leaves[0], &proof, &root(&leaves[..4])).is_err());
    }

    #[test]
    fn every_small_consistency_proof_verifies_and_tampering_fails() {
        let (leaves, roots) = sixteen();
        for new in 1..=8 {
            for old in 1..=new {
                let (old_root, new_root) = (&roots[old as usize], &roots[new as usize]);
                let proof = consistency_proof(&leaves, old, new).expect("in range");
                assert_eq!(
                    verify_consistency(old, new, old_root, new_root, &proof),
                    Ok(())
                );

                flip_each_bit(&proof, |bad| {
                    assert!(verify_consistency(old, new, old_root, new_root, bad).is_err());
                });
                let bad_old = flip_one_bit(old_root);
                assert!(verify_consistency(old, new, &bad_old, new_root, &proof).is_err());
                let bad_new = flip_one_bit(new_root);
                assert!(verify_consistency(old, new, old_root, &bad_new, &proof).is_err());
                for other in (0..=len(&leaves)).filter(|s| *s != old) {
                    let other_root = &roots[other as usize];
                    assert!(verify_consistency(other, new, other_root, new_root, &proof).is_err());
                }
                for other in (0..=len(&leaves)).filter(|s| *s != new) {
                    let other_root = &roots[other as usize];
                    assert!(verify_consistency(old, other, old_root, other_root, &proof).is_err());
                }
                let mut longer = proof.clone();
                longer.push(*new_root);
                assert!(verify_consistency(old, new, old_root, new_root, &longer).is_err());
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(verify_consistency(old, new, old_root, new_root, shorter).is_err());
                }
                if old != new {
                    assert!(verify_consistency(old, new, new_root, old_root, &proof).is_err());
                }
            }
        }
    }

    #[test]
    fn stored_log_leaves_are_read_at_most_once() {
        let leaves = byte_leaves(21);
        let mut reads = Vec::new();
        let mut at = |i: u64| {
            reads.push(i);
            leaves[i as usize]
        };
        let proof = inclusion_proof_with(6, 13, &mut at).expect("in range");
        assert_eq!(proof, inclusion_proof(&leaves, 6, 13).expect("in range"));
        reads.sort_unstable();
        assert_eq!(reads, (0..13).filter(|i| *i != 6).collect::<Vec<_>>());

        reads.clear();
        let mut at = |i: u64| {
            reads.push(i);
            leaves[i as usize]
        };
        let proof = consistency_proof_with(7, 21, &mut at).expect("in range");
        assert_eq!(proof, consistency_proof(&leaves, 7, 21).expect("in range"));
        let count = reads.len();
        reads.sort_unstable();
        reads.dedup();
        assert_eq!(reads.len(), count, "a leaf was read twice");
        assert!(reads.iter().all(|i| *i < 21));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let leaves = rfc_leaves();
        let r = root(&leaves);
        assert_eq!(
            inclusion_proof(&leaves, 8, 8),
            Err(MerkleError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert_eq!(
            inclusion_proof(&leaves, 0, 9),
            Err(MerkleError::SizeExceedsLeaves { size: 9, leaves: 8 })
        );
        assert_eq!(
            consistency_proof(&leaves, 0, 8),
            Err(MerkleError::BadSizes { old: 0, new: 8 })
        );
        assert_eq!(
            consistency_proof(&leaves, 5, 4),
            Err(MerkleError::BadSizes { old: 5, new: 4 })
        );
        assert_eq!(
            consistency_proof(&leaves, 1, 9),
            Err(MerkleError::SizeExceedsLeaves { size: 9, leaves: 8 })
        );
        assert_eq!(
            verify_inclusion(u64::MAX, u64::MAX, &r, &[], &r),
            Err(MerkleError::IndexOutOfRange {
                index: u64::MAX,
                size: u64::MAX
            })
        );
        assert_eq!(
            verify_inclusion(0, 8, &leaves[0], &[], &r),
            Err(MerkleError::WrongProofLength {
                expected: 3,
                actual: 0
            })
        );
        assert_eq!(
            verify_consistency(0, 0, &empty_root(), &empty_root(), &[]),
            Err(MerkleError::BadSizes { old: 0, new: 0 })
        );
        assert_eq!(
            verify_consistency(8, 8, &r, &leaves[0], &[]),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(8, 8, &r, &r, &[r]),
            Err(MerkleError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        let mut at = |i: u64| leaves[i as usize];
        assert_eq!(
            subtree_hash(3, 2, &mut at),
            Err(MerkleError::BadRange { start: 3, end: 2 })
        );
        assert_eq!(subtree_hash(2, 2, &mut at), Ok(empty_root()));
        assert_eq!(subtree_hash(0, 8, &mut at), Ok(r));
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let leaf = leaf_hash(b"x");
        let proof = vec![leaf; inclusion_proof_len(u64::MAX - 1, u64::MAX)];
        assert_eq!(proof.len(), 63);
        assert_eq!(
            verify_inclusion(u64::MAX - 1, u64::MAX, &leaf, &proof, &leaf),
            Err(MerkleError::RootMismatch)
        );
        let proof = vec![leaf; consistency_proof_len(u64::MAX - 1, u64::MAX)];
        assert_eq!(
            verify_consistency(u64::MAX - 1, u64::MAX, &leaf, &leaf, &proof),
            Err(MerkleError::OldRootMismatch)
        );
    }

    /// Rolling SHA-256 over the hashes of every valid subtree [start, end) of
    /// the d[i] = [i] tree up to 130 leaves, compared with the value published
    /// in the "Subtree Test Vectors" appendix of
    /// draft-ietf-plants-merkle-tree-certs (as checked by transparency-dev/merkle
    /// testonly/vectors_test.go).
    #[test]
    fn subtree_hash_vector_of_merkle_tree_certs_draft() {
        const MAX: u64 = 130;
        let leaves = byte_leaves(MAX as usize);
        let mut at = |i: u64| leaves[i as usize];
        // Node-aligned: start is 0 or a multiple of bit_ceil(end - start).
        let valid = |start: u64, end: u64| {
            start == 0 || start == end || start % (end - start).next_power_of_two() == 0
        };
        let mut digest = Sha256::new();
        for end in 0..=MAX {
            for start in (0..=end).filter(|s| valid(*s, end)) {
                let hash = subtree_hash(start, end, &mut at).expect("start <= end");
                digest.update(format!("[{start}, {end}) {}\n", hex::encode(hash)));
            }
        }
        assert_eq!(
            hex::encode(digest.finalize()),
            "b82806ad4265bb151c1119c0f4db437bb4d1a1f887b3a7fba1cd4ebf552e3e81"
        );
    }
}

#[cfg(test)]
mod node_tests {
    use super::*;
    use std::collections::HashMap;

    /// Builds the stored form of a log (level-0 leaves plus every completed
    /// perfect subtree) the way a sequencer does, through push_completing.
    fn stored(n: u64) -> (Vec<Hash>, HashMap<(u32, u64), Hash>, Frontier) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut nodes = HashMap::new();
        let mut frontier = Frontier::new();
        for (i, leaf) in leaves.iter().enumerate() {
            nodes.insert((0, i as u64), *leaf);
            for (level, index, hash) in frontier.push_completing(*leaf) {
                nodes.insert((level, index), hash);
            }
        }
        (leaves, nodes, frontier)
    }

    #[test]
    fn proofs_from_nodes_equal_proofs_from_leaves() {
        let (leaves, nodes, frontier) = stored(70);
        let mut node_at = |level: u32, index: u64| nodes[&(level, index)];
        assert_eq!(frontier.root(), root(&leaves));
        for size in 1..=70u64 {
            assert_eq!(
                mth_from_nodes(0, size, &mut node_at),
                root(&leaves[..size as usize]),
                "root {size}"
            );
            let rebuilt = Frontier::from_nodes(size, &mut node_at);
            assert_eq!(
                rebuilt.root(),
                root(&leaves[..size as usize]),
                "frontier {size}"
            );
            for index in 0..size {
                assert_eq!(
                    inclusion_proof_from_nodes(index, size, &mut node_at).unwrap(),
                    inclusion_proof(&leaves, index, size).unwrap(),
                    "inclusion {index}/{size}"
                );
            }
            for old in 1..=size {
                assert_eq!(
                    consistency_proof_from_nodes(old, size, &mut node_at).unwrap(),
                    consistency_proof(&leaves, old, size).unwrap(),
                    "consistency {old}/{size}"
                );
            }
        }
    }

    #[test]
    fn a_rebuilt_frontier_keeps_growing_correctly() {
        let (leaves, nodes, _) = stored(37);
        let mut frontier = Frontier::from_nodes(21, &mut |l, i| nodes[&(l, i)]);
        for leaf in &leaves[21..] {
            frontier.push_completing(*leaf);
        }
        assert_eq!(frontier.root(), root(&leaves));
    }
}
