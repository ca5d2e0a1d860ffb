//! The tamper-evident audit log.
//!
//! - `sequencer`: appends (`kakunin.audit`) and integration of committed
//!   entries into the Merkle tree (`kakunin.audit_integrate`).
//! - `checkpoints`: signed tree heads and C2SP notes.
//! - `verification`: `kakunin.verify_audit_log`, proofs and evidence export.
//! - `worker`: the optional background worker that sequences and checkpoints.
//!
//! Append-only is enforced by the `kakunin.audit_guard` trigger below.

pub mod checkpoints;
pub mod sequencer;
pub mod verification;
pub mod worker;

use std::cell::Cell;

use kakunin_core::audit::EntryRef;
use kakunin_core::canonical_json;
use kakunin_core::merkle::Hash;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::spi_failed;
use crate::privilege;
use crate::spi_plans::{self, Visibility};

/// Records an administrative act (trust anchors, statuses, the webhook
/// secret, CRLs, keys made or changed by `kakunin_admin`) as an audit entry
/// whose actor is the role that did it. kakunin_admin members are not trusted
/// to forge bindings silently: whatever they change is in the log (issue 14).
pub fn admin_act(action: &str, payload: serde_json::Value) {
    let actor = privilege::current_user_name();
    privilege::as_extension_owner(|| {
        spi_plans::run(
            "INSERT INTO kakunin.audit_log (tenant_id, actor_id, action, payload)
             VALUES (NULL, $1, $2, $3::jsonb)",
            &[
                format!("role:{actor}").as_str().into(),
                action.into(),
                payload.to_string().into(),
            ],
        )
    })
    .unwrap_or_else(|e| spi_failed("record the administrative act in the audit log", e));
}

thread_local! {
    /// True only while `sequencer::integrate` writes seq and leaf_hash.
    static SEQUENCING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the sequencer's right to fill in positions.
pub fn as_sequencer<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            SEQUENCING.set(false);
        }
    }
    SEQUENCING.set(true);
    let _reset = Reset;
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
    // SAFETY: PostgreSQL passes this call's fcinfo; trigger_data checks it is a
    // trigger call, so tg_event and tg_newtuple are those of this event.
    unsafe {
        let trigger = crate::fmgr::trigger_data(fcinfo, "kakunin.audit_guard()");
        let event = (*trigger).tg_event & pg_sys::TRIGGER_EVENT_OPMASK;
        if event == pg_sys::TRIGGER_EVENT_INSERT {
            let tuple = (*trigger).tg_trigtuple;
            check_payload(tuple, (*(*trigger).tg_relation).rd_att);
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

crate::fmgr::fmgr_v1!(pg_finfo_kakunin_audit_guard);

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
    // The jsonb is detoasted before the iterator reads it.
    // SAFETY: desc/tuple are the trigger's relation and row (the caller's contract).
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

thread_local! {
    static LEAF_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    static NODE_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// Reads a perfect-subtree node of the stored tree: level 0 is an entry's leaf
/// hash, higher levels are in `kakunin.audit_tree`. One kept-plan index probe.
pub fn node_at(level: u32, idx: u64) -> Hash {
    let idx_datum = (idx as i64).into_datum().unwrap_or(pg_sys::Datum::from(0));
    let rows = if level == 0 {
        spi_plans::query(
            Visibility::Latest,
            &LEAF_PLAN,
            c"SELECT leaf_hash FROM kakunin.audit_log WHERE seq OPERATOR(pg_catalog.=) $1",
            &[pg_sys::INT8OID],
            &[idx_datum],
            |row| row.get::<Vec<u8>>(1),
        )
    } else {
        let level_datum = (level as i16)
            .into_datum()
            .unwrap_or(pg_sys::Datum::from(0));
        spi_plans::query(
            Visibility::Latest,
            &NODE_PLAN,
            c"SELECT hash FROM kakunin.audit_tree
              WHERE level OPERATOR(pg_catalog.=) $1 AND idx OPERATOR(pg_catalog.=) $2",
            &[pg_sys::INT2OID, pg_sys::INT8OID],
            &[level_datum, idx_datum],
            |row| row.get::<Vec<u8>>(1),
        )
    };
    // A missing node is a damaged tree: fail loudly rather than prove nonsense.
    rows.into_iter()
        .flatten()
        .next()
        .and_then(|h| h.try_into().ok())
        .unwrap_or_else(|| {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!("the audit tree is missing node (level {level}, index {idx})")
            );
        })
}

/// The columns [`entry_at`] reads, after a first column that is the entry's
/// position (or, for entries not yet integrated, its id).
pub const ENTRY_COLUMNS: &str =
    "ts, tenant_id, actor_id, request_id, action, payload::text, leaf_hash";

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const UNIX_TO_PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The entry in a row of `SELECT <key>, ENTRY_COLUMNS`, borrowed from the row
/// (its `seq` is the key column), and its stored leaf hash if it has one.
pub fn entry_at(row: &spi_plans::Row) -> (EntryRef<'_>, Option<&[u8]>) {
    let ts = row
        .get::<pgrx::datum::TimestampWithTimeZone>(2)
        .map_or(0, |ts| {
            pg_sys::TimestampTz::from(ts).saturating_add(UNIX_TO_PG_EPOCH_MICROS)
        });
    (
        EntryRef {
            seq: row.get::<i64>(1).unwrap_or(-1) as u64,
            ts_micros: ts,
            tenant_id: row.text(3),
            actor_id: row.text(4).unwrap_or_default(),
            request_id: row.text(5),
            action: row.text(6).unwrap_or_default(),
            payload: row.text(7).unwrap_or("null"),
        },
        row.bytes(8),
    )
}

/// Number of integrated entries (the tree size).
pub fn tree_size() -> u64 {
    spi_plans::select_one::<i64>(
        "SELECT coalesce(max(seq) + 1, 0) FROM kakunin.audit_log",
        &[],
    )
    .unwrap_or_else(|e| spi_failed("read the audit log size", e))
    .unwrap_or(0) as u64
}
