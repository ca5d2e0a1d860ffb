//! The only door to SPI: kept plans (prepared once per backend, replanned by
//! PostgreSQL after DDL), an explicit choice of what lookups see, and a pinned
//! `search_path`.
//!
//! Every statement the extension runs goes through this module (a check in
//! `scripts/test.sh` refuses `Spi::` anywhere else), and every one runs with
//! `search_path = pg_catalog, pg_temp` whoever the caller is and whatever its
//! own path says. Types, casts, operators and functions in the extension's SQL
//! text therefore resolve to `pg_catalog` (or to `kakunin`, always written
//! out): nothing a caller creates in `pg_temp` or in a schema it puts first on
//! its path changes what that SQL means, in particular when it runs with the
//! extension owner's rights (issue: any role became superuser through a
//! `pg_temp.text` domain). `pg_temp` is listed last so that PostgreSQL does
//! not search it first for types, as it does when it is not listed.
//!
//! pgrx's SPI client runs a query read-write as soon as the transaction has an
//! xid, and a read-write SPI call bumps the command counter, which PostgreSQL
//! refuses during a parallel operation ("cannot start commands during a
//! parallel operation"). Read-only execution also gives a STABLE function the
//! outer statement's snapshot, as PostgreSQL expects.

use std::cell::Cell;
use std::ffi::CStr;
use std::thread::LocalKey;

use pgrx::pg_sys;
use pgrx::FromDatum;

pub type PlanSlot = LocalKey<Cell<pg_sys::SPIPlanPtr>>;

/// The `search_path` every statement of the extension runs under.
pub const PINNED_SEARCH_PATH: &CStr = c"pg_catalog, pg_temp";

thread_local! {
    /// Whether a [`pinned`] scope is open in this backend (nested scopes reuse it).
    static PINNED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with `search_path` set to [`PINNED_SEARCH_PATH`], the way
/// PostgreSQL applies a function's `SET search_path` clause (a new GUC nesting
/// level, popped when `f` returns). An ERROR inside `f` aborts the
/// (sub)transaction, which pops the level itself.
pub fn pinned<R>(f: impl FnOnce() -> R) -> R {
    if PINNED.get() {
        return f();
    }
    // SAFETY: the sequence fmgr_security_definer uses for a function's SET clause. GUC_ACTION_SAVE is allowed in parallel mode; the level is popped below or by the transaction abort that an ERROR causes.
    let nest_level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            PINNED_SEARCH_PATH.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        level
    };
    struct Unpin(i32);
    impl Drop for Unpin {
        fn drop(&mut self) {
            PINNED.set(false);
            // While unwinding from an ERROR the abort restores the setting.
            if !std::thread::panicking() {
                // SAFETY: pops exactly the level opened above, as fmgr_security_definer does.
                unsafe { pg_sys::AtEOXact_GUC(true, self.0) };
            }
        }
    }
    PINNED.set(true);
    let _unpin = Unpin(nest_level);
    f()
}

