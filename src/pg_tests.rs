//! `#[pg_test]`s: behaviour inside a backend that SQL cannot observe directly
//! (caches, the setting's hooks, SPI modes, user switching). The SQL-level
//! contract is tested by the pgTAP suite in tests/pgtap.

#[pgrx::pg_schema]
mod tests {
    use kakunin_core::binding::CertStatus;
    use pgrx::prelude::*;

    use crate::identity::binding as bound;
    use crate::identity::{certificate, status};
    use crate::pg::invalidation::Read;
    use crate::pg::spi::{self, Visibility};
    use crate::pg::{privilege, time};
    use crate::revocation::registry;

    const ROOT_CA: &str = include_str!("../tests/fixtures/pki/root-ca.pem");
    const AGENT_B: &str = include_str!("../tests/fixtures/pki/agent-b.pem");

    fn trust_root() {
        Spi::run_with_args(
            "SELECT kakunin.add_trust_anchor($1, 'root')",
            &[ROOT_CA.into()],
        )
        .expect("root CA is accepted");
    }

    #[pg_test]
    fn bind_updates_the_parsed_binding_and_epoch() {
        trust_root();
        assert!(bound::current().is_none());
        let before = bound::epoch();
        Spi::run_with_args("SELECT kakunin.bind_agent($1)", &[AGENT_B.into()]).expect("bind");
        let bound = bound::current().expect("a binding after bind");
        assert_eq!(bound.agent_id, "agent-b");
        assert_eq!(bound.instruments, ["TSLA"]);
        assert_eq!(bound.method(), "gateway");
        assert_ne!(bound::epoch(), before, "the assign hook bumped the epoch");
    }

    #[pg_test(error = "kakunin.binding can only be set by kakunin.bind_agent_session()")]
    fn writing_the_setting_directly_is_refused_even_for_a_superuser() {
        Spi::run("SET LOCAL kakunin.binding = '1|{}'").expect("refused");
    }

    #[pg_test]
    fn certificate_cache_notices_a_removed_anchor() {
        trust_root();
        let now = time::now_unix();
        assert!(
            certificate::check(AGENT_B, now, Visibility::Latest).is_ok(),
            "valid while trusted"
        );
        assert!(
            certificate::check(AGENT_B, now, Visibility::Latest).is_ok(),
            "served from the cache"
        );
        Spi::run("SELECT kakunin.remove_trust_anchor('root')").expect("remove");
        let refusal = certificate::check(AGENT_B, now, Visibility::Latest)
            .err()
            .expect("refused once untrusted");
        assert_eq!(refusal.reason, "no_trust_anchor");
    }

    #[pg_test]
    fn status_is_read_once_per_statement() {
        trust_root();
        Spi::run_with_args("SELECT kakunin.bind_agent($1)", &[AGENT_B.into()]).expect("bind");
        let binding = bound::current().expect("bound");
        assert_eq!(status::bound_status(&binding), CertStatus::Active);
        Spi::run_with_args(
            "SELECT kakunin.set_certificate_status($1, 'revoked', 'test')",
            &[binding.serial().unwrap_or_default().into()],
        )
        .expect("revoke");
        let issuer = match &binding.credential {
            kakunin_core::binding::Credential::Certificate { issuer, .. } => issuer.clone(),
            _ => panic!("a certificate binding"),
        };
        // Still the same top-level statement (this test), so the cached answer stands;
        // the registry itself already says revoked.
        assert_eq!(status::bound_status(&binding), CertStatus::Active);
        assert_eq!(
            registry::registry_status(
                binding.serial().unwrap_or_default(),
                &issuer,
                &binding.agent_id,
                Read::new(Visibility::Latest),
            ),
            Some(CertStatus::Revoked)
        );
    }

    #[pg_test(error = "INSERT is not allowed in a non-volatile function")]
    fn in_query_lookups_are_read_only() {
        thread_local! {
            static PLAN: std::cell::Cell<pg_sys::SPIPlanPtr> =
                const { std::cell::Cell::new(std::ptr::null_mut()) };
        }
        spi::query(
            Visibility::Statement,
            &PLAN,
            c"INSERT INTO kakunin.proof_replay VALUES ('x', 'y', now()) RETURNING 1",
            &[],
            &[],
            |_| (),
        );
    }

    #[pg_test]
    fn owner_switch_is_undone() {
        let before = privilege::current_user_name();
        Spi::run("CREATE ROLE plain_test_role").expect("role");
        Spi::run("SET ROLE plain_test_role").expect("set role");
        let inside = privilege::as_extension_owner(privilege::current_user_name);
        assert_eq!(
            inside, before,
            "the extension owner is the installing superuser"
        );
        assert_eq!(
            privilege::current_user_name(),
            "plain_test_role",
            "restored afterwards"
        );
        assert!(
            !privilege::caller_is_gateway(),
            "a plain role is not a gateway"
        );
        Spi::run("RESET ROLE").expect("reset");
    }
}
