//! Restricted execution of caller-written SQL: while [`run`] is active, at any
//! depth (the statements themselves, the functions they call, DO blocks):
//!
//! - utility statements are refused except `EXPLAIN`, `SHOW`, `CALL` and `DO`
//!   (whose contents are checked in turn): no transaction control, `SET`,
//!   `LOAD`, `COPY`, `LISTEN`/`NOTIFY`, `PREPARE`, cursors, DDL, role changes;
//! - plans that call `pg_notify()` or `set_config()` are refused when they
//!   start (built-in functions bypass fmgr hooks, so the plan is searched);
//! - an executor still open when `run` returns (a cursor that would outlive
//!   the call) is an error.
//!
//! Role and session-authorization changes by any route (`SET ROLE`, `RESET
//! ROLE`, `set_config('role', …)`) are refused by PostgreSQL itself inside a
//! local user change, which is how callers switch to the role they restrict.
//! The hooks are installed by `_PG_init` in every backend that loads the
//! library; outside `run` each costs one thread-local read.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    /// Executors started while restricted and not yet ended (QueryDesc addresses).
    static OPEN: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

static mut PREV_UTILITY: pg_sys::ProcessUtility_hook_type = None;
static mut PREV_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_END: pg_sys::ExecutorEnd_hook_type = None;

/// OIDs of built-in functions refused inside: `pg_notify(text, text)` reaches
/// other sessions; `set_config(text, text, boolean)` changes settings. Both
/// OIDs are fixed in PostgreSQL's catalog (`pg_proc.dat`).
const DENIED_FUNCTIONS: [(u32, &str); 2] = [(3036, "pg_notify"), (2078, "set_config")];

/// Whether caller-written SQL is running restricted now.
pub fn active() -> bool {
    ACTIVE.get()
}

pub fn register() {
    // SAFETY: _PG_init runs once per backend before any query of ours; each
    // hook keeps the previous one and calls it (or the standard function).
    unsafe {
        PREV_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(on_utility);
        PREV_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(on_executor_start);
        PREV_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(on_executor_end);
    }
}

/// Runs `f` restricted. An executor `f` leaves open is an error (42501): a
/// cursor must not outlive the restricted call. Not reentrant: callers refuse
/// to start while [`active`].
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ACTIVE.set(false);
            OPEN.with_borrow_mut(Vec::clear);
        }
    }
    OPEN.with_borrow_mut(Vec::clear);
    ACTIVE.set(true);
    let _reset = Reset;
    let result = f();
    if OPEN.with_borrow(|open| !open.is_empty()) {
        refuse("a cursor or portal opened by the query would outlive the call; close it before the query ends");
    }
    result
}

fn refuse(what: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("{what} inside kakunin.execute_as_agent"),
        "The agent's SQL runs as one atomic, restricted step of the caller's transaction."
    );
}

/// Utility statements allowed inside: they read, or run code that is itself
/// checked here.
fn utility_allowed(node: *mut pg_sys::Node) -> bool {
    // SAFETY: a non-NULL node of a parse tree PostgreSQL handed us.
    let tag = unsafe { (*node).type_ };
    matches!(
        tag,
        pg_sys::NodeTag::T_ExplainStmt
            | pg_sys::NodeTag::T_VariableShowStmt
            | pg_sys::NodeTag::T_CallStmt
            | pg_sys::NodeTag::T_DoStmt
    )
}

/// Refuses a raw statement of caller-written SQL that the hooks would refuse
/// when it runs, before anything runs, so the refusal names the statement as
/// written (and transaction control, which SPI refuses before any hook sees
/// it, gets the same clear error).
pub fn check_statement(node: *mut pg_sys::Node) {
    // SAFETY: a non-NULL node of the raw parse tree.
    let tag = unsafe { node.as_ref().map(|n| n.type_) };
    let plannable = matches!(
        tag,
        Some(
            pg_sys::NodeTag::T_SelectStmt
                | pg_sys::NodeTag::T_InsertStmt
                | pg_sys::NodeTag::T_UpdateStmt
                | pg_sys::NodeTag::T_DeleteStmt
                | pg_sys::NodeTag::T_MergeStmt
        )
    );
    if !plannable {
        check_utility(node);
    }
}

/// Refuses `node` (a utility statement) unless allowed.
fn check_utility(node: *mut pg_sys::Node) {
    if node.is_null() || utility_allowed(node) {
        return;
    }
    // SAFETY: CreateCommandTag reads the node; GetCommandTagName returns a
    // static string.
    let name = unsafe {
        CStr::from_ptr(pg_sys::GetCommandTagName(pg_sys::CreateCommandTag(node)))
            .to_string_lossy()
            .into_owned()
    };
    refuse(&format!("{name} is not allowed"));
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn on_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    if active() {
        // SAFETY: PostgreSQL passes a valid PlannedStmt for a utility command.
        check_utility(unsafe { (*pstmt).utilityStmt });
    }
    // SAFETY: the previous hook (or the standard function) with our arguments.
    unsafe {
        match PREV_UTILITY {
            Some(prev) => prev(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    if active() {
        // SAFETY: the QueryDesc PostgreSQL is starting; nodeToString
        // serializes its plan (every expression, inlined functions included)
        // into a palloc'd string in the current context.
        let plan = unsafe {
            let text = pg_sys::nodeToString((*query_desc).plannedstmt.cast());
            let plan = CStr::from_ptr(text).to_string_lossy().into_owned();
            pg_sys::pfree(text.cast());
            plan
        };
        for (oid, name) in DENIED_FUNCTIONS {
            if plan.contains(&format!(":funcid {oid} ")) {
                refuse(&format!("{name}() is not allowed"));
            }
        }
        OPEN.with_borrow_mut(|open| open.push(query_desc as usize));
    }
    // SAFETY: the previous hook (or the standard function) with our arguments.
    unsafe {
        match PREV_START {
            Some(prev) => prev(query_desc, eflags),
            None => pg_sys::standard_ExecutorStart(query_desc, eflags),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_executor_end(query_desc: *mut pg_sys::QueryDesc) {
    OPEN.with_borrow_mut(|open| open.retain(|q| *q != query_desc as usize));
    // SAFETY: the previous hook (or the standard function) with our argument.
    unsafe {
        match PREV_END {
            Some(prev) => prev(query_desc),
            None => pg_sys::standard_ExecutorEnd(query_desc),
        }
    }
}
