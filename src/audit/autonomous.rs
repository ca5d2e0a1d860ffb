//! Appending an entry that must survive the caller's rollback: the refusal of
//! an agent's SQL is recorded although the error that reports it aborts the
//! caller's transaction. A short-lived background worker, started for the
//! purpose, inserts the entry in a transaction of its own and exits; the
//! caller waits for it (cancellably; the worker's own statement and lock
//! timeouts bound the wait).
//!
//! The entry travels in a dynamic shared memory segment:
//! `[status: u8][database: u32][length: u32][JSON {actor, tenant, action, payload}]`;
//! the worker sets `status` to 1 once its transaction committed.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::pg::spi;

const HEADER: usize = 9;
/// The worker's statement and lock timeout.
const WORKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Appends (actor, tenant, action, payload) in its own transaction and waits
/// until it committed. `Err` says why it could not (no free worker slot, a
/// standby, the worker failed): the caller decides what that means.
pub fn append(
    actor: &str,
    tenant: Option<&str>,
    action: &str,
    payload: Value,
) -> std::result::Result<(), String> {
    // SAFETY: reads a backend-global flag.
    if unsafe { pg_sys::RecoveryInProgress() } {
        return Err("a standby cannot write the audit log".into());
    }
    let body = json!({"actor": actor, "tenant": tenant, "action": action, "payload": payload})
        .to_string()
        .into_bytes();
    // SAFETY: a new segment of the size asked for, owned by this transaction's resource owner (detached at its end if we error first); the header and body are written inside its bounds.
    let segment = unsafe {
        let segment = pg_sys::dsm_create(HEADER + body.len(), 0);
        let base = pg_sys::dsm_segment_address(segment).cast::<u8>();
        *base = 0;
        std::ptr::copy_nonoverlapping(
            pg_sys::MyDatabaseId.to_u32().to_ne_bytes().as_ptr(),
            base.add(1),
            4,
        );
        std::ptr::copy_nonoverlapping((body.len() as u32).to_ne_bytes().as_ptr(), base.add(5), 4);
        std::ptr::copy_nonoverlapping(body.as_ptr(), base.add(HEADER), body.len());
        segment
    };
    // SAFETY: the segment created above.
    let handle = unsafe { pg_sys::dsm_segment_handle(segment) };
    let outcome = BackgroundWorkerBuilder::new("kakunin audit append")
        .set_type("kakunin audit append")
        .set_library("kakunin_pg")
        .set_function("kakunin_audit_append_main")
        .enable_spi_access()
        .set_argument(Some(pg_sys::Datum::from(handle as usize)))
        // SAFETY: MyProcPid is set at backend start.
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .set_restart_time(None)
        .load_dynamic()
        .map_err(|_| "no background worker slot is free (max_worker_processes)".to_string())
        .and_then(|worker| {
            // A cancel pending from the statement that failed (its timeout, say)
            // must not cut the wait short and lose the record: interrupts are
            // held until the worker ends, which its own statement and lock
            // timeouts bound (or its exit, or the postmaster's death).
            struct Held;
            impl Drop for Held {
                fn drop(&mut self) {
                    // SAFETY: undoes the increment below.
                    unsafe { pg_sys::InterruptHoldoffCount -= 1 };
                }
            }
            // SAFETY: HOLD_INTERRUPTS on this backend's counter; `Held` undoes it (RESUME_INTERRUPTS) however the wait ends.
            unsafe { pg_sys::InterruptHoldoffCount += 1 };
            let _held = Held;
            worker
                .wait_for_shutdown()
                .map_err(|status| format!("the audit worker did not finish ({status:?})"))
        })
        .and_then(|()| {
            // SAFETY: the segment is still attached; the worker wrote its status byte.
            let committed = unsafe { *pg_sys::dsm_segment_address(segment).cast::<u8>() == 1 };
            committed
                .then_some(())
                .ok_or_else(|| "the audit worker could not write the entry".to_string())
        });
    // SAFETY: detaches the segment created above; nothing refers to it any more.
    unsafe { pg_sys::dsm_detach(segment) };
    outcome
}

/// The worker: reads the entry, inserts it as the bootstrap superuser (the
/// extension owner's peer), marks the segment, exits.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn kakunin_audit_append_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGTERM);
    // SAFETY: the handle the leader passed; dsm_attach returns NULL if the segment is gone (the leader stopped waiting).
    let segment = unsafe { pg_sys::dsm_attach(arg.value() as pg_sys::dsm_handle) };
    if segment.is_null() {
        return;
    }
    // SAFETY: the leader wrote a header and `length` bytes of JSON.
    let (base, database, body) = unsafe {
        let base = pg_sys::dsm_segment_address(segment).cast::<u8>();
        let mut word = [0u8; 4];
        std::ptr::copy_nonoverlapping(base.add(1), word.as_mut_ptr(), 4);
        let database = u32::from_ne_bytes(word);
        std::ptr::copy_nonoverlapping(base.add(5), word.as_mut_ptr(), 4);
        let length = u32::from_ne_bytes(word) as usize;
        let body = std::slice::from_raw_parts(base.add(HEADER), length).to_vec();
        (base, database, body)
    };
    let entry: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // SAFETY: connects this worker to the leader's database as the bootstrap superuser.
    unsafe {
        pg_sys::BackgroundWorkerInitializeConnectionByOid(
            pg_sys::Oid::from(database),
            pg_sys::InvalidOid,
            0,
        )
    };
    let timeout = format!("{}", WORKER_TIMEOUT.as_millis());
    BackgroundWorker::transaction(|| {
        spi::run(
            "SELECT pg_catalog.set_config('statement_timeout', $1, true),
                    pg_catalog.set_config('lock_timeout', $1, true)",
            &[timeout.as_str().into()],
        )
        .and_then(|()| {
            super::guard::as_extension(|| {
                spi::run(
                    "INSERT INTO kakunin.audit_log (tenant_id, actor_id, action, payload)
                 VALUES ($1, $2, $3, $4::jsonb)",
                    &[
                        entry["tenant"].as_str().into(),
                        entry["actor"].as_str().unwrap_or("unknown").into(),
                        entry["action"].as_str().unwrap_or("unknown").into(),
                        entry["payload"].to_string().into(),
                    ],
                )
            })
        })
        .unwrap_or_else(|e| pgrx::error!("kakunin audit append: {e}"));
    });
    // SAFETY: the leader is waiting for this byte; then the segment is released.
    unsafe {
        *base = 1;
        pg_sys::dsm_detach(segment);
    }
}
