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

use std::cell::RefCell;
use std::time::{Duration, Instant};

use kakunin_core::verify_answer::{self, Answer, MAX_BODY_BYTES};
use pgrx::pg_sys;

use crate::gucs;
use crate::pg::invalidation::{self, EpochCache};

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
    /// serial -> (valid until, answer), dropped when the registry changes
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
    if let Some((_, hit)) = CACHE
        .with(|c| c.get(serial))
        .filter(|(until, _)| now < *until)
    {
        return hit;
    }
    let answer = fetch(&format!("{base}{serial}"), serial);
    if let Some(ttl) = answer.ttl_seconds() {
        let until = now + Duration::from_secs(ttl);
        CACHE.with(|c| c.insert_tagged(serial.to_string(), epoch, (until, answer.clone())));
    }
    answer
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
    // SAFETY: StatementTimeout is a plain setting variable; the timestamps are
    // read from the backend's own state.
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
