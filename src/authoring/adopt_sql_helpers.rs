//! `kakunin.adopt_sql_helpers(from_schema, dry_run)` (issue 12): moves a
//! database built as the seed's integration guide describes (SQL functions
//! `kakunin_agent_id()` … reading `current_setting('kakunin.…')`, and
//! policies calling them) onto the native helpers, in one transaction.
//!
//! Which policies call the old functions, and whether anything else does, is
//! read from `pg_depend` (and, for SQL and PL/pgSQL bodies, which it does not
//! track, from their text); each policy's expressions are deparsed
//! (`pg_get_expr`, every name qualified under the pinned `search_path`),
//! repointed token by token (`kakunin_core::sql_calls`) and set again with
//! ALTER POLICY, run as the table's owner in a security-restricted operation
//! (re-parsing a constant runs its domain's CHECK, which the owner wrote).
//! Afterwards PostgreSQL's own records must show each policy calling exactly
//! what it called before with every old function replaced by its native
//! twin, before the functions are dropped (RESTRICT).

use std::ffi::CStr;

use kakunin_core::sql_calls;
use pgrx::prelude::*;
use serde_json::json;

use pgrx::pg_sys::panic::ErrorReport;

use crate::pg::error::{required, spi_failed, KakuninError, Result};
use crate::pg::{privilege, spi};

/// The native helpers a SQL function of the same name can stand in for.
const HELPERS: &[&str] = &[
    "kakunin_agent_id",
    "kakunin_active_agent_id",
    "kakunin_cert_status",
    "kakunin_tenant_id",
    "kakunin_cert_serial",
    "kakunin_permitted_instruments",
    "kakunin_permitted_venues",
];

struct OldFunction {
    oid: pg_sys::Oid,
    /// The extension's helper of the same name.
    native: pg_sys::Oid,
    name: String,
    signature: String,
    source: String,
}

struct Policy {
    oid: pg_sys::Oid,
    /// The table's owner, who runs the rewrite.
    owner: pg_sys::Oid,
    /// Every function the policy calls (pg_depend), sorted.
    calls: Vec<pg_sys::Oid>,
    /// `policy <name> on <table>`, for the result.
    label: String,
    name: String,
    table: String,
    using: Option<String>,
    with_check: Option<String>,
}

/// (action, object, before, after), as the SQL declaration names them.
type Row = (String, String, Option<String>, Option<String>);

