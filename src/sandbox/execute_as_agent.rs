//! `kakunin.execute_as_agent(role, query, read_only, max_rows) → jsonb`: runs
//! an agent's SQL as `role`, under the identity bound in this transaction,
//! with no way out (issue 10; the seed's Supabase agent recipes, `003_…`).
//!
//! The query runs in a subtransaction (the call is atomic), as `role` with a
//! local user change and a security-restricted operation (so PostgreSQL
//! itself refuses any change of role or session authorization), inside a
//! settings nest level that is discarded afterwards (the session's settings
//! come back exactly), read-only when asked, and restricted by `pg::restricted`
//! (no transaction control, `SET`, `LOAD`, `COPY`, `LISTEN`/`NOTIFY`,
//! prepared statements, cursors that outlive the call, DDL). A new binding is
//! refused by `identity::binding`. Every call is an audit entry; a refused
//! one is written by a worker of its own, so it survives the rollback.

use std::ffi::{CStr, CString};

use kakunin_core::sha256_hex;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Map, Value};

use super::roles;
use crate::audit;
use crate::identity::binding;
use crate::pg::error::{required, KakuninError, Result, SqlResult};
use crate::pg::{restricted, spi};

/// The most rows `max_rows` may ask for.
const MAX_ROWS_LIMIT: i32 = 100_000;
/// The largest result returned, counted as the text of its values and column
/// names; a larger one is refused (54000) rather than built in memory.
pub const MAX_RESULT_BYTES: usize = 8 << 20;

/// What every call's audit entry says about it.
struct Call<'a> {
    agent_id: &'a str,
    tenant_id: Option<&'a str>,
    role: String,
    query_sha256: String,
    read_only: bool,
}

impl Call<'_> {
    /// The entry's payload, with how the call ended (`row_count` or `sqlstate`).
    fn payload(&self, (outcome, value): (&str, Value)) -> Value {
        let mut payload = json!({
            "role": self.role,
            "query_sha256": self.query_sha256,
            "read_only": self.read_only,
        });
        payload[outcome] = value;
        payload
    }
}

/// Declared in `sql/sandbox.sql` (its first argument is of type `name`, which
/// pgrx does not generate; a `name` datum is a NUL-terminated string).
#[pg_extern(sql = false)]
fn execute_as_agent(
    role: Option<&CStr>,
    query: Option<&str>,
    read_only: Option<bool>,
    max_rows: Option<i32>,
) -> SqlResult<pgrx::JsonB> {
    if restricted::active() {
        return Err(KakuninError::Privilege(
            "kakunin.execute_as_agent cannot be called from inside itself".into(),
        )
        .into());
    }
    let bound = binding::current().ok_or_else(|| {
        KakuninError::identity(
            "kakunin.execute_as_agent needs an identity bound earlier in this transaction (kakunin.bind_agent_session, bind_api_key, bind_agent_serial or pre_request)",
        )
    })?;
    // SAFETY: reads a backend-global flag.
    if unsafe { pg_sys::RecoveryInProgress() } {
        return Err(KakuninError::ReadOnly(
            "kakunin.execute_as_agent needs a primary: every call is recorded in the audit log, which a standby cannot write".into(),
        )
        .into());
    }
    let call = Call {
        agent_id: &bound.agent_id,
        tenant_id: bound.tenant_id.as_deref(),
        role: role
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default(),
        query_sha256: sha256_hex(query.unwrap_or_default().as_bytes()),
        read_only: read_only.unwrap_or(true),
    };
    let result = in_subtransaction(&call, || {
        let role = required(role, "role")?;
        let query = required(query, "query")?;
        let read_only = required(read_only, "read_only")?;
        let max_rows = required(max_rows, "max_rows")?;
        if !(0..=MAX_ROWS_LIMIT).contains(&max_rows) {
            return Err(KakuninError::InvalidArgument(format!(
                "max_rows must be between 0 and {MAX_ROWS_LIMIT} (got {max_rows})"
            )));
        }
        let role_oid = roles::check(&role.to_string_lossy())?;
        let statements = statements(query)?;
        as_role(role_oid, read_only, || {
            restricted::run(|| rows_as_json(&statements, max_rows as u64))
        })
    })?;
    let row_count = result["row_count"].clone();
    record(&call, call.payload(("row_count", row_count)))?;
    Ok(pgrx::JsonB(result))
}

