//! `#[pg_test]`s: behaviour inside a backend, for what SQL cannot see.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn nothing_bound_means_nulls() {
        assert_eq!(
            Spi::get_one::<String>("SELECT kakunin_agent_id()"),
            Ok(None)
        );
    }
}
