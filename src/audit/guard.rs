//! The `kakunin.audit_guard()` trigger on the audit tables: append-only for
//! every role including their owner (only the sequencer fills in positions),
//! and no payload that verification could not read back.

use std::cell::Cell;

use kakunin_core::canonical_json;
use pgrx::pg_sys;
use pgrx::prelude::*;

thread_local! {
    /// True only while the sequencer writes seq and leaf_hash.
    static SEQUENCING: Cell<bool> = const { Cell::new(false) };
    /// True only while the extension itself appends (`append::record`).
    static EXTENSION_APPENDS: Cell<bool> = const { Cell::new(false) };
}

/// Actions only the extension writes: an agent's own appends must not be
/// mistaken for the record of its calls (issue 10).
pub const RESERVED_ACTIONS: [&str; 1] = ["agent.execute"];

/// Runs `f` with the extension's right to append [`RESERVED_ACTIONS`].
pub fn as_extension<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&EXTENSION_APPENDS, f)
}

/// Runs `f` with the sequencer's right to fill in positions.
pub fn as_sequencer<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&SEQUENCING, f)
}

/// Runs `f` with `flag` set, cleared afterwards however `f` ends.
fn with_flag<R>(flag: &'static std::thread::LocalKey<Cell<bool>>, f: impl FnOnce() -> R) -> R {
    struct Reset(&'static std::thread::LocalKey<Cell<bool>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            self.0.set(false);
        }
    }
    flag.set(true);
    let _reset = Reset(flag);
    f()
}

/// Trigger `kakunin.audit_guard()`: refuses UPDATE, DELETE and TRUNCATE on the
/// audit tables, for every role including their owner; only the sequencer may
/// UPDATE (to fill seq and leaf_hash of integrated entries).
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_audit_guard(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: PostgreSQL passes this call's fcinfo; trigger_data checks it is a trigger call, so tg_event and tg_newtuple are those of this event.
    unsafe {
        let trigger = crate::pg::fmgr::trigger_data(fcinfo, "kakunin.audit_guard()");
        let event = (*trigger).tg_event & pg_sys::TRIGGER_EVENT_OPMASK;
        if event == pg_sys::TRIGGER_EVENT_INSERT {
            let tuple = (*trigger).tg_trigtuple;
            let desc = (*(*trigger).tg_relation).rd_att;
            check_action(tuple, desc);
            check_payload(tuple, desc);
            return pg_sys::Datum::from(tuple);
        }
        if event == pg_sys::TRIGGER_EVENT_UPDATE && SEQUENCING.get() {
            return pg_sys::Datum::from((*trigger).tg_newtuple);
        }
        let what = match event {
            pg_sys::TRIGGER_EVENT_UPDATE => "UPDATE",
            pg_sys::TRIGGER_EVENT_DELETE => "DELETE",
            pg_sys::TRIGGER_EVENT_TRUNCATE => "TRUNCATE",
            _ => "change",
        };
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("the audit log is append-only: {what} is not allowed"),
            "Entries, tree nodes and checkpoints can only be added."
        );
    }
}

crate::pg::fmgr::fmgr_v1!(pg_finfo_kakunin_audit_guard);

/// Refuses an entry whose action is reserved, unless the extension appends it.
///
/// # Safety
/// `tuple` must be a live row of `desc`, a row of `kakunin.audit_log`.
unsafe fn check_action(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) {
    if EXTENSION_APPENDS.get() {
        return;
    }
    // SAFETY: the trigger's row and descriptor; SPI_getvalue returns a palloc'd string or NULL.
    let action = unsafe {
        let column = pg_sys::SPI_fnumber(desc, c"action".as_ptr());
        let value = pg_sys::SPI_getvalue(tuple, desc, column);
        (column > 0 && !value.is_null()).then(|| {
            std::ffi::CStr::from_ptr(value)
                .to_string_lossy()
                .into_owned()
        })
    };
    // Look-alikes too: case and surrounding spaces make no other action.
    let reserved = |a: &String| {
        RESERVED_ACTIONS
            .iter()
            .any(|r| a.trim().eq_ignore_ascii_case(r))
    };
    if let Some(action) = action.filter(reserved) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "audit action \"{action}\" is reserved for kakunin.execute_as_agent's own record"
            )
        );
    }
}

/// The largest payload an entry may carry (its jsonb, in bytes): every
/// verification, callable by anyone, reads every entry.
const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// Refuses a payload larger than [`MAX_PAYLOAD_BYTES`] or nested deeper than verification and the offline
/// verifier accept ([`canonical_json::MAX_DEPTH`]): an entry that cannot be
/// checked must never enter the log (issue 14: one such entry crashed every
/// later verification). Walks the jsonb with PostgreSQL's iterator, no recursion.
///
/// # Safety
/// `tuple` must be a live row of `desc`, a row of `kakunin.audit_log`.
unsafe fn check_payload(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) {
    // SAFETY: desc/tuple are the trigger's relation and row (the caller's contract); the jsonb is detoasted before the iterator reads it.
    let (depth, bytes) = unsafe {
        let column = pg_sys::SPI_fnumber(desc, c"payload".as_ptr());
        let mut is_null = false;
        let datum = pg_sys::SPI_getbinval(tuple, desc, column, &mut is_null);
        if column <= 0 || is_null {
            return;
        }
        let detoasted = pg_sys::pg_detoast_datum(datum.cast_mut_ptr());
        let bytes = pgrx::varlena::varsize_any(detoasted);
        let jsonb = detoasted.cast::<pg_sys::Jsonb>();
        let mut it = pg_sys::JsonbIteratorInit(&mut (*jsonb).root);
        let mut value: pg_sys::JsonbValue = std::mem::zeroed();
        let (mut depth, mut deepest) = (0usize, 0usize);
        loop {
            use pg_sys::JsonbIteratorToken::*;
            match pg_sys::JsonbIteratorNext(&mut it, &mut value, false) {
                WJB_DONE => break,
                WJB_BEGIN_ARRAY | WJB_BEGIN_OBJECT => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                WJB_END_ARRAY | WJB_END_OBJECT => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        (deepest, bytes)
    };
    if bytes > MAX_PAYLOAD_BYTES {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "audit payload is {bytes} bytes; at most {MAX_PAYLOAD_BYTES} are accepted"
            ),
            "Store large documents elsewhere and audit their digest: every verification reads every entry."
        );
    }
    if depth > canonical_json::MAX_DEPTH {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "audit payload nests arrays and objects {depth} levels deep; at most {} are accepted",
                canonical_json::MAX_DEPTH
            ),
            "Flatten the payload: every entry must be verifiable by kakunin.verify_audit_log() and verify-evidence."
        );
    }
}