/// Appends the call's audit entry: in this transaction when it can write
/// (atomic with what the query did), else by a worker of its own.
fn record(call: &Call<'_>, payload: Value) -> Result<()> {
    if crate::pg::privilege::writable() {
        audit::append::record(call.agent_id, call.tenant_id, "agent.execute", payload);
        return Ok(());
    }
    audit::autonomous::append(call.agent_id, call.tenant_id, "agent.execute", payload).map_err(
        |why| {
            KakuninError::ReadOnly(format!(
                "the call could not be recorded in the audit log ({why}), so its result is withheld"
            ))
        },
    )
}

/// Runs `f` in a subtransaction. Whatever `f` did is rolled back if it fails;
/// the failure (its SQLSTATE) is then recorded in the audit log by a worker of
/// its own, so the entry survives the error that reaches the caller.
fn in_subtransaction(
    call: &Call<'_>,
    f: impl FnOnce() -> Result<Value> + std::panic::UnwindSafe,
) -> Result<Value> {
    // SAFETY: the sequence PL/pgSQL uses for an exception block: remember the memory context and resource owner, begin, and restore both after the subtransaction is released or rolled back.
    let (context, owner) = unsafe {
        let saved = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(saved.0);
        saved
    };
    let restore = move || {
        // SAFETY: the context and owner saved above, still valid in the outer transaction.
        unsafe {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
        }
    };
    // Whatever `f` did is undone; the refusal (its SQLSTATE) is recorded.
    let abandon = |code: PgSqlErrorCode| {
        // SAFETY: aborts the subtransaction begun above (for a caught error, pgrx has already copied and flushed it).
        unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
        restore();
        let payload = call.payload(("sqlstate", Value::from(sqlstate(code as i32))));
        if let Err(why) =
            audit::autonomous::append(call.agent_id, call.tenant_id, "agent.execute", payload)
        {
            ereport!(
                WARNING,
                PgSqlErrorCode::ERRCODE_WARNING,
                format!("the refused call could not be recorded in the audit log: {why}")
            );
        }
    };
    let outcome = PgTryBuilder::new(f)
        .catch_others(|error| {
            abandon(match &error {
                pg_sys::panic::CaughtError::PostgresError(report)
                | pg_sys::panic::CaughtError::ErrorReport(report)
                | pg_sys::panic::CaughtError::RustPanic {
                    ereport: report, ..
                } => report.sql_error_code(),
            });
            error.rethrow()
        })
        .execute();
    match outcome {
        Ok(value) => {
            // SAFETY: commits the subtransaction begun above.
            unsafe { pg_sys::ReleaseCurrentSubTransaction() };
            restore();
            Ok(value)
        }
        Err(refusal) => {
            abandon(refusal.code());
            Err(refusal)
        }
    }
}

/// The five characters of a SQLSTATE packed by PostgreSQL's MAKE_SQLSTATE.
fn sqlstate(code: i32) -> String {
    (0..5)
        .map(|i| char::from(b'0' + ((code >> (6 * i)) & 0x3F) as u8))
        .collect()
}

