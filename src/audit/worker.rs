//! The audit sequencer as a background worker: with `kakunin_pg` in
//! `shared_preload_libraries` and `kakunin.audit_worker_database` set, one
//! worker integrates committed entries every `kakunin.audit_worker_naptime`
//! and signs the checkpoint `kakunin.audit_checkpoint_interval` asks for, so
//! entries are placed and covered even when nobody appends or reads.
//! Without it, `kakunin_admin` integrates (a scheduled `audit_checkpoint()`,
//! or any admin reader); see `sequencer` for why appends never do.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;

static DATABASE: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(None);
static NAPTIME_MS: GucSetting<i32> = GucSetting::<i32>::new(1_000);
/// How long PostgreSQL waits before starting the worker again after it exited.
const RESTART_TIME: Duration = Duration::from_secs(5);

/// Defines the worker's settings and, when loaded at server start with a
/// database named, registers the worker.
pub fn register() {
    // SAFETY: reads a flag PostgreSQL sets while loading preloaded libraries.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    // PostgreSQL refuses to define a server-start setting later (FATAL), and
    // without preloading there is no worker for it to configure.
    if preloading {
        GucRegistry::define_string_guc(
            c"kakunin.audit_worker_database",
            c"Database whose audit log the kakunin background worker sequences.",
            c"Needs kakunin_pg in shared_preload_libraries; empty: no worker (kakunin_admin integrates, e.g. a scheduled kakunin.audit_checkpoint()).",
            &DATABASE,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    GucRegistry::define_int_guc(
        c"kakunin.audit_worker_naptime",
        c"How long the audit background worker sleeps between integrations.",
        c"At most this long passes between an entry's commit and its position while the worker runs.",
        &NAPTIME_MS,
        10,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    if preloading && worker_database().is_some() {
        BackgroundWorkerBuilder::new("kakunin audit sequencer")
            .set_type("kakunin audit sequencer")
            .set_library("kakunin_pg")
            .set_function("kakunin_audit_worker_main")
            .enable_spi_access()
            .set_start_time(pgrx::bgworkers::BgWorkerStartTime::RecoveryFinished)
            // After any exit but a clean shutdown (terminated, an error, the
            // database dropped), PostgreSQL starts it again this much later.
            .set_restart_time(Some(RESTART_TIME))
            .load();
    }
}

/// `kakunin.audit_worker_database`, if set (and so if the library was preloaded).
fn worker_database() -> Option<String> {
    DATABASE
        .get()
        .and_then(|d| d.into_string().ok())
        .filter(|d| !d.is_empty())
}

/// Whether a worker is connected to this database now.
pub fn worker_running() -> bool {
    crate::spi_plans::select_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity
                        WHERE backend_type OPERATOR(pg_catalog.=) 'kakunin audit sequencer'
                          AND datname OPERATOR(pg_catalog.=) pg_catalog.current_database())",
        &[],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn kakunin_audit_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = worker_database().unwrap_or_default();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    log!("kakunin audit sequencer started for database \"{database}\"");
    let naptime = || Duration::from_millis(NAPTIME_MS.get().max(10) as u64);
    while BackgroundWorker::wait_latch(Some(naptime())) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a worker to reread its settings.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        BackgroundWorker::transaction(|| {
            if extension_installed() {
                super::sequencer::integrate_if_free(false);
            }
        });
    }
    // Asked to stop (shutdown, pg_terminate_backend, DROP DATABASE … WITH
    // (FORCE)): exit 1, not 0, so that PostgreSQL restarts the worker after its
    // restart time; a worker that exits 0 is unregistered for good.
    // SAFETY: proc_exit runs the exit callbacks and never returns.
    unsafe { pg_sys::proc_exit(1) };
}

/// The worker may start before `CREATE EXTENSION`; until then it only waits.
fn extension_installed() -> bool {
    crate::spi_plans::select_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'kakunin_pg')",
        &[],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}
