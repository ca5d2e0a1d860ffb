//! The test kit (issue 12): a per-database test CA, so a policy author's
//! pgTAP test binds an agent without openssl. `kakunin.enable_test_ca`,
//! `kakunin.issue_test_certificate`, `kakunin.disable_test_ca`.
//!
//! Superusers only, and creating or using the CA only while the superuser-only
//! setting `kakunin.allow_test_ca` is on (its anchor is trusted only then too,
//! see `revocation::trust::anchors`): the CA's private key lives in
//! `kakunin.test_ca`, readable by superusers and the extension owner alone.

use kakunin_core::certificate_input::to_pem;
use kakunin_core::scope::FinancialScope;
use kakunin_core::test_ca::{self, AgentRequest, IssueError, TestCa};
use pgrx::prelude::*;
use serde_json::json;

use crate::pg::error::{required, spi_failed, KakuninError, Result, SqlResult};
use crate::pg::jsonb::JsonbArg;
use crate::pg::{privilege, spi, time};
use crate::revocation::trust;

/// The trust-anchor name of the test CA.
const ANCHOR_NAME: &str = "kakunin-test-ca";

fn allowed(function: &str) -> Result<()> {
    privilege::require_superuser(function)?;
    if !crate::gucs::allow_test_ca() {
        return Err(KakuninError::NotReady(format!(
            "{function} is refused: test CAs are off in this database; a superuser may SET kakunin.allow_test_ca = on in a test database"
        )));
    }
    Ok(())
}

fn issue_failed(e: IssueError) -> KakuninError {
    match e {
        IssueError::BadArgument(m) => KakuninError::InvalidArgument(m),
        IssueError::Internal(m) => KakuninError::NotReady(format!("the test CA cannot sign: {m}")),
    }
}

/// This database's test CA, if one was enabled.
fn load() -> Option<TestCa> {
    spi::connect(|client| {
        let table = client.select(
            "SELECT t.private_key, a.certificate
             FROM kakunin.test_ca t JOIN kakunin.trust_anchors a ON a.name OPERATOR(pg_catalog.=) t.anchor_name",
            Some(1),
            &[],
        )?;
        if table.is_empty() {
            return Ok(None);
        }
        let row = table.first();
        Ok(row
            .get::<Vec<u8>>(1)?
            .zip(row.get::<Vec<u8>>(2)?)
            .map(|(pkcs8, certificate)| TestCa { pkcs8, certificate }))
    })
    .unwrap_or_else(|e| spi_failed("read kakunin.test_ca", e))
}

/// `kakunin.enable_test_ca() → text`: creates this database's test CA (a
/// P-256 key that never leaves the database), trusts it as a test anchor, and
/// returns its certificate (PEM). Idempotent: a second call returns the same
/// certificate.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn enable_test_ca() -> SqlResult<String> {
    allowed("kakunin.enable_test_ca")?;
    if let Some(ca) = load() {
        return Ok(to_pem(&ca.certificate));
    }
    let name = format!("kakunin test CA of database {}", privilege::database_name());
    let ca = test_ca::create(&name, time::now_unix()).map_err(issue_failed)?;
    trust::insert_anchor(ANCHOR_NAME, &ca.certificate, true)?;
    privilege::as_extension_owner(|| {
        spi::run(
            "INSERT INTO kakunin.test_ca (anchor_name, private_key) VALUES ($1, $2)",
            &[ANCHOR_NAME.into(), ca.pkcs8.as_slice().into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("write kakunin.test_ca", e));
    Ok(to_pem(&ca.certificate))
}

/// `kakunin.issue_test_certificate(agent_id, tenant_id, scope, valid_for) → text`:
/// an agent certificate in the project's profile signed by the test CA,
/// followed by the CA's certificate (a PEM chain for `kakunin.bind_agent`).
/// `valid_for` counts a month as 30 days; it must be positive and end before
/// the CA expires. The subject key is thrown away: bind without a proof, as a
/// superuser or `kakunin_gateway` member.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn issue_test_certificate(
    agent_id: Option<&str>,
    tenant_id: default!(Option<&str>, "NULL"),
    scope: default!(Option<JsonbArg>, "'{}'"),
    valid_for: default!(Option<pgrx::datum::Interval>, "'1 hour'"),
) -> SqlResult<String> {
    allowed("kakunin.issue_test_certificate")?;
    let agent_id = required(agent_id, "agent_id")?;
    let scope = required(scope, "scope")?;
    let valid_for = required(valid_for, "valid_for")?;
    let scope =
        FinancialScope::from_json(&scope.0.to_string()).map_err(KakuninError::InvalidArgument)?;
    let ca = load().ok_or_else(|| {
        KakuninError::NotReady(
            "this database has no test CA: call kakunin.enable_test_ca() first".into(),
        )
    })?;
    let now = time::now_unix();
    let seconds = i64::try_from(valid_for.as_micros().div_euclid(1_000_000)).unwrap_or(i64::MAX);
    let request = AgentRequest {
        agent_id,
        tenant_id,
        scope: &scope,
        not_after: now.saturating_add(seconds),
    };
    let issued = test_ca::issue(&ca, &request, now).map_err(issue_failed)?;
    crate::audit::append::admin_act(
        "kakunin.test_ca.certificate_issued",
        json!({"agent_id": agent_id, "tenant_id": tenant_id, "serial": issued.serial}),
    );
    Ok(to_pem(&issued.der) + &to_pem(&ca.certificate))
}

/// `kakunin.disable_test_ca() → boolean`: removes the test CA, its key and
/// every test anchor; true if there was one. Allowed whatever
/// `kakunin.allow_test_ca` says, so a database that should not have one can
/// always be cleaned.
#[pg_extern(schema = "kakunin", volatile, parallel_unsafe)]
fn disable_test_ca() -> SqlResult<bool> {
    privilege::require_superuser("kakunin.disable_test_ca")?;
    Ok(!trust::remove_anchors(None).is_empty())
}