/// `Spi::run_with_args` under the pinned `search_path`.
pub fn run(sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Result<(), pgrx::spi::Error> {
    pinned(|| pgrx::spi::Spi::run_with_args(sql, args))
}

/// `Spi::get_one_with_args` (read-write, see [`select_one`]) under the pinned `search_path`.
pub fn get_one<T: FromDatum + pgrx::IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Result<Option<T>, pgrx::spi::Error> {
    pinned(|| pgrx::spi::Spi::get_one_with_args(sql, args))
}

/// `Spi::connect` (read-only client) under the pinned `search_path`.
pub fn connect<R>(f: impl FnOnce(&pgrx::spi::SpiClient<'_>) -> R) -> R {
    pinned(|| pgrx::spi::Spi::connect(f))
}

/// `Spi::connect_mut` (read-write client) under the pinned `search_path`.
pub fn connect_mut<R>(f: impl FnOnce(&mut pgrx::spi::SpiClient<'_>) -> R) -> R {
    pinned(|| pgrx::spi::Spi::connect_mut(f))
}

/// Which data a lookup sees.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Visibility {
    /// The running statement's snapshot, read-only: for STABLE functions and
    /// anything that may run in a parallel query.
    Statement,
    /// A fresh snapshot that includes the transaction's own earlier writes: for
    /// VOLATILE functions such as bind (never in parallel mode).
    Latest,
    /// An `INSERT … RETURNING` (the audit append), read-write.
    Write,
}

/// A column reader: `(tuple, descriptor, 1-based column)` to a Rust value.
pub struct Row {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl Row {
    /// Reads column `n` (1-based) as `T`, copying it out of SPI's memory.
    pub fn get<T: FromDatum>(&self, n: i32) -> Option<T> {
        let mut is_null = false;
        // SAFETY: tuple and desc come from SPI_tuptable of the running query and `n` is a column of that query; SPI_getbinval reports NULLs in is_null.
        unsafe {
            let datum = pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut is_null);
            T::from_polymorphic_datum(datum, is_null, pg_sys::InvalidOid)
        }
    }

    /// Column `n` (text) borrowed from the row, valid while the row is.
    pub fn text(&self, n: i32) -> Option<&str> {
        self.get::<&str>(n)
    }

    /// Column `n` (bytea) borrowed from the row, valid while the row is.
    pub fn bytes(&self, n: i32) -> Option<&[u8]> {
        self.get::<&[u8]>(n)
    }
}

/// Runs the kept plan in `slot` (preparing `sql` with `argtypes` on first use)
/// with `args`, and maps each result row with `read`.
pub fn query<R>(
    visibility: Visibility,
    slot: &'static PlanSlot,
    sql: &CStr,
    argtypes: &[pg_sys::Oid],
    args: &[pg_sys::Datum],
    read: impl FnMut(&Row) -> R,
) -> Vec<R> {
    pinned(|| query_pinned(visibility, slot, sql, argtypes, args, read))
}

fn query_pinned<R>(
    visibility: Visibility,
    slot: &'static PlanSlot,
    sql: &CStr,
    argtypes: &[pg_sys::Oid],
    args: &[pg_sys::Datum],
    mut read: impl FnMut(&Row) -> R,
) -> Vec<R> {
    let mut out = Vec::new();
    // SAFETY: SPI_connect/SPI_finish bracket the calls; datums are copied out by `read` before SPI_finish. An ERROR inside unwinds through pgrx and the transaction abort cleans up SPI. The plan is kept (SPI_keepplan) so it outlives the connection; PostgreSQL's plan cache replans it after DDL.
    unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            pgrx::error!("kakunin_pg: SPI_connect failed");
        }
        let mut plan = slot.get();
        if plan.is_null() {
            plan = pg_sys::SPI_prepare(
                sql.as_ptr(),
                argtypes.len() as i32,
                argtypes.as_ptr().cast_mut(),
            );
            if plan.is_null() || pg_sys::SPI_keepplan(plan) != 0 {
                pgrx::error!("kakunin_pg: could not prepare {}", sql.to_string_lossy());
            }
            slot.set(plan);
        }
        let read_only = visibility == Visibility::Statement || pg_sys::IsInParallelMode();
        let status = pg_sys::SPI_execute_plan(
            plan,
            args.as_ptr().cast_mut(),
            std::ptr::null(),
            read_only && visibility != Visibility::Write,
            0,
        );
        let expected = match visibility {
            Visibility::Write => status == pg_sys::SPI_OK_INSERT_RETURNING as i32,
            _ => status == pg_sys::SPI_OK_SELECT as i32,
        };
        if !expected {
            pgrx::error!("kakunin_pg: lookup failed with SPI status {status}");
        }
        let table = pg_sys::SPI_tuptable;
        for i in 0..pg_sys::SPI_processed as usize {
            let row = Row {
                tuple: *(*table).vals.add(i),
                desc: (*table).tupdesc,
            };
            out.push(read(&row));
        }
        pg_sys::SPI_finish();
    }
    out
}

