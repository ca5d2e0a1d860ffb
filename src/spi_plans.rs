//! SPI with kept plans (prepared once per backend, replanned by PostgreSQL
//! after DDL), with an explicit choice of what lookups see.
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
        // SAFETY: tuple and desc come from SPI_tuptable of the running query and
        // `n` is a column of that query; SPI_getbinval reports NULLs in is_null.
        unsafe {
            let datum = pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut is_null);
            T::from_polymorphic_datum(datum, is_null, pg_sys::InvalidOid)
        }
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
    mut read: impl FnMut(&Row) -> R,
) -> Vec<R> {
    let mut out = Vec::new();
    // An ERROR inside unwinds through pgrx and the transaction abort cleans up
    // SPI. The plan is kept (SPI_keepplan) so it outlives the connection;
    // PostgreSQL's plan cache replans it after DDL.
    // SAFETY: SPI_connect/SPI_finish bracket the calls; datums are copied out by `read` before SPI_finish.
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
    pgrx::spi::Spi::connect(|client| {
        let table = client.select(sql, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<T>()
    })
}
