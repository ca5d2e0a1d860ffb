//! One error type for the extension, mapped to a SQLSTATE at the boundary.
//!
//! - class 28 (`28000`): identity refusals — a certificate or proof that does not
//!   establish who the caller is; nothing is bound.
//! - class 22 (`22023`, `22004`): malformed arguments to administrative functions.
//! - `42501`: the caller lacks a privilege.
//!
//! Messages name what was wrong and never echo a secret.

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;

#[derive(Debug)]
pub enum KakuninError {
    Identity(String),
    InvalidArgument(String),
    NullArgument(&'static str),
    Privilege(String),
}

impl KakuninError {
    fn code(&self) -> PgSqlErrorCode {
        match self {
            KakuninError::Identity(_) => {
                PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
            }
            KakuninError::InvalidArgument(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            KakuninError::NullArgument(_) => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            KakuninError::Privilege(_) => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        }
    }

    fn message(&self) -> String {
        match self {
            KakuninError::Identity(m)
            | KakuninError::InvalidArgument(m)
            | KakuninError::Privilege(m) => m.clone(),
            KakuninError::NullArgument(what) => format!("{what} must not be NULL"),
        }
    }

    /// Raises the error as a PostgreSQL ERROR; the transaction aborts.
    pub fn raise(self) -> ! {
        let code = self.code();
        ereport!(ERROR, code, self.message());
    }
}

/// Unwraps `result` or raises its error.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, KakuninError> {
    fn or_raise(self) -> T {
        match self {
            Ok(value) => value,
            Err(err) => err.raise(),
        }
    }
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
