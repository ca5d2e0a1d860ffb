//! For policy authors (issue 12): what helps write and test policies that ask
//! kakunin_pg. The advisor is SQL only (`sql/advisor.sql`).
//!
//! - `test_ca`: a per-database test CA (`kakunin.enable_test_ca`, `…issue_test_certificate`, `…disable_test_ca`).
//! - `adopt_sql_helpers`: `kakunin.adopt_sql_helpers()`, from the seed's SQL helpers to the native ones.

pub mod adopt_sql_helpers;
pub mod test_ca;
