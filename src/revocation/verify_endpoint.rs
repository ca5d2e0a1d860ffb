//! The CA's online verify endpoint (the pull channel): `GET <verify_url><serial>`
//! when `kakunin.verify_url` is set, cached as the CA documents (`active` five
//! minutes, `revoked`/`expired` sixty seconds), and dropped from the cache as
//! soon as the registry changes (a webhook for the serial, for instance).
//! Every failure — timeout, refusal, 4xx/5xx, a malformed body — is `unknown`.
//!
//! HTTP client: reqwest's async client on a current-thread tokio runtime, both
//! created lazily in the backend that first needs them (never before a fork).
//! The request runs on the backend's own thread, polled beside a 10 ms check
//! of PostgreSQL's interrupt flag, so a query cancel or termination stops the
//! wait at once; no other thread ever touches PostgreSQL. The timeout is
//! `kakunin.verify_timeout_ms`, cut to half of what is left of
//! `statement_timeout` (see [`budget`]), and enforced by that loop too.
//!
//! Preloaded, answers are shared by every backend of the server (issue 11):
//! a table in shared memory holds the answer for each URL asked (the base
//! URL can differ per database or role, naming another CA) until the CA's TTL
//! ends or the status tables change (`pg::shmem::generation`), and a serial
//! being asked for is marked in flight, so concurrent binds of it wait (10 ms
//! naps, cancellable, within their own budget) for that one request instead of
//! sending their own. A claim whose backend is gone is taken over at once, a
//! stuck one once it is older than `kakunin.verify_timeout_ms`. Each backend keeps its own cache in
//! front, tagged by its invalidation epoch, as without preloading.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use kakunin_core::verify_answer::{self, Answer, MAX_BODY_BYTES};
use pgrx::pg_sys;

use sha2::{Digest, Sha256};

use crate::gucs;
use crate::pg::invalidation::{self, EpochCache};
use crate::pg::shmem::{self, Key, SharedTable};

/// The endpoint base URL, if online checks are on (`kakunin.verify_url`).
pub fn url() -> Option<String> {
    gucs::verify_url()
}

struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