/// The first column of the first row of a one-off read-only query, or None.
/// Unlike `Spi::get_one`, never assigns a transaction id (pgrx runs `get_one`
/// read-write), so it works on a hot standby and in read-only transactions.
pub fn select_one<T: pgrx::FromDatum + pgrx::IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Result<Option<T>, pgrx::spi::Error> {
    connect(|client| {
        let table = client.select(sql, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<T>()
    })
}

/// Streams the rows of the read query `sql` with `args` ($1… as (type, value);
/// None is NULL) through `read`,
/// `batch` rows at a time, until it returns `Break`, without copying them out
/// of SPI: for scans over the whole audit log. Detoasted copies live in a
/// memory context reset after every row, so memory stays flat.
pub fn scan<B>(
    visibility: Visibility,
    sql: &str,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
    batch: i64,
    read: impl FnMut(&Row) -> std::ops::ControlFlow<B>,
) -> Option<B> {
    pinned(|| scan_pinned(visibility, sql, args, batch, read))
}

fn scan_pinned<B>(
    visibility: Visibility,
    sql: &str,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
    batch: i64,
    mut read: impl FnMut(&Row) -> std::ops::ControlFlow<B>,
) -> Option<B> {
    let Ok(sql) = std::ffi::CString::new(sql) else {
        pgrx::error!("kakunin_pg: query text contains a NUL byte");
    };
    let mut row_memory = pgrx::PgMemoryContexts::new("kakunin scan row");
    // SAFETY: SPI_connect/SPI_finish bracket the cursor; rows are read before SPI_freetuptable. An ERROR unwinds through pgrx; the transaction abort cleans up SPI and the portal.
    unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            pgrx::error!("kakunin_pg: SPI_connect failed");
        }
        let read_only = visibility == Visibility::Statement;
        let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.0).collect();
        let mut values: Vec<pg_sys::Datum> = args
            .iter()
            .map(|a| a.1.unwrap_or(pg_sys::Datum::from(0)))
            .collect();
        let nulls: Vec<std::ffi::c_char> = args
            .iter()
            .map(|a| if a.1.is_some() { b' ' } else { b'n' } as std::ffi::c_char)
            .collect();
        let portal = pg_sys::SPI_cursor_open_with_args(
            std::ptr::null(),
            sql.as_ptr(),
            args.len() as i32,
            types.as_mut_ptr(),
            values.as_mut_ptr(),
            nulls.as_ptr(),
            read_only,
            0,
        );
        if portal.is_null() {
            pgrx::error!("kakunin_pg: could not open {}", sql.to_string_lossy());
        }
        let mut outcome = None;
        'fetch: loop {
            pg_sys::SPI_cursor_fetch(portal, true, batch as _);
            let table = pg_sys::SPI_tuptable;
            let rows = pg_sys::SPI_processed as usize;
            if rows == 0 || table.is_null() {
                break;
            }
            for i in 0..rows {
                let row = Row {
                    tuple: *(*table).vals.add(i),
                    desc: (*table).tupdesc,
                };
                let flow = row_memory.switch_to(|_| read(&row));
                row_memory.reset();
                if let std::ops::ControlFlow::Break(b) = flow {
                    outcome = Some(b);
                    break 'fetch;
                }
            }
            pg_sys::SPI_freetuptable(table);
        }
        pg_sys::SPI_cursor_close(portal);
        pg_sys::SPI_finish();
        outcome
    }
}

impl Row {
    /// How many columns the row has.
    pub fn width(&self) -> i32 {
        // SAFETY: desc is the row's live tuple descriptor.
        unsafe { (*self.desc).natts }
    }

