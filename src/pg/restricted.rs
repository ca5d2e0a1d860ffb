//! Restricted execution of caller-written SQL: while [`run`] is active, at any
//! depth (the statements themselves, the functions they call, DO blocks):
//!
//! - utility statements are refused except `EXPLAIN` (of a query), `SHOW`,
//!   `CALL` and `DO` (whose contents are checked in turn): no transaction
//!   control, `SET`, `LOAD`, `COPY`, `LISTEN`/`NOTIFY`, `PREPARE`, cursors,
//!   DDL, role changes;
//! - plans that call a function of [`DENIED_FUNCTIONS`] are refused when they
//!   are made and when they start (built-in functions bypass fmgr hooks, so
//!   the plan is searched; PL/pgSQL's simple expressions are planned but never
//!   start an executor);
//! - `run` refuses to start while the session has an open cursor (the SQL
//!   could read it with the session's rights, or replace it), and an executor
//!   or cursor still open when it returns is an error.
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
    /// Plans checked while restricted (PlannedStmt addresses): every plan made
    /// then was checked by the planner hook, so a start need not search again.
    static CHECKED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

static mut PREV_UTILITY: pg_sys::ProcessUtility_hook_type = None;
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_END: pg_sys::ExecutorEnd_hook_type = None;

/// Built-in functions refused inside, by name (in `pg_catalog`): they reach
/// other sessions (`pg_notify`, signalling), change settings (`set_config`),
/// keep effects past the call or its rollback (session advisory locks,
/// `setseed`, WAL messages, replication slots), write in a read-only
/// transaction (large objects), or show the session's own statements, the
/// caller's whole query text (`current_query`, which may hold a key) and cursors.
const DENIED_FUNCTIONS: &[&str] = &[
    "pg_notify",
    "set_config",
    "pg_cancel_backend",
    "pg_terminate_backend",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "setseed",
    "pg_logical_emit_message",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_prepared_statement",
    "pg_cursor",
    "current_query",
    "lo_creat",
    "lo_create",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_from_bytea",
    "lo_put",
    "lo_get",
    "lo_open",
    "lo_close",
    "loread",
    "lowrite",
    "lo_lseek",
    "lo_lseek64",
    "lo_tell",
    "lo_tell64",
    "lo_truncate",
    "lo_truncate64",
];

thread_local! {
    /// OID -> name of every [`DENIED_FUNCTIONS`] overload, resolved once per backend.
    static DENIED: RefCell<Option<Vec<(u32, String)>>> = const { RefCell::new(None) };
}

fn resolve_denied() {
    if DENIED.with_borrow(Option::is_some) {
        return;
    }
    let names: Vec<&str> = DENIED_FUNCTIONS.to_vec();
    let found = super::spi::connect(|client| {
        client
            .select(
                "SELECT p.oid::pg_catalog.int8, p.proname::pg_catalog.text FROM pg_catalog.pg_proc p
                 WHERE p.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                   AND p.proname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.name[])",
                None,
                &[names.into()],
            )?
            .map(|row| Ok((row.get::<i64>(1)?.unwrap_or(0) as u32, row.get::<String>(2)?.unwrap_or_default())))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| super::error::spi_failed("find the functions agent SQL may not call", e));
    DENIED.with_borrow_mut(|d| *d = Some(found));
}

/// Whether caller-written SQL is running restricted now.
pub fn active() -> bool {
    ACTIVE.get()
}

pub fn register() {
    // SAFETY: _PG_init runs once per backend before any query of ours; each hook keeps the previous one and calls it (or the standard function).
    unsafe {
        PREV_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(on_utility);
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(on_planner);
        PREV_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(on_executor_start);
        PREV_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(on_executor_end);
    }
}

/// Runs `f` restricted. Refused (42501) while the session has an open
/// cursor; a cursor or executor `f` leaves open is an error too. Not
/// reentrant: callers refuse to start while [`active`].
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ACTIVE.set(false);
            OPEN.with_borrow_mut(Vec::clear);
            CHECKED.with_borrow_mut(Vec::clear);
        }
    }
    resolve_denied();
    if open_cursors() {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "kakunin.execute_as_agent cannot run while the session has an open cursor",
            "The agent's SQL could read it with the session's rights, or replace it. Close it first (see pg_cursors; a PL/pgSQL FOR loop over a query keeps one open)."
        );
    }
    OPEN.with_borrow_mut(Vec::clear);
    ACTIVE.set(true);
    let reset = Reset;
    let result = f();
    let left_open = OPEN.with_borrow(|open| !open.is_empty());
    drop(reset);
    if left_open || open_cursors() {
        refuse("a cursor or portal opened by the query would outlive the call; close it before the query ends");
    }
    result
}