thread_local! {
    static CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
    /// URL asked (base and serial) -> (valid until, answer), dropped when the registry changes
    static CACHE: EpochCache<String, (Instant, Answer)> = EpochCache::new(4096);
    static REQUESTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The endpoint's answer for `serial` (canonical hex), from the cache when it
/// is fresh and no invalidation arrived since.
pub fn status(serial: &str) -> Answer {
    let Some(base) = url() else {
        return Answer::unknown("kakunin.verify_url is not set");
    };
    let epoch = invalidation::epoch();
    let now = Instant::now();
    // Keyed by the whole URL: databases and roles may name different CAs.
    let url = format!("{base}{serial}");
    if let Some((_, hit)) = CACHE
        .with(|c| c.get(&url))
        .filter(|(until, _)| now < *until)
    {
        return hit;
    }
    let (answer, ttl) = shared_or_fetch(&url, serial);
    if let Some(ttl) = ttl {
        CACHE.with(|c| c.insert_tagged(url, epoch, (now + ttl, answer.clone())));
    }
    answer
}

/// Bytes of an answer the shared cache holds; a larger one (a big scope)
/// stays in the asking backend's own cache.
const SHARED_ANSWER_BYTES: usize = 400;

#[repr(C)]
#[derive(Clone, Copy)]
struct Shared {
    key: Key,
    /// A backend (`owner`) is asking the endpoint since `since_ms`.
    in_flight: bool,
    len: u16,
    owner: i32,
    /// `pg::shmem::generation` when the request started.
    generation: u64,
    since_ms: i64,
    /// The answer holds until then (unix ms).
    until_ms: i64,
    answer: [u8; SHARED_ANSWER_BYTES],
}

static SHARED: SharedTable<Shared> =
    SharedTable::new(c"kakunin verify cache", gucs::verify_cache_capacity);

/// Reserves the shared cache (while preloading).
pub fn register() {
    if gucs::preloading() {
        SHARED.register();
    }
}

/// How full the shared cache is (`{capacity, entries, bytes}`), if preloaded.
pub fn shared_usage() -> Option<serde_json::Value> {
    SHARED.usage()
}

enum Lookup {
    /// A fresh answer, and how much longer it holds.
    Hit(Answer, Duration),
    /// Another backend is asking for it.
    Wait,
    /// This backend is to ask; the claim started then (unix ms).
    Claimed(i64),
    /// No shared cache (not preloaded, or full of fresh answers).
    Alone,
}

fn now_ms() -> i64 {
    crate::pg::time::now_unix_micros() / 1000
}

fn lookup_or_claim(key: &Key) -> Lookup {
    let (now, generation) = (now_ms(), shmem::generation());
    let abandoned_after = gucs::verify_timeout().as_millis() as i64;
    let me = my_pid();
    SHARED
        .exclusive(|table| {
            if let Some(entry) = table.get(key) {
                if !entry.in_flight && entry.generation == generation && now < entry.until_ms {
                    if let Some(answer) = Answer::decode(&entry.answer[..usize::from(entry.len)]) {
                        let left = Duration::from_millis((entry.until_ms - now) as u64);
                        return Lookup::Hit(answer, left);
                    }
                }
                if entry.in_flight && now - entry.since_ms < abandoned_after && alive(entry.owner) {
                    return Lookup::Wait;
                }
            } else if table.is_full() {
                table.retain(|e| {
                    if e.in_flight {
                        now - e.since_ms < abandoned_after
                    } else {
                        e.generation == generation && now < e.until_ms
                    }
                });
            }
            let claim = Shared {
                key: *key,
                in_flight: true,
                len: 0,
                owner: me,
                generation,
                since_ms: now,
                until_ms: 0,
                answer: [0; SHARED_ANSWER_BYTES],
            };
            if table.put(key, claim) {
                Lookup::Claimed(now)
            } else {
                Lookup::Alone
            }
        })
        .unwrap_or(Lookup::Alone)
}

fn my_pid() -> i32 {
    // SAFETY: reads this process's pid, set once at its start.
    unsafe { pg_sys::MyProcPid }
}

/// Whether backend `pid` still runs (a terminated claimer exits without
/// withdrawing its claim).
fn alive(pid: i32) -> bool {
    // SAFETY: BackendPidGetProc takes ProcArrayLock shared and only reads.
    !unsafe { pg_sys::BackendPidGetProc(pid) }.is_null()
}

/// This backend's claim on a serial; dropping it unfinished (an ERROR or a
/// cancel while asking) withdraws it, so the waiters ask themselves.
struct Claim {
    key: Key,
    since_ms: i64,
}

impl Claim {
    /// Shares `answer` if it may be cached and fits, and ends the claim.
    fn finish(self, answer: &Answer) {
        let encoded = answer.encode();
        let ttl = answer
            .ttl_seconds()
            .filter(|_| encoded.len() <= SHARED_ANSWER_BYTES);
        SHARED.exclusive(|table| {
            let Some(entry) = table.get(&self.key).filter(|e| self.is(e)) else {
                return;
            };
            match ttl {
                Some(ttl) => {
                    entry.in_flight = false;
                    entry.until_ms = self.since_ms + ttl as i64 * 1000;
                    entry.len = encoded.len() as u16;
                    entry.answer[..encoded.len()].copy_from_slice(&encoded);
                }
                None => table.remove(&self.key),
            }
        });
        std::mem::forget(self);
    }

    fn is(&self, entry: &Shared) -> bool {
        entry.in_flight && entry.since_ms == self.since_ms && entry.owner == my_pid()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        SHARED.exclusive(|table| {
            if table.get(&self.key).is_some_and(|e| self.is(e)) {
                table.remove(&self.key);
            }
        });
    }
}

/// The answer from the shared cache, from another backend's request in
/// flight, or from a request of ours; with how long it may be cached.
fn shared_or_fetch(url: &str, serial: &str) -> (Answer, Option<Duration>) {
    let key: Key = Sha256::digest(url.as_bytes()).into();
    let deadline = Instant::now() + budget().unwrap_or(MIN_REQUEST);
    let claim = loop {
        match lookup_or_claim(&key) {
            Lookup::Hit(answer, left) => return (answer, Some(left)),
            Lookup::Claimed(since_ms) => break Some(Claim { key, since_ms }),
            Lookup::Alone => break None,
            Lookup::Wait if Instant::now() >= deadline => {
                return (
                    Answer::unknown(
                        "another backend's request to the verify endpoint did not finish in time",
                    ),
                    None,
                );
            }
            Lookup::Wait => nap(),
        }
    };
    let answer = fetch(url, serial);
    if let Some(claim) = claim {
        claim.finish(&answer);
    }
    let ttl = answer.ttl_seconds().map(Duration::from_secs);
    (answer, ttl)
}

/// Sleeps 10 ms on the process latch, then serves a pending cancel.
fn nap() {
    // SAFETY: the standard bounded latch wait of a backend; the postmaster's death ends the process, as everywhere in PostgreSQL.
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            10,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    pgrx::check_for_interrupts!();
}

/// `kakunin.verify_endpoint_stats() → jsonb`: requests this backend made to
/// the verify endpoint (cache hits make none), for monitoring and tests.
#[pgrx::pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn verify_endpoint_stats() -> pgrx::JsonB {
    pgrx::JsonB(serde_json::json!({
        "verify_url": url(),
        "requests": REQUESTS.get(),
    }))
}