    /// Name of column `n` (1-based).
    pub fn column_name(&self, n: i32) -> String {
        // SAFETY: SPI_fname returns a palloc'd copy of the name (NULL if `n` is out of range).
        unsafe {
            let name = pg_sys::SPI_fname(self.desc, n);
            if name.is_null() {
                return String::new();
            }
            CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }

    /// Type OID of column `n` (1-based).
    pub fn column_type(&self, n: i32) -> pg_sys::Oid {
        // SAFETY: SPI_gettypeid reads the live descriptor.
        unsafe { pg_sys::SPI_gettypeid(self.desc, n) }
    }

    /// Column `n` in its type's text form (its output function), None for NULL.
    pub fn output_text(&self, n: i32) -> Option<String> {
        // SAFETY: SPI_getvalue returns NULL for a NULL value or a palloc'd string.
        unsafe {
            let text = pg_sys::SPI_getvalue(self.tuple, self.desc, n);
            if text.is_null() {
                return None;
            }
            let value = CStr::from_ptr(text).to_string_lossy().into_owned();
            pg_sys::pfree(text.cast());
            Some(value)
        }
    }
}

/// What [`run_caller_sql`] did with the last statement.
pub struct CallerOutcome {
    /// Rows handed to `read` (a statement returning rows), or rows the last
    /// statement processed (any other).
    pub row_count: u64,
    /// The last statement returned more rows than were read.
    pub truncated: bool,
}

/// Runs `statements` (each a complete SQL statement written by a caller)
/// one after the other, with the caller's own `search_path`: the one SPI
/// entry point that is not pinned, for `kakunin.execute_as_agent`, which runs
/// them as a restricted role. Rows of the last statement, if it returns rows,
/// go to `read` until it has `max_rows` or returns `Break`; the others run to
/// completion with no row limit (a limit would stop a write early).
pub fn run_caller_sql<B>(
    statements: &[String],
    max_rows: u64,
    mut read: impl FnMut(&Row) -> std::ops::ControlFlow<B>,
) -> Result<CallerOutcome, B> {
    let texts: Vec<std::ffi::CString> = statements
        .iter()
        .map(|s| std::ffi::CString::new(s.as_str()).unwrap_or_default())
        .collect();
    // SAFETY: SPI_connect/SPI_finish bracket the calls; rows are read before their tuple table is freed. An ERROR unwinds through pgrx; the caller's subtransaction abort cleans up SPI and any portal.
    unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            pgrx::error!("kakunin_pg: SPI_connect failed");
        }
        let Some((last, first)) = texts.split_last() else {
            pg_sys::SPI_finish();
            return Ok(CallerOutcome {
                row_count: 0,
                truncated: false,
            });
        };
        for text in first {
            check_status(pg_sys::SPI_execute(text.as_ptr(), false, 0));
        }
        let plan = pg_sys::SPI_prepare(last.as_ptr(), 0, std::ptr::null_mut());
        if plan.is_null() {
            check_status(pg_sys::SPI_result);
        }
        let mut outcome = CallerOutcome {
            row_count: 0,
            truncated: false,
        };
        if pg_sys::SPI_is_cursor_plan(plan) {
            let portal = pg_sys::SPI_cursor_open(
                std::ptr::null(),
                plan,
                std::ptr::null_mut(),
                std::ptr::null(),
                false,
            );
            'fetch: loop {
                // One row past the limit tells whether the result was cut.
                let wanted = (max_rows + 1 - outcome.row_count).min(100);
                pg_sys::SPI_cursor_fetch(portal, true, wanted as _);
                let table = pg_sys::SPI_tuptable;
                let rows = pg_sys::SPI_processed as usize;
                if rows == 0 || table.is_null() {
                    break;
                }
                for i in 0..rows {
                    if outcome.row_count == max_rows {
                        outcome.truncated = true;
                        break 'fetch;
                    }
                    let row = Row {
                        tuple: *(*table).vals.add(i),
                        desc: (*table).tupdesc,
                    };
                    if let std::ops::ControlFlow::Break(b) = read(&row) {
                        pg_sys::SPI_cursor_close(portal);
                        pg_sys::SPI_finish();
                        return Err(b);
                    }
                    outcome.row_count += 1;
                }
                pg_sys::SPI_freetuptable(table);
            }
            pg_sys::SPI_cursor_close(portal);
        } else {
            check_status(pg_sys::SPI_execute_plan(
                plan,
                std::ptr::null_mut(),
                std::ptr::null(),
                false,
                0,
            ));
            outcome.row_count = pg_sys::SPI_processed;
        }
        pg_sys::SPI_finish();
        Ok(outcome)
    }
}

/// Raises an SPI failure code as an error (a PostgreSQL ERROR inside SPI has
/// already been raised; these are SPI's own refusals).
fn check_status(status: i32) {
    if status < 0 {
        // SAFETY: SPI_result_code_string returns a static string for any code.
        let what = unsafe { CStr::from_ptr(pg_sys::SPI_result_code_string(status)) };
        pgrx::ereport!(
            ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("the statement cannot run here ({})", what.to_string_lossy())
        );
    }
}
