//! One error type for the extension's refusals, mapped to a SQLSTATE at the
//! boundary.
//!
//! - class 28 (`28000`): identity refusals — a certificate, key or proof that
//!   does not establish who the caller is; nothing is bound.
//! - class 22 (`22023`, `22004`): malformed arguments to administrative functions.
//! - `42501`: the caller lacks a privilege.
//! - `42704`: a named object (a role) does not exist.
//! - `25006`: a write this server or transaction cannot make; `54000`: over a limit.
//! - `55000`: a prerequisite is missing (a setting off, an object not created yet).
//! - `2BP01`: other objects still depend on what would be dropped.
//!
//! Inner functions return [`Result`]; a `#[pg_extern]` returns [`SqlResult`]
//! and `?` turns a [`KakuninError`] into the [`ErrorReport`] pgrx raises with
//! its SQLSTATE (pgrx 0.18.1 raises an `Err(ErrorReport)` as is; any other
//! error type would become `22000`). Messages name what was wrong and never
//! echo a secret.

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

#[derive(Debug)]
pub enum KakuninError {
    Identity(String),
    InvalidArgument(String),
    NullArgument(&'static str),
    /// A named object (a role, …) that does not exist (`42704`).
    NotFound(String),
    Privilege(String),
    /// Needs a write this server or transaction cannot make (`25006`).
    ReadOnly(String),
    /// A result or input over a documented limit (`54000`).
    TooLarge(String),
    /// A prerequisite state is missing (`55000`).
    NotReady(String),
    /// Objects still depend on what would be dropped (`2BP01`).
    Dependents(String),
}

/// What inner functions return.
pub type Result<T> = std::result::Result<T, KakuninError>;

/// What a `#[pg_extern]` returns: its `Err` is raised as a PostgreSQL ERROR.
pub type SqlResult<T> = std::result::Result<T, ErrorReport>;

impl KakuninError {
    /// An identity refusal (`28000`).
    pub fn identity(message: impl Into<String>) -> Self {
        KakuninError::Identity(message.into())
    }

    /// The SQLSTATE the error is raised with.
    pub fn code(&self) -> PgSqlErrorCode {
        match self {
            KakuninError::Identity(_) => {
                PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
            }
            KakuninError::InvalidArgument(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            KakuninError::NullArgument(_) => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            KakuninError::Privilege(_) => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            KakuninError::NotFound(_) => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            KakuninError::ReadOnly(_) => PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            KakuninError::TooLarge(_) => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            KakuninError::NotReady(_) => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            KakuninError::Dependents(_) => PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
        }
    }

    fn message(&self) -> String {
        match self {
            KakuninError::Identity(m)
            | KakuninError::InvalidArgument(m)
            | KakuninError::NotFound(m)
            | KakuninError::Privilege(m)
            | KakuninError::ReadOnly(m)
            | KakuninError::TooLarge(m)
            | KakuninError::NotReady(m)
            | KakuninError::Dependents(m) => m.clone(),
            KakuninError::NullArgument(what) => format!("{what} must not be NULL"),
        }
    }
}

impl KakuninError {
    /// Raises the error as a PostgreSQL ERROR, for the plain fmgr entry points
    /// (`pg::fmgr`), which are their own boundary; everything else returns it.
    pub fn raise(self) -> ! {
        ErrorReport::from(self).report(PgLogLevel::ERROR);
        unreachable!("an ERROR does not return")
    }
}

impl From<KakuninError> for ErrorReport {
    fn from(err: KakuninError) -> Self {
        ErrorReport::new(err.code(), err.message(), "")
    }
}

/// `value`, or the [`KakuninError::NullArgument`] naming `what`.
pub fn required<T>(value: Option<T>, what: &'static str) -> Result<T> {
    value.ok_or(KakuninError::NullArgument(what))
}

/// An SPI failure inside our own bookkeeping is a bug or a broken install, not
/// bad input: report it as an internal error with the SPI detail.
pub fn spi_failed(what: &str, err: pgrx::spi::Error) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("kakunin_pg could not {what}: {err}")
    );
}