/// Whether a cursor is open in this session: a portal ready to be fetched
/// from (declared, held, opened by PL/pgSQL), which SQL or PL/pgSQL could
/// name. The portal running the caller's statement is active, not ready.
fn open_cursors() -> bool {
    // SAFETY: walks this backend's portal table without changing it.
    !unsafe { pg_sys::ThereAreNoReadyPortals() }
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
/// checked here. `EXPLAIN` only of a query (`EXPLAIN ANALYZE CREATE TABLE …
/// AS` or `… EXECUTE` would run a utility statement past this hook).
fn utility_allowed(node: *mut pg_sys::Node) -> bool {
    // SAFETY: a non-NULL node of a parse tree PostgreSQL handed us; an ExplainStmt's query is a raw statement or an analyzed Query.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_VariableShowStmt
            | pg_sys::NodeTag::T_CallStmt
            | pg_sys::NodeTag::T_DoStmt => true,
            pg_sys::NodeTag::T_ExplainStmt => {
                let inner = (*node.cast::<pg_sys::ExplainStmt>()).query;
                !inner.is_null()
                    && match (*inner).type_ {
                        pg_sys::NodeTag::T_Query => {
                            (*inner.cast::<pg_sys::Query>()).commandType
                                != pg_sys::CmdType::CMD_UTILITY
                        }
                        _ => plannable(inner),
                    }
            }
            _ => false,
        }
    }
}

/// A raw statement the planner handles (no utility).
fn plannable(node: *mut pg_sys::Node) -> bool {
    // SAFETY: a non-NULL node of the raw parse tree.
    let tag = unsafe { node.as_ref().map(|n| n.type_) };
    matches!(
        tag,
        Some(
            pg_sys::NodeTag::T_SelectStmt
                | pg_sys::NodeTag::T_InsertStmt
                | pg_sys::NodeTag::T_UpdateStmt
                | pg_sys::NodeTag::T_DeleteStmt
                | pg_sys::NodeTag::T_MergeStmt
        )
    )
}

/// Refuses a raw statement of caller-written SQL that the hooks would refuse
/// when it runs, before anything runs, so the refusal names the statement as
/// written (and transaction control, which SPI refuses before any hook sees
/// it, gets the same clear error).
pub fn check_statement(node: *mut pg_sys::Node) {
    if !plannable(node) {
        check_utility(node);
    }
}

/// Refuses `node` (a utility statement) unless allowed.
fn check_utility(node: *mut pg_sys::Node) {
    if node.is_null() || utility_allowed(node) {
        return;
    }
    // SAFETY: a non-NULL node.
    if unsafe { (*node).type_ } == pg_sys::NodeTag::T_ExplainStmt {
        refuse("EXPLAIN of anything but a query is not allowed");
    }
    // SAFETY: CreateCommandTag reads the node; GetCommandTagName returns a static string.
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
        // SAFETY: PostgreSQL passes a valid PlannedStmt for a utility command; a CallStmt's funcexpr is its analyzed call, evaluated outside any plan (ExecuteCallStmt), so its arguments are searched here.
        unsafe {
            let statement = (*pstmt).utilityStmt;
            check_utility(statement);
            if !statement.is_null() && (*statement).type_ == pg_sys::NodeTag::T_CallStmt {
                check_node((*statement.cast::<pg_sys::CallStmt>()).funcexpr.cast());
            }
        }
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

/// Refuses a plan that calls a denied function (see [`check_node`]), each
/// plan once per restricted run.
///
/// # Safety
/// `plan` must be a valid PlannedStmt.
unsafe fn check_plan(plan: *mut pg_sys::PlannedStmt) {
    if CHECKED.with_borrow(|checked| checked.contains(&(plan as usize))) {
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { check_node(plan.cast()) };
    CHECKED.with_borrow_mut(|checked| checked.push(plan as usize));
}

/// Refuses a node tree (a plan, a CALL's arguments) that calls a denied
/// function, found as a function OID in the tree's text form (every
/// expression, inlined functions included). Serializing is not
/// interruptible; a pending cancel is honoured right after it.
///
/// # Safety
/// `node` must be a valid node tree.
unsafe fn check_node(node: *mut pg_sys::Node) {
    // SAFETY: nodeToString serializes the tree into a palloc'd string, read in place and freed.
    let refused = unsafe {
        let raw = pg_sys::nodeToString(node.cast());
        let text = CStr::from_ptr(raw).to_bytes();
        let refused = denied_call(text);
        pg_sys::pfree(raw.cast());
        refused
    };
    pgrx::check_for_interrupts!();
    if let Some(name) = refused {
        refuse(&format!("{name}() is not allowed"));
    }
}

/// The first denied function a serialized node tree calls, if any.
fn denied_call(text: &[u8]) -> Option<String> {
    let called = [b":funcid ".as_slice(), b":opfuncid "]
        .into_iter()
        .flat_map(|key| {
            text.windows(key.len())
                .enumerate()
                .filter(move |(_, w)| *w == key)
                .filter_map(move |(at, _)| {
                    let digits = &text[at + key.len()..];
                    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
                    std::str::from_utf8(&digits[..end])
                        .ok()?
                        .parse::<u32>()
                        .ok()
                })
        });
    DENIED.with_borrow(|denied| {
        let denied = denied.as_deref().unwrap_or_default();
        called
            .filter_map(|oid| denied.iter().find(|(d, _)| *d == oid))
            .map(|(_, name)| name.clone())
            .next()
    })
}

#[pg_guard]
unsafe extern "C-unwind" fn on_planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the previous hook (or the standard planner) with our arguments; its result is a valid PlannedStmt.
    unsafe {
        let plan = match PREV_PLANNER {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        };
        if active() {
            check_plan(plan);
        }
        plan
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    if active() {
        // SAFETY: the QueryDesc PostgreSQL is starting holds a valid plan.
        unsafe { check_plan((*query_desc).plannedstmt) };
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