/// Runs `f` as `role`: a local user change inside a security-restricted
/// operation (PostgreSQL refuses `SET ROLE`, `SET SESSION AUTHORIZATION` and
/// `set_config('role', …)` there), within a settings nest level that is
/// discarded afterwards, and read-only if `read_only`. An error leaves the
/// restoring to the subtransaction's abort, which restores all three.
fn as_role<R>(role: pg_sys::Oid, read_only: bool, f: impl FnOnce() -> R) -> R {
    let (mut user, mut context) = (pg_sys::InvalidOid, 0);
    // SAFETY: reads the current user, context and read-only flag into locals, then switches as a SECURITY DEFINER call does, adding the restricted-operation bit. The read-only flag is the transaction state `SET TRANSACTION READ ONLY` sets; a subtransaction restores it when it ends (PostgreSQL 17 and later refuse to save it in a nest level).
    let (level, was_read_only) = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(
            role,
            context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
        let was_read_only = pg_sys::XactReadOnly;
        if read_only {
            pg_sys::XactReadOnly = true;
        }
        (pg_sys::NewGUCNestLevel(), was_read_only)
    };
    let result = f();
    // SAFETY: discards every setting changed at our level (restoring the session's), then restores the read-only flag, user and context.
    unsafe {
        pg_sys::AtEOXact_GUC(false, level);
        pg_sys::XactReadOnly = was_read_only;
        pg_sys::SetUserIdAndSecContext(user, context);
    }
    result
}

/// Whether a string in `doc` holds U+0000.
fn holds_nul(doc: &Value) -> bool {
    match doc {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Splits `query` into its statements (PostgreSQL's own parser), refusing
/// before anything runs a statement that the restrictions would refuse, so
/// the error names what the caller wrote.
fn statements(query: &str) -> Result<Vec<String>> {
    let text = CString::new(query)
        .map_err(|_| KakuninError::InvalidArgument("query must not contain a NUL byte".into()))?;
    let mut statements = Vec::new();
    // SAFETY: pg_parse_query returns a List of RawStmt in the current memory context (a syntax error raises); locations are byte offsets into `text`.
    unsafe {
        let list = pgrx::PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(text.as_ptr()));
        for raw in list.iter_ptr() {
            restricted::check_statement((*raw).stmt);
            let start = (*raw).stmt_location.max(0) as usize;
            let end = match (*raw).stmt_len {
                0 => query.len(),
                len => start + len as usize,
            };
            statements.push(query.get(start..end).unwrap_or_default().to_string());
        }
    }
    if statements.is_empty() {
        return Err(KakuninError::InvalidArgument(
            "query holds no statement".into(),
        ));
    }
    Ok(statements)
}

/// Runs the statements and turns the rows of the last into JSON.
fn rows_as_json(statements: &[String], max_rows: u64) -> Result<Value> {
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let outcome = spi::run_caller_sql(statements, max_rows, |row| {
        let mut object = Map::new();
        for n in 1..=row.width() {
            let name = row.column_name(n);
            let text = row.output_text(n);
            bytes += name.len() + text.as_ref().map_or(4, String::len);
            if bytes > MAX_RESULT_BYTES {
                return std::ops::ControlFlow::Break(KakuninError::TooLarge(format!(
                    "the result is larger than {} MiB; ask for fewer rows or columns",
                    MAX_RESULT_BYTES >> 20
                )));
            }
            object.insert(name, json_value(row.column_type(n), text));
        }
        rows.push(Value::Object(object));
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(json!({
        "rows": rows,
        "row_count": outcome.row_count,
        "truncated": outcome.truncated,
    }))
}

/// A value as JSON: booleans and finite numbers as such, json and jsonb as
/// the document (in its text form if it holds a `\u0000`, which the jsonb
/// result cannot carry), NULL as null, anything else in its type's text form.
fn json_value(type_oid: pg_sys::Oid, text: Option<String>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    match type_oid {
        pg_sys::BOOLOID => Value::Bool(text == "t"),
        pg_sys::INT2OID
        | pg_sys::INT4OID
        | pg_sys::INT8OID
        | pg_sys::OIDOID
        | pg_sys::FLOAT4OID
        | pg_sys::FLOAT8OID
        | pg_sys::NUMERICOID => serde_json::from_str::<serde_json::Number>(&text)
            .map(Value::Number)
            .unwrap_or(Value::String(text)),
        pg_sys::JSONOID | pg_sys::JSONBOID => serde_json::from_str::<Value>(&text)
            .ok()
            .filter(|doc| !holds_nul(doc))
            .unwrap_or(Value::String(text)),
        _ => Value::String(text),
    }
}