/// Below this, a request is not worth starting: the bind answers `unknown`.
const MIN_REQUEST: Duration = Duration::from_millis(20);

/// How long one request may take: `kakunin.verify_timeout_ms`, and under a
/// `statement_timeout` at most half of what is left of it, so that the rest
/// of the statement (finishing the bind, whatever the query does after) keeps
/// the other half however slow the machine: a bind under a statement timeout
/// answers `unknown` instead of being cancelled (issue 15). None when less
/// than [`MIN_REQUEST`] would be left.
fn budget() -> Option<Duration> {
    let configured = gucs::verify_timeout().as_millis() as i64;
    // SAFETY: StatementTimeout is a plain setting variable; the timestamps are read from the backend's own state.
    let remaining = unsafe {
        let limit = i64::from(pg_sys::StatementTimeout);
        (limit > 0).then(|| {
            let elapsed = (pg_sys::GetCurrentTimestamp()
                - pg_sys::GetCurrentStatementStartTimestamp())
                / 1000;
            limit - elapsed
        })
    };
    let ms = remaining.map_or(configured, |r| (r / 2).min(configured));
    Some(Duration::from_millis(ms.max(0) as u64)).filter(|b| *b >= MIN_REQUEST)
}

fn interrupt_pending() -> bool {
    // SAFETY: a volatile read of the flag PostgreSQL's signal handlers set.
    unsafe { std::ptr::read_volatile(&raw const pg_sys::InterruptPending) != 0 }
}

fn fetch(url: &str, serial: &str) -> Answer {
    let Some(budget) = budget() else {
        return Answer::unknown(
            "too little of statement_timeout is left to ask the verify endpoint",
        );
    };
    let deadline = tokio::time::Instant::now() + budget;
    REQUESTS.set(REQUESTS.get() + 1);
    let outcome = CLIENT.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .enable_io()
                .build()
                .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
            // The client's connection pool registers with the runtime it is built in.
            let _context = runtime.enter();
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
            *slot = Some(Client { runtime, http });
        }
        let client = slot.as_ref().ok_or("no HTTP client")?;
        let request = client.http.get(url).timeout(budget);
        client.runtime.block_on(async {
            let response = async {
                let mut response = request.send().await.map_err(describe)?;
                let status = response.status().as_u16();
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(describe)? {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_BODY_BYTES {
                        break;
                    }
                }
                Ok::<_, String>((status, body))
            };
            tokio::select! {
                result = response => result.map(Some),
                _ = async {
                    while !interrupt_pending() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                } => Ok(None),
                // Our own deadline too, in case the client's timer runs late.
                _ = tokio::time::sleep_until(deadline) => Err("the verify endpoint did not answer in time".to_string()),
            }
        })
    });
    match outcome {
        Ok(Some((status, body))) => verify_answer::parse(status, &body, serial),
        Ok(None) => {
            // Raises the pending cancel or termination; the request was dropped.
            pgrx::check_for_interrupts!();
            Answer::unknown("interrupted")
        }
        Err(why) => Answer::unknown(why),
    }
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "the verify endpoint did not answer in time".into()
    } else if e.is_connect() {
        "the verify endpoint refused the connection".into()
    } else {
        format!("the verify endpoint request failed: {e}")
    }
}
