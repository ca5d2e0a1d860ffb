//! Remembering accepted proofs of possession so none is accepted twice
//! (issue 11). Preloaded, in shared memory: one table per server, shared by
//! every backend, written without a transaction, so a proof bind works in a
//! READ ONLY transaction and on a hot standby. Without preloading, in the
//! table `kakunin.proof_replay` (see `bind::check_proof`).
//!
//! The eviction rule never lets a replay through: an entry is forgotten only
//! once its proof could no longer be accepted anyway (`iat` + the proof's
//! maximum age + the allowed clock skew has passed), and when every entry is
//! still fresh a new proof is refused instead. One key may have at most
//! `kakunin.proof_replay_per_key` proofs remembered per window, so no single
//! agent can fill the table for all others. Shared memory starts empty at
//! every server start: so a proof accepted before it cannot be accepted again,
//! proofs issued earlier than the allowed skew after the start are refused.

use kakunin_core::proof::{MAX_AGE_SECONDS, MAX_FUTURE_SKEW_SECONDS};
use kakunin_core::rfc3339;
use sha2::{Digest, Sha256};

use crate::pg::error::{KakuninError, Result};
use crate::pg::shmem::{self, Key, SharedTable};

#[repr(C)]
#[derive(Clone, Copy)]
struct Remembered {
    key: Key,
    /// Unix seconds after which the proof is stale everywhere.
    forget_after: i64,
}

static REMEMBERED: SharedTable<Remembered> =
    SharedTable::new(c"kakunin proof replay", crate::gucs::proof_replay_capacity);

/// Proofs one public key had remembered in the current window.
#[repr(C)]
#[derive(Clone, Copy)]
struct PerKey {
    key: Key,
    window_start: i64,
    count: i64,
}

/// A key's window: as long as a proof stays remembered, so a key holds at
/// most twice its quota of fresh proofs at any time.
const WINDOW_SECONDS: i64 = MAX_AGE_SECONDS + MAX_FUTURE_SKEW_SECONDS;

static PER_KEY: SharedTable<PerKey> = SharedTable::new(
    c"kakunin proof replay per key",
    crate::gucs::proof_replay_capacity,
);

/// Reserves the tables (while preloading).
pub fn register() {
    if crate::gucs::preloading() {
        REMEMBERED.register();
        PER_KEY.register();
    }
}

/// How full the table is (`{capacity, entries, bytes}`), if preloaded.
pub fn usage() -> Option<serde_json::Value> {
    REMEMBERED.usage()
}

/// Remembers the proof `jti` for `public_key` (SHA-256 of the SPKI), issued at
/// `iat`; refuses (`28000`) one already remembered, one issued before this
/// shared memory could know it, or one more when all slots are fresh. None
/// without preloading: the caller records it in the table instead.
pub fn remember(public_key: &Key, jti: &str, iat: i64, now: i64) -> Option<Result<()>> {
    let started = shmem::started_at()?;
    if iat < started + MAX_FUTURE_SKEW_SECONDS {
        return Some(Err(KakuninError::identity(format!(
            "proof of possession refused: its iat is less than {MAX_FUTURE_SKEW_SECONDS} s after this server started ({}); a proof accepted before the start could otherwise be replayed: make a fresh proof",
            rfc3339(started)
        ))));
    }
    let key: Key = Sha256::new()
        .chain_update(public_key)
        .chain_update([0])
        .chain_update(jti.as_bytes())
        .finalize()
        .into();
    let forget_after = iat + MAX_AGE_SECONDS + MAX_FUTURE_SKEW_SECONDS;
    // Lock order: the proofs, then the per-key counts.
    REMEMBERED.exclusive(|table| {
        if table.get(&key).is_some_and(|r| r.forget_after >= now) {
            return Err(KakuninError::identity(format!(
                "proof of possession refused: jti \"{jti}\" was already used (replay)"
            )));
        }
        if table.is_full() {
            table.retain(|r| r.forget_after >= now);
        }
        if table.is_full() {
            return Err(KakuninError::TooLarge(format!(
                "proof of possession refused: the {} proofs this server remembers (kakunin.proof_replay_capacity) are all still fresh; retry in a few minutes or raise the setting",
                table.len()
            )));
        }
        count_for(public_key, now)?;
        if !table.put(&key, Remembered { key, forget_after }) {
            return Err(KakuninError::TooLarge(
                "proof of possession refused: kakunin.proof_replay_capacity is exhausted".into(),
            ));
        }
        Ok(())
    })
}

/// Counts one more proof for the public key `owner`, or refuses (`54000`)
/// one past `kakunin.proof_replay_per_key` in the current window.
fn count_for(owner: &Key, now: i64) -> Result<()> {
    let limit = crate::gucs::proof_replay_per_key();
    PER_KEY
        .exclusive(|counts| {
            let known = counts.get(owner).copied();
            let current = known
                .filter(|c| now < c.window_start + WINDOW_SECONDS)
                .unwrap_or(PerKey { key: *owner, window_start: now, count: 0 });
            if current.count >= limit {
                return Err(KakuninError::TooLarge(format!(
                    "proof of possession refused: this certificate's key already has {limit} proofs remembered in the last {WINDOW_SECONDS} s (kakunin.proof_replay_per_key); bind through a kakunin_gateway member or retry later"
                )));
            }
            if known.is_none() && counts.is_full() {
                counts.retain(|c| now < c.window_start + WINDOW_SECONDS);
            }
            let next = PerKey { count: current.count + 1, ..current };
            if !counts.put(owner, next) {
                return Err(KakuninError::TooLarge(
                    "proof of possession refused: too many keys have proofs remembered (kakunin.proof_replay_capacity)".into(),
                ));
            }
            Ok(())
        })
        .unwrap_or(Ok(()))
}
