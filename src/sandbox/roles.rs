//! Which roles agent SQL may run as (issue 10): one the session user may
//! become, and from which no privilege that defeats row-level security or
//! the extension can be reached.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;

use pgrx::pg_sys;

use crate::pg::error::{spi_failed, KakuninError, Result};
use crate::pg::invalidation;
use crate::pg::spi;

/// Roles whose privileges leave the sandbox: binding without proof and
/// administering the extension. Every predefined role (`pg_*`: server files,
/// reading or writing all data, signalling backends, monitoring other
/// sessions, …) is refused as well.
const FORBIDDEN: [&str; 2] = ["kakunin_gateway", "kakunin_admin"];

/// The OID of `role` if agent SQL may run as it; else a refusal naming why:
/// 42704 for a role that does not exist, 42501 for every other reason.
///
/// Refused: a role the session user may not become (`SET ROLE`'s rule); one
/// that is a superuser, has BYPASSRLS, owns a table whose row-level security
/// is not FORCEd (owners skip their own policies), or is one of [`FORBIDDEN`];
/// and one that reaches any such role through membership, transitively,
/// whether the grant has INHERIT or only SET (either lets SQL act as it).
///
/// The verdict is cached per backend until a role, a membership or a
/// relation changes (`pg::invalidation::catalog_epoch`).
pub fn check(role: &str) -> Result<pg_sys::Oid> {
    let name = CString::new(role)
        .map_err(|_| KakuninError::InvalidArgument("role must not contain a NUL byte".into()))?;
    // SAFETY: missing_ok = true returns InvalidOid instead of raising.
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    if oid == pg_sys::InvalidOid {
        return Err(KakuninError::NotFound(format!(
            "role \"{role}\" does not exist"
        )));
    }
    // SAFETY: reads the session user of this backend.
    let key = (oid, unsafe { pg_sys::GetSessionUserId() });
    let epoch = invalidation::catalog_epoch();
    if let Some(verdict) = VERDICTS.with_borrow(|v| {
        v.get(&key)
            .filter(|(e, _)| *e == epoch)
            .map(|(_, r)| r.clone())
    }) {
        return verdict.map(|()| oid).map_err(KakuninError::Privilege);
    }
    let verdict = verdict(role, oid);
    VERDICTS.with_borrow_mut(|v| {
        if v.len() >= 256 {
            v.clear();
        }
        v.insert(key, (epoch, verdict.clone()));
    });
    verdict.map(|()| oid).map_err(KakuninError::Privilege)
}

/// (role, session user) -> (catalog epoch, the refusal's message if refused).
type Verdicts = HashMap<(pg_sys::Oid, pg_sys::Oid), (u64, std::result::Result<(), String>)>;

thread_local! {
    static VERDICTS: RefCell<Verdicts> = RefCell::new(HashMap::new());
}

/// Why `role` (`oid`) may not run agent SQL, if it may not.
fn verdict(role: &str, oid: pg_sys::Oid) -> std::result::Result<(), String> {
    if !session_user_may_become(oid) {
        return Err(format!(
            "role \"{role}\" cannot run agent SQL: the session user may not become it (SET ROLE would be refused)"
        ));
    }
    let offending = spi::select_one::<String>(
        "WITH RECURSIVE reach(oid, path) AS (
             SELECT $1::oid, ARRAY[$1::oid]
           UNION
             SELECT m.roleid, r.path OPERATOR(pg_catalog.||) m.roleid
             FROM reach r JOIN pg_catalog.pg_auth_members m ON m.member OPERATOR(pg_catalog.=) r.oid
             WHERE NOT m.roleid OPERATOR(pg_catalog.=) ANY (r.path))
         SELECT CASE WHEN a.oid OPERATOR(pg_catalog.=) $1::oid THEN 'it' ELSE
                     'it can reach role ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.rolname::text)
                     OPERATOR(pg_catalog.||) ', which' END
                OPERATOR(pg_catalog.||) CASE
                  WHEN a.rolsuper THEN ' is a superuser'
                  WHEN a.rolbypassrls THEN ' has BYPASSRLS'
                  WHEN a.rolreplication THEN ' has REPLICATION'
                  WHEN a.rolcreaterole THEN ' has CREATEROLE'
                  WHEN a.rolname OPERATOR(pg_catalog.=) ANY ($2::text[]) OR pg_catalog.starts_with(a.rolname::text, 'pg_') THEN
                       ' grants privileges that leave the sandbox (binding without proof, administration, server-wide powers)'
                  ELSE ' owns table ' OPERATOR(pg_catalog.||) t.relid::pg_catalog.regclass::text
                       OPERATOR(pg_catalog.||) ', whose row-level security is not FORCEd (its owner skips its policies)'
                END
         FROM reach JOIN pg_catalog.pg_roles a ON a.oid OPERATOR(pg_catalog.=) reach.oid
         LEFT JOIN LATERAL (
             SELECT c.oid AS relid FROM pg_catalog.pg_class c
             WHERE c.relowner OPERATOR(pg_catalog.=) a.oid AND c.relrowsecurity AND NOT c.relforcerowsecurity
             ORDER BY c.oid LIMIT 1) t ON true
         WHERE a.rolsuper OR a.rolbypassrls OR a.rolreplication OR a.rolcreaterole
            OR a.rolname OPERATOR(pg_catalog.=) ANY ($2::text[]) OR pg_catalog.starts_with(a.rolname::text, 'pg_')
            OR t.relid IS NOT NULL
         ORDER BY pg_catalog.array_length(reach.path, 1), a.rolname
         LIMIT 1",
        &[oid.into(), FORBIDDEN.to_vec().into()],
    )
    .unwrap_or_else(|e| spi_failed("read the role's memberships", e));
    match offending {
        Some(reason) => Err(format!("role \"{role}\" cannot run agent SQL: {reason}")),
        None => Ok(()),
    }
}

/// Whether the session user may `SET ROLE` to `role`.
fn session_user_may_become(role: pg_sys::Oid) -> bool {
    // SAFETY: both read the role catalogs through the syscache.
    unsafe {
        let session = pg_sys::GetSessionUserId();
        #[cfg(feature = "pg15")]
        let allowed = pg_sys::is_member_of_role(session, role);
        #[cfg(not(feature = "pg15"))]
        let allowed = pg_sys::member_can_set_role(session, role);
        allowed
    }
}
