//! Every setting the extension defines, behind typed getters: the statics stay
//! private, so no module can read a raw value or write one.
//!
//! All are `PGC_SUSET` or stricter: a role that could change them could point
//! binds at its own verify endpoint or stall the audit log. The one exception
//! to "every setting here" is `kakunin.binding`, which is not a tunable but the
//! binding's own storage, with hooks that only `identity::binding` may drive
//! (see there).

use std::ffi::CString;
use std::time::Duration;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

static VERIFY_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static VERIFY_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(2000);
static CHECKPOINT_INTERVAL_S: GucSetting<i32> = GucSetting::<i32>::new(300);
static WORKER_DATABASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static WORKER_NAPTIME_MS: GucSetting<i32> = GucSetting::<i32>::new(1_000);
static ALLOW_TEST_CA: GucSetting<bool> = GucSetting::<bool>::new(false);
static PROOF_REPLAY_CAPACITY: GucSetting<i32> = GucSetting::<i32>::new(100_000);
static VERIFY_CACHE_CAPACITY: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static PROOF_REPLAY_PER_KEY: GucSetting<i32> = GucSetting::<i32>::new(2_000);
static PROOF_AUDIENCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Defines the settings; called once from `_PG_init`.
pub fn init() {
    GucRegistry::define_string_guc(
        c"kakunin.verify_url",
        c"Base URL of the CA's verify endpoint; the serial is appended. Empty: no online checks.",
        c"When set, every certificate bind asks GET <verify_url><serial> (through a cache) and binds the answer's status; any failure binds 'unknown'.",
        &VERIFY_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"kakunin.verify_timeout_ms",
        c"Timeout of one request to the verify endpoint, in milliseconds.",
        c"Never longer than what remains of statement_timeout.",
        &VERIFY_TIMEOUT_MS,
        1,
        600_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"kakunin.audit_checkpoint_interval",
        c"Longest time between automatic audit checkpoints while entries arrive.",
        c"The background worker (or a kakunin_admin integration) signs a checkpoint when entries arrived since the latest and it is older than this.",
        &CHECKPOINT_INTERVAL_S,
        1,
        86_400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"kakunin.allow_test_ca",
        c"Whether this database may hold and trust a test CA (kakunin.enable_test_ca).",
        c"Off in production: a test CA's private key lives in the database. While off, kakunin.enable_test_ca and kakunin.issue_test_certificate are refused and certificates chaining to a test anchor do not bind.",
        &ALLOW_TEST_CA,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"kakunin.proof_audience",
        c"This server's name in proofs of possession; empty: proofs name the database only.",
        c"When set, a proof's aud must be '<proof_audience>/<database>' rather than the database name, so a proof made for one server (a primary, each replica) cannot be replayed on another, whose replay memory is its own.",
        &PROOF_AUDIENCE,
        GucContext::Suset,
        GucFlags::default(),
    );
    // PostgreSQL refuses to define a server-start setting after startup
    // (FATAL), and without preloading there is no worker for it to configure.
    if preloading() {
        GucRegistry::define_int_guc(
            c"kakunin.proof_replay_capacity",
            c"How many accepted proofs of possession shared memory remembers (server start).",
            c"Each is remembered until it could no longer be accepted anyway (iat + 360 s); when all are still fresh, new proof binds are refused until some expire.",
            &PROOF_REPLAY_CAPACITY,
            16,
            10_000_000,
            GucContext::Postmaster,
            GucFlags::default(),
        );
        GucRegistry::define_int_guc(
            c"kakunin.proof_replay_per_key",
            c"How many proofs one public key may have remembered per 360 s (preloaded).",
            c"So that no single agent can fill kakunin.proof_replay_capacity and deny proof binds to all others; past it, that key's proof binds are refused until the window turns.",
            &PROOF_REPLAY_PER_KEY,
            1,
            10_000_000,
            GucContext::Sighup,
            GucFlags::default(),
        );
        GucRegistry::define_int_guc(
            c"kakunin.verify_cache_capacity",
            c"How many verify-endpoint answers shared memory caches for all backends (server start).",
            c"One entry per certificate serial, kept for the CA's TTL or until the status tables change; when full, stale entries go first, and a serial finding no room is asked for by its backend alone.",
            &VERIFY_CACHE_CAPACITY,
            16,
            1_000_000,
            GucContext::Postmaster,
            GucFlags::default(),
        );
        GucRegistry::define_string_guc(
            c"kakunin.audit_worker_database",
            c"Database whose audit log the kakunin background worker sequences.",
            c"Needs kakunin_pg in shared_preload_libraries; empty: no worker (kakunin_admin integrates, e.g. a scheduled kakunin.audit_checkpoint()).",
            &WORKER_DATABASE,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    GucRegistry::define_int_guc(
        c"kakunin.audit_worker_naptime",
        c"How long the audit background worker sleeps between integrations.",
        c"At most this long passes between an entry's commit and its position while the worker runs.",
        &WORKER_NAPTIME_MS,
        10,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
}

/// Whether the library is being loaded at server start (`shared_preload_libraries`).
pub fn preloading() -> bool {
    // SAFETY: reads a flag PostgreSQL sets while loading preloaded libraries.
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

/// `kakunin.verify_url`, if online checks are on.
pub fn verify_url() -> Option<String> {
    VERIFY_URL
        .get()
        .and_then(|u| u.into_string().ok())
        .filter(|u| !u.trim().is_empty())
}

/// `kakunin.verify_timeout_ms`.
pub fn verify_timeout() -> Duration {
    Duration::from_millis(VERIFY_TIMEOUT_MS.get().max(1) as u64)
}

/// `kakunin.audit_checkpoint_interval`, in seconds.
pub fn audit_checkpoint_interval_seconds() -> i32 {
    CHECKPOINT_INTERVAL_S.get()
}

/// `kakunin.audit_worker_database`, if set (and so if the library was preloaded).
pub fn audit_worker_database() -> Option<String> {
    WORKER_DATABASE
        .get()
        .and_then(|d| d.into_string().ok())
        .filter(|d| !d.is_empty())
}

/// `kakunin.audit_worker_naptime`.
pub fn audit_worker_naptime() -> Duration {
    Duration::from_millis(WORKER_NAPTIME_MS.get().max(10) as u64)
}

/// `kakunin.allow_test_ca`.
pub fn allow_test_ca() -> bool {
    ALLOW_TEST_CA.get()
}

/// `kakunin.proof_replay_capacity` (read at server start).
pub fn proof_replay_capacity() -> i64 {
    i64::from(PROOF_REPLAY_CAPACITY.get())
}

/// `kakunin.proof_audience`, if set.
pub fn proof_audience() -> Option<String> {
    PROOF_AUDIENCE
        .get()
        .and_then(|a| a.into_string().ok())
        .filter(|a| !a.trim().is_empty())
}

/// `kakunin.verify_cache_capacity` (read at server start).
pub fn verify_cache_capacity() -> i64 {
    i64::from(VERIFY_CACHE_CAPACITY.get())
}

/// `kakunin.proof_replay_per_key`.
pub fn proof_replay_per_key() -> i64 {
    i64::from(PROOF_REPLAY_PER_KEY.get())
}
