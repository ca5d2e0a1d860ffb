//! The audit sequencer as a background worker: with `kakunin_pg` in
//! `shared_preload_libraries` and `kakunin.audit_worker_database` set, one
//! worker integrates committed entries every `kakunin.audit_worker_naptime`
//! and signs the checkpoint `kakunin.audit_checkpoint_interval` asks for, so
//! entries are placed and covered even when nobody appends or reads.
//! Without it, `kakunin_admin` integrates (a scheduled `audit_checkpoint()`,
//! or any admin reader); see `sequencer` for why appends never do.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::maintenance;
use crate::gucs;
use crate::pg::spi;

/// How long PostgreSQL waits before starting the worker again after it exited.
const RESTART_TIME: Duration = Duration::from_secs(5);

/// Registers the worker when the library is loaded at server start with
/// `kakunin.audit_worker_database` set.
pub fn register() {
    if gucs::preloading() && gucs::audit_worker_database().is_some() {
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

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn kakunin_audit_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = gucs::audit_worker_database().unwrap_or_default();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    log!("kakunin audit sequencer started for database \"{database}\"");
    while BackgroundWorker::wait_latch(Some(gucs::audit_worker_naptime())) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a worker to reread its settings.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        BackgroundWorker::transaction(|| {
            if extension_installed() {
                maintenance::integrate_if_free(false);
            }
        });
    }
    // SAFETY: proc_exit runs the exit callbacks and never returns. Asked to stop (shutdown, pg_terminate_backend, DROP DATABASE … WITH (FORCE)), the worker exits 1, not 0, so that PostgreSQL restarts it after its restart time; a worker that exits 0 is unregistered for good.
    unsafe { pg_sys::proc_exit(1) };
}

/// The worker may start before `CREATE EXTENSION`; until then it only waits.
fn extension_installed() -> bool {
    spi::select_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'kakunin_pg')",
        &[],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}