/// Declared in `sql/adopt_sql_helpers.sql` (`from_schema` is of type `name`,
/// which pgrx does not generate). The result is spelled out, not `SqlResult`:
/// pgrx's SQL generator resolves a table's columns only through `Result`,
/// and only when written in place (hence the allowed complexity).
#[allow(clippy::type_complexity)]
#[pg_extern(sql = false)]
fn adopt_sql_helpers(
    from_schema: Option<&CStr>,
    dry_run: Option<bool>,
) -> std::result::Result<
    TableIterator<
        'static,
        (
            name!(action, String),
            name!(object, String),
            name!(before, Option<String>),
            name!(after, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let from_schema = required(from_schema, "from_schema")?
        .to_string_lossy()
        .into_owned();
    let dry_run = required(dry_run, "dry_run")?;
    Ok(TableIterator::new(adopt(&from_schema, dry_run)?))
}

fn invalid(message: String) -> KakuninError {
    KakuninError::InvalidArgument(message)
}

fn adopt(from_schema: &str, dry_run: bool) -> Result<Vec<Row>> {
    let Schemas {
        from: schema_oid,
        from_quoted,
        target,
    } = schemas(from_schema)?;
    let old = old_functions(schema_oid, &target)?;
    let oids: Vec<pg_sys::Oid> = old.iter().map(|f| f.oid).collect();
    let names: Vec<&str> = old.iter().map(|f| f.name.as_str()).collect();
    refuse_other_dependents(&oids, from_schema, &from_quoted, &names)?;
    let policies = policies(&oids);
    refuse_overloads(schema_oid, &policies)?;

    let mut rows = Vec::new();
    let mut rewrites = Vec::new();
    for policy in policies {
        let repoint = |expr: &Option<String>| {
            expr.as_deref()
                .map(|e| sql_calls::repoint(e, from_schema, &names, &target).0)
        };
        let (using, with_check) = (repoint(&policy.using), repoint(&policy.with_check));
        rows.push((
            "rewrite policy".to_string(),
            policy.label.clone(),
            Some(clauses(&policy.using, &policy.with_check)),
            Some(clauses(&using, &with_check)),
        ));
        rewrites.push((policy, using, with_check));
    }
    for f in &old {
        rows.push((
            "drop function".to_string(),
            f.signature.clone(),
            Some(f.source.clone()),
            None,
        ));
    }
    if dry_run || old.is_empty() {
        return Ok(rows);
    }

    for (policy, using, with_check) in &rewrites {
        let mut sql = format!("ALTER POLICY {} ON {}", policy.name, policy.table);
        if let Some(using) = using {
            sql += &format!(" USING ({using})");
        }
        if let Some(check) = with_check {
            sql += &format!(" WITH CHECK ({check})");
        }
        privilege::as_owner_restricted(policy.owner, || spi::run(&sql, &[]))
            .unwrap_or_else(|e| spi_failed("rewrite a policy", e));
    }
    // PostgreSQL recorded what each rewritten policy calls now: exactly what it
    // called before, each old function replaced by its native twin.
    let native = |f: &pg_sys::Oid| old.iter().find(|o| o.oid == *f).map_or(*f, |o| o.native);
    for (policy, ..) in &rewrites {
        let mut expected: Vec<pg_sys::Oid> = policy.calls.iter().map(native).collect();
        expected.sort_unstable_by_key(|o| o.to_u32());
        expected.dedup();
        if calls_of(policy.oid) != expected {
            return Err(KakuninError::Dependents(format!(
                "{} would not call the same functions after its rewrite (an old helper's call was not repointed exactly); nothing was changed",
                policy.label
            )));
        }
    }
    for f in &old {
        spi::run(&format!("DROP FUNCTION {} RESTRICT", f.signature), &[])
            .unwrap_or_else(|e| spi_failed("drop an old helper", e));
    }
    crate::audit::append::admin_act(
        "kakunin.sql_helpers.adopted",
        json!({
            "from_schema": from_schema,
            "policies": rewrites.iter().map(|(p, ..)| &p.label).collect::<Vec<_>>(),
            "functions": old.iter().map(|f| &f.signature).collect::<Vec<_>>(),
        }),
    );
    Ok(rows)
}

fn clauses(using: &Option<String>, with_check: &Option<String>) -> String {
    let mut parts = Vec::new();
    if let Some(u) = using {
        parts.push(format!("USING ({u})"));
    }
    if let Some(c) = with_check {
        parts.push(format!("WITH CHECK ({c})"));
    }
    parts.join(" ")
}

/// `from_schema` and the extension's schema; refuses an unknown one or the extension's own.
fn schemas(from_schema: &str) -> Result<Schemas> {
    let found = spi::connect(|client| {
        let table = client.select(
            "SELECT (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) $1),
                    n.oid, pg_catalog.quote_ident(n.nspname), pg_catalog.quote_ident($1)
             FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
             WHERE e.extname OPERATOR(pg_catalog.=) 'kakunin_pg'",
            Some(1),
            &[from_schema.into()],
        )?;
        let row = table.first();
        Ok::<_, pgrx::spi::Error>((
            row.get::<pg_sys::Oid>(1)?,
            row.get::<pg_sys::Oid>(2)?,
            row.get::<String>(3)?,
            row.get::<String>(4)?,
        ))
    })
    .unwrap_or_else(|e| spi_failed("read the schemas", e));
    let (Some(from), Some(ext), Some(target), Some(from_quoted)) = found else {
        return Err(KakuninError::NotFound(format!(
            "schema \"{from_schema}\" does not exist"
        )));
    };
    if from == ext {
        return Err(invalid(format!(
            "schema \"{from_schema}\" is kakunin_pg's own schema: name the schema that holds the SQL helpers"
        )));
    }
    Ok(Schemas {
        from,
        from_quoted,
        target,
    })
}

/// `from_schema`'s oid and quoted name, and the extension's schema, quoted.
struct Schemas {
    from: pg_sys::Oid,
    from_quoted: String,
    target: String,
}

/// The SQL helpers in the schema: zero-argument functions named as a native
/// helper, not the extension's own. Refuses one whose result type differs
/// from the native helper's (policies would change meaning).
fn old_functions(schema: pg_sys::Oid, target: &str) -> Result<Vec<OldFunction>> {
    let found = spi::connect(|client| {
        client
            .select(
                "SELECT p.oid, p.proname::text, p.oid::pg_catalog.regprocedure::text, p.prosrc,
                        pg_catalog.format_type(p.prorettype, NULL),
                        n.oid, pg_catalog.format_type(n.prorettype, NULL)
                 FROM pg_catalog.pg_proc p
                 LEFT JOIN LATERAL (
                     SELECT q.oid, q.prorettype FROM pg_catalog.pg_proc q
                     JOIN pg_catalog.pg_depend d ON d.objid OPERATOR(pg_catalog.=) q.oid
                          AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                          AND d.deptype OPERATOR(pg_catalog.=) 'e'
                     JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
                          AND e.extname OPERATOR(pg_catalog.=) 'kakunin_pg'
                     WHERE q.proname OPERATOR(pg_catalog.=) p.proname AND q.pronargs OPERATOR(pg_catalog.=) 0) n ON true
                 WHERE p.pronamespace OPERATOR(pg_catalog.=) $1 AND p.pronargs OPERATOR(pg_catalog.=) 0
                   AND p.prokind OPERATOR(pg_catalog.=) 'f' AND p.proname OPERATOR(pg_catalog.=) ANY ($2)
                 ORDER BY p.proname",
                None,
                &[schema.into(), HELPERS.to_vec().into()],
            )?
            .map(|row| {
                Ok::<_, pgrx::spi::Error>((
                    (row.get::<pg_sys::Oid>(1)?, row.get::<String>(2)?, row.get::<String>(3)?),
                    row.get::<String>(4)?,
                    row.get::<String>(5)?,
                    (row.get::<pg_sys::Oid>(6)?, row.get::<String>(7)?),
                ))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| spi_failed("read the SQL helpers", e));
    let mut old = Vec::new();
    for ((oid, name, signature), source, returns, (native, native_returns)) in found {
        let (Some(oid), Some(name), Some(signature)) = (oid, name, signature) else {
            continue;
        };
        let (Some(native), Some(native_returns)) = (native, native_returns) else {
            continue;
        };
        if returns.as_deref() != Some(native_returns.as_str()) {
            return Err(invalid(format!(
                "{signature} returns {}, but the native {target}.{name}() returns {native_returns}: its policies would change meaning; nothing was changed",
                returns.unwrap_or_default()
            )));
        }
        old.push(OldFunction {
            oid,
            native,
            name,
            signature,
            source: source.unwrap_or_default(),
        });
    }
    Ok(old)
}

/// Refuses (`2BP01`) if anything but a policy depends on the old functions:
/// what `pg_depend` records, and SQL or PL/pgSQL bodies that call one
/// qualified with `from_schema` (bodies are not tracked; after the drop such a
/// call would fail, or find whatever someone creates there later).
fn refuse_other_dependents(
    oids: &[pg_sys::Oid],
    from_schema: &str,
    from_quoted: &str,
    names: &[&str],
) -> Result<()> {
    let (recorded, bodies) = spi::connect(|client| {
        let recorded = client
            .select(
                "SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
                        || ' depends on ' || d.refobjid::pg_catalog.regprocedure::text
                 FROM pg_catalog.pg_depend d
                 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                   AND d.refobjid OPERATOR(pg_catalog.=) ANY ($1)
                   AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_policy'::pg_catalog.regclass
                 ORDER BY 1",
                None,
                &[oids.to_vec().into()],
            )?
            .map(|row| row.get::<String>(1))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let bodies = client
            .select(
                "SELECT p.oid::pg_catalog.regprocedure::text, p.prosrc FROM pg_catalog.pg_proc p
                 WHERE p.prolang IN (SELECT oid FROM pg_catalog.pg_language WHERE lanname IN ('sql', 'plpgsql'))
                   AND p.oid OPERATOR(pg_catalog.<>) ALL ($1)
                   AND p.prosrc OPERATOR(pg_catalog.~~) '%kakunin_%'
                 ORDER BY 1",
                None,
                &[oids.to_vec().into()],
            )?
            .map(|row| Ok::<_, pgrx::spi::Error>((row.get::<String>(1)?, row.get::<String>(2)?)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok::<_, pgrx::spi::Error>((recorded, bodies))
    })
    .unwrap_or_else(|e| spi_failed("read the helpers' dependents", e));
    let mut others: Vec<String> = recorded.into_iter().flatten().collect();
    for (function, body) in bodies {
        let (Some(function), Some(body)) = (function, body) else {
            continue;
        };
        let calls = sql_calls::repoint(&body, from_schema, names, "").1;
        if let Some(name) = calls.first() {
            others.push(format!(
                "the body of function {function} calls {from_quoted}.{name}()"
            ));
        }
    }
    if !others.is_empty() {
        return Err(KakuninError::Dependents(format!(
            "cannot adopt the SQL helpers: {}; change or drop those first; nothing was changed",
            others.join("; ")
        )));
    }
    Ok(())
}

/// Refuses (`22023`) a policy that calls an overload of a helper's name in
/// the schema (one with arguments, all defaulted): its call prints as
/// `schema.name()` too, so a rewrite by text could not tell them apart.
fn refuse_overloads(schema: pg_sys::Oid, policies: &[Policy]) -> Result<()> {
    let overloads: Vec<(pg_sys::Oid, String)> = spi::connect(|client| {
        client
            .select(
                "SELECT p.oid, p.oid::pg_catalog.regprocedure::text FROM pg_catalog.pg_proc p
                 WHERE p.pronamespace OPERATOR(pg_catalog.=) $1 AND p.pronargs OPERATOR(pg_catalog.>) 0
                   AND p.proname OPERATOR(pg_catalog.=) ANY ($2)",
                None,
                &[schema.into(), HELPERS.to_vec().into()],
            )?
            .map(|row| Ok::<_, pgrx::spi::Error>((row.get::<pg_sys::Oid>(1)?, row.get::<String>(2)?)))
            .collect::<std::result::Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| spi_failed("read the helpers' overloads", e))
    .into_iter()
    .filter_map(|(oid, signature)| Some((oid?, signature?)))
    .collect();
    for policy in policies {
        if let Some((_, signature)) = overloads.iter().find(|(oid, _)| policy.calls.contains(oid)) {
            return Err(invalid(format!(
                "{} calls {signature}, an overload of a helper's name whose call reads like the helper's; rename or drop it first; nothing was changed",
                policy.label
            )));
        }
    }
    Ok(())
}

/// Every function policy `oid` calls, as PostgreSQL recorded it, sorted.
/// Read-write SPI, so that it sees the rewrite just made.
fn calls_of(policy: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    spi::connect_mut(|client| {
        client
            .select(
                "SELECT DISTINCT d.refobjid FROM pg_catalog.pg_depend d
                 WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass
                   AND d.objid OPERATOR(pg_catalog.=) $1
                   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                 ORDER BY 1",
                None,
                &[policy.into()],
            )?
            .map(|row| row.get::<pg_sys::Oid>(1))
            .collect::<std::result::Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| spi_failed("read a policy's calls", e))
    .into_iter()
    .flatten()
    .collect()
}

/// The policies PostgreSQL records as calling any of `oids`, their
/// expressions deparsed under the pinned `search_path` (every name qualified).
fn policies(oids: &[pg_sys::Oid]) -> Vec<Policy> {
    let rows = spi::connect(|client| {
        client
            .select(
                "SELECT pol.oid, c.relowner,
                        pg_catalog.format('policy %I on %s', pol.polname, pol.polrelid::pg_catalog.regclass),
                        pg_catalog.quote_ident(pol.polname), pol.polrelid::pg_catalog.regclass::text,
                        pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
                        pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid)
                 FROM pg_catalog.pg_policy pol JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) pol.polrelid
                 WHERE pol.oid OPERATOR(pg_catalog.=) ANY (ARRAY(
                     SELECT d.objid FROM pg_catalog.pg_depend d
                     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass
                       AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                       AND d.refobjid OPERATOR(pg_catalog.=) ANY ($1)))
                 ORDER BY 5, 4",
                None,
                &[oids.to_vec().into()],
            )?
            .map(|row| {
                Ok::<_, pgrx::spi::Error>((
                    row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                    row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
                    row.get::<String>(3)?.unwrap_or_default(),
                    row.get::<String>(4)?.unwrap_or_default(),
                    row.get::<String>(5)?.unwrap_or_default(),
                    row.get::<String>(6)?,
                    row.get::<String>(7)?,
                ))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| spi_failed("read the policies", e));
    rows.into_iter()
        .map(
            |(oid, owner, label, name, table, using, with_check)| Policy {
                oid,
                owner,
                calls: calls_of(oid),
                label,
                name,
                table,
                using,
                with_check,
            },
        )
        .collect()
}
