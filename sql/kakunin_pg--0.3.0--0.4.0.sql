-- kakunin_pg 0.3.0 -> 0.4.0 (ALTER EXTENSION kakunin_pg UPDATE).
\echo Use "ALTER EXTENSION kakunin_pg UPDATE TO '0.4.0'" to load this file. \quit

-- Documentation that had gone stale (issue 16).
COMMENT ON ROLE kakunin_admin IS
    'kakunin_pg: members manage trust anchors, statuses, CRLs, the webhook secret and API keys, and integrate and export the audit log';
COMMENT ON SCHEMA kakunin IS 'kakunin_pg: agent identity, revocation data, API keys and the audit log';
COMMENT ON FUNCTION kakunin.invalidate_caches() IS
    'Trigger: tells every backend to drop its cached trust anchors, statuses, CRLs and API keys (internal).';
COMMENT ON FUNCTION @extschema@.kakunin_cert_status() IS
    'Policy helper: the status of the bound certificate or API key: active, suspended, retired, revoked, expired, or unknown (a stale CRL, or a verify endpoint that could not answer); re-read once per statement; NULL when nothing is bound.';
COMMENT ON FUNCTION kakunin.audit_guard() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on the audit tables (only the sequencer fills in positions), and payloads over 1 MiB or nested deeper than 64 levels (internal).';
COMMENT ON FUNCTION kakunin.audit(text, jsonb) IS
    'Appends an audit entry as the bound agent (in its tenant, while its status is active; kakunin_admin members may append as anyone) and returns its id; the sequencer assigns its seq in commit order.';
COMMENT ON FUNCTION kakunin.audit_integrate() IS
    'Integrates committed audit entries (and this transaction''s) into the Merkle tree (gapless seq, leaf hashes, nodes); returns how many. Waits at most 5 s for another sequencer (55P03). kakunin_admin only; otherwise the background worker integrates (appends never do).';
COMMENT ON COLUMN kakunin.api_key_events.occurrences IS
    'verify_failed: the failures this row stands for (one backend records a stored key and reason at most once a minute; failures that name no stored key are not recorded). 1 for other events.';
COMMENT ON FUNCTION kakunin.rotate_api_key(uuid, interval) IS
    'Creates a replacement key with the same owner, tenant, capabilities, claims, expiry and lineage; the old key works for the grace period only. Refused to a caller bound with an API key (a key cannot renew itself).';

-- Agents that hold a connection (issue 10).
-- A C function declared here: its role argument is of type name.
CREATE FUNCTION kakunin.execute_as_agent(role name, query text, read_only boolean DEFAULT true,
                                         max_rows integer DEFAULT 1000)
RETURNS jsonb
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'execute_as_agent_wrapper';
-- Open to every role: it needs a binding made earlier in the transaction and
-- runs only as a role the session user may become, never one that defeats
-- row-level security.
COMMENT ON FUNCTION kakunin.execute_as_agent(name, text, boolean, integer) IS
    'Runs query (one or more statements) as role, under the identity bound earlier in this transaction (28000 without one), atomically, read-only unless read_only is false, and returns the last statement''s rows: {"rows": [{column: value}], "row_count", "truncated"} (at most max_rows rows, 0-100000, and 8 MiB). Inside, no change of role or session authorization, transaction control, SET or set_config(), LOAD, COPY, LISTEN/NOTIFY or pg_notify(), PREPARE, cursors (none may be open when it starts, none left when it ends), DDL, session advisory locks, large objects or new binding (42501). role must be one the session user may become, and neither be nor reach (through any membership) a superuser, a role with BYPASSRLS, REPLICATION or CREATEROLE, an owner of a table whose row-level security is not FORCEd, kakunin_gateway, kakunin_admin or a predefined pg_* role (42501). Every call is an audit entry (agent.execute: role, query_sha256, read_only, row_count or sqlstate); a refused call''s entry survives the rollback.';

-- Proofs are remembered per public key (issue 11).
COMMENT ON TABLE kakunin.proof_replay IS
    'jti of each accepted proof of possession, per public key (fingerprint: hex SHA-256 of the certificate''s SubjectPublicKeyInfo), until its window closes; used when the library is not preloaded (internal).';
-- What the preloaded library keeps in shared memory (issue 11).
CREATE FUNCTION kakunin."shared_memory"() RETURNS jsonb
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'shared_memory_wrapper';
REVOKE EXECUTE ON FUNCTION kakunin.shared_memory() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.shared_memory() TO kakunin_admin;
COMMENT ON FUNCTION kakunin.shared_memory() IS
    'What the library keeps in shared memory when preloaded (shared_preload_libraries): {"preloaded", "started_at" (when shared memory was initialised; proofs issued less than 60 s after it are refused), "proof_replay" and "verify_cache": {"capacity" (kakunin.proof_replay_capacity, kakunin.verify_cache_capacity), "entries", "bytes"} or NULL when not preloaded}. kakunin_admin only (42501).';

-- For policy authors (issue 12): the test kit, marked test anchors.
ALTER TABLE kakunin.trust_anchors ADD COLUMN test_anchor boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN kakunin.trust_anchors.test_anchor IS
    'A test CA''s certificate (kakunin.enable_test_ca): trusted only while kakunin.allow_test_ca is on; kakunin.advisor() reports one (kakunin_test_trust_anchor).';
CREATE FUNCTION kakunin."enable_test_ca"() RETURNS TEXT
STRICT VOLATILE PARALLEL UNSAFE 
LANGUAGE c
AS 'MODULE_PATHNAME', 'enable_test_ca_wrapper';
CREATE FUNCTION kakunin."issue_test_certificate"(
	"agent_id" TEXT,
	"tenant_id" TEXT DEFAULT NULL,
	"scope" jsonb DEFAULT '{}',
	"valid_for" interval DEFAULT '1 hour'
) RETURNS TEXT
VOLATILE PARALLEL UNSAFE 
LANGUAGE c
AS 'MODULE_PATHNAME', 'issue_test_certificate_wrapper';
CREATE FUNCTION kakunin."disable_test_ca"() RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE 
LANGUAGE c
AS 'MODULE_PATHNAME', 'disable_test_ca_wrapper';
-- The test kit (src/authoring/test_ca.rs): a per-database test CA for policy
-- authors' tests. Superusers only, and only while kakunin.allow_test_ca is on.

-- The test CA's private key. Its certificate is the trust anchor it names
-- (trust_anchors.test_anchor); removing that anchor removes the key. Not
-- registered with pg_extension_config_dump: the key of a test CA stays in the
-- database it was made in (a restored copy keeps the anchor, which trusts
-- nothing without kakunin.allow_test_ca, and kakunin.disable_test_ca removes it).
CREATE TABLE kakunin.test_ca (
    anchor_name      text PRIMARY KEY REFERENCES kakunin.trust_anchors (name) ON DELETE CASCADE,
    private_key      bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    one_per_database boolean NOT NULL DEFAULT true UNIQUE CHECK (one_per_database)
);
REVOKE ALL ON kakunin.test_ca FROM PUBLIC;
-- The advisor (kakunin_admin) reports a test CA; the key stays out of reach.
GRANT SELECT (anchor_name, created_at) ON kakunin.test_ca TO kakunin_admin;
COMMENT ON TABLE kakunin.test_ca IS
    'The test CA of this database (kakunin.enable_test_ca): its PKCS#8 P-256 private key (RFC 5208) and the trust anchor holding its certificate. At most one row; superusers and the extension owner only.';

REVOKE EXECUTE ON FUNCTION kakunin.enable_test_ca() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.issue_test_certificate(text, text, jsonb, interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.disable_test_ca() FROM PUBLIC;
COMMENT ON FUNCTION kakunin.enable_test_ca() IS
    'Creates this database''s test CA (a P-256 key kept in kakunin.test_ca), trusts it as a test anchor (kakunin.trust_anchors.test_anchor) and returns its certificate (PEM, marked by the extension 2.25.298900544965398659084009494318438196115, which kakunin.add_trust_anchor refuses); a second call returns the same certificate. Superuser only (42501), and only while kakunin.allow_test_ca is on (55000). Test anchors are trusted only while that setting is on.';
COMMENT ON FUNCTION kakunin.issue_test_certificate(text, text, jsonb, interval) IS
    'Issues an agent certificate in kakunin_pg''s profile (SAN URIs urn:kakunin:agent:<agent_id> and urn:kakunin:tenant:<tenant_id>, the financial scope extension holding scope) signed by the test CA, valid from now (backdated one minute) for valid_for (a month counts 30 days; it must end before the CA expires, 22023); returns the PEM chain (leaf, then the CA) for kakunin.bind_agent, which a superuser or kakunin_gateway member may call without a proof. Superuser only (42501), only while kakunin.allow_test_ca is on and after kakunin.enable_test_ca (55000). Audited (kakunin.test_ca.certificate_issued).';
COMMENT ON FUNCTION kakunin.disable_test_ca() IS
    'Removes the test CA, its key and every test anchor; true if there was one. Superuser only (42501); allowed whatever kakunin.allow_test_ca says.';

-- From the seed's SQL helpers to the native ones (src/authoring/adopt_sql_helpers.rs).

-- A C function declared here: its first argument is of type name.
CREATE FUNCTION kakunin.adopt_sql_helpers(from_schema name DEFAULT 'public', dry_run boolean DEFAULT true)
RETURNS TABLE (action text, object text, before text, after text)
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'adopt_sql_helpers_wrapper';
-- It runs with the caller's rights (ALTER POLICY needs the table's owner,
-- DROP FUNCTION the function's); not for every role to try.
REVOKE EXECUTE ON FUNCTION kakunin.adopt_sql_helpers(name, boolean) FROM PUBLIC;
COMMENT ON FUNCTION kakunin.adopt_sql_helpers(name, boolean) IS
    'Moves policies off the SQL helpers the seed''s integration guide installs (zero-argument functions in from_schema named kakunin_agent_id, kakunin_cert_status, kakunin_permitted_instruments or another native helper''s name, reading current_setting(), which any role can forge) onto kakunin_pg''s native helpers. One row per step: (''rewrite policy'', ''policy <name> on <table>'', old USING/WITH CHECK, new) and (''drop function'', signature, its source, NULL). With dry_run (the default) it only lists them; with dry_run => false it rewrites every policy PostgreSQL records as calling them (pg_depend), each as its table''s owner in a security-restricted operation, checks in pg_depend that each now calls exactly what it did with every old helper replaced by the native one, and drops the functions, in the caller''s transaction. Refuses, changing nothing: anything but a policy depending on them, or an SQL or PL/pgSQL body calling one qualified with from_schema (2BP01); a helper whose result type differs from the native one, a policy calling an overload of a helper''s name, or from_schema being the extension''s schema (22023); an unknown schema (42704). Audited (kakunin.sql_helpers.adopted). Superuser unless granted.';

-- The policy advisor (issue 12, first slice): what is unsafe or slow in this
-- database for policies that use kakunin_pg, one row per finding, in the shape
-- of Supabase's database linter (splinter). It reads the catalogs only
-- (pg_policy's dependencies, pg_class, pg_auth_members, pg_proc).
CREATE FUNCTION kakunin.advisor()
RETURNS TABLE (name text, title text, level text, facing text, categories text[], description text,
               detail text, remediation text, metadata jsonb, cache_key text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $advisor$
WITH ext_fn AS (  -- the extension's functions
    SELECT d.objid AS oid, p.proname::text AS proname
    FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'kakunin_pg'
    JOIN pg_proc p ON p.oid = d.objid
    WHERE d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
), policy_fn AS (  -- which functions each policy calls (PostgreSQL records them)
    SELECT pol.oid AS policy, pol.polrelid AS rel, pol.polname::text AS polname, d.refobjid AS fn
    FROM pg_policy pol JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid
         AND d.refclassid = 'pg_proc'::regclass
), protected AS (  -- tables whose policies ask kakunin_pg
    SELECT DISTINCT c.oid, c.oid::regclass::text AS tbl, c.relowner, c.relrowsecurity, c.relforcerowsecurity
    FROM policy_fn pf JOIN ext_fn f ON f.oid = pf.fn JOIN pg_class c ON c.oid = pf.rel
    WHERE NOT EXISTS (SELECT FROM pg_depend e  -- the extension's own tables are its business
                      WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
), facing AS (  -- roles agents, gateways and PostgREST log in or act as
    SELECT r.oid FROM pg_roles r
    WHERE r.rolname IN ('kakunin_gateway', 'anon', 'authenticated', 'authenticator')
       OR pg_has_role(r.oid, 'kakunin_gateway', 'MEMBER') AND NOT r.rolsuper
), reach AS (  -- and every role those can reach through membership (INHERIT or SET),
    -- except Supabase's service_role through authenticator: PostgREST switches
    -- to it only for a JWT signed with the service key, a server secret.
    WITH RECURSIVE up(oid) AS (
        SELECT oid FROM facing
      UNION
        SELECT m.roleid FROM up JOIN pg_auth_members m ON m.member = up.oid
        WHERE NOT (m.roleid = to_regrole('service_role') AND m.member = to_regrole('authenticator')))
    SELECT oid FROM up
)
-- 1. Policies that ask kakunin_pg on a table whose row-level security is off.
SELECT 'kakunin_rls_disabled', 'Row-level security disabled on a table with kakunin policies', 'ERROR', 'EXTERNAL',
       ARRAY['SECURITY'],
       'The table''s policies call kakunin_pg helpers, but row-level security is not enabled, so they are ignored and every role with a grant sees every row.',
       format('Table %s has kakunin policies but row-level security disabled.', t.tbl),
       format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY; ALTER TABLE %s FORCE ROW LEVEL SECURITY;', t.tbl, t.tbl),
       jsonb_build_object('table', t.tbl), 'kakunin_rls_disabled_' || t.tbl
FROM protected t WHERE NOT t.relrowsecurity
UNION ALL
-- 2. Enabled, not forced, and owned by a role the agent-facing roles reach: its owner skips the policies.
SELECT 'kakunin_rls_not_forced', 'Row-level security not forced, owner reachable by agents', 'ERROR', 'EXTERNAL',
       ARRAY['SECURITY'],
       'A table''s owner is exempt from its policies unless row-level security is FORCEd; agents, gateways or PostgREST roles can act as this owner.',
       format('Table %s is owned by %s, which agent-facing roles can reach, and its row-level security is not forced.',
              t.tbl, t.relowner::regrole),
       format('ALTER TABLE %s FORCE ROW LEVEL SECURITY; (or give the table an owner no agent-facing role reaches)', t.tbl),
       jsonb_build_object('table', t.tbl, 'owner', t.relowner::regrole::text), 'kakunin_rls_not_forced_' || t.tbl
FROM protected t WHERE t.relrowsecurity AND NOT t.relforcerowsecurity AND t.relowner IN (SELECT oid FROM reach)
UNION ALL
-- 3. Identity without status: a revoked, suspended or expired credential still matches.
SELECT 'kakunin_policy_without_status_check', 'Policy uses the agent or tenant id without a status check', 'WARN', 'EXTERNAL',
       ARRAY['SECURITY'],
       'kakunin_agent_id() and kakunin_tenant_id() stay set for a revoked, suspended or expired credential; a policy must also require kakunin_cert_status() = ''active'', or use kakunin_active_agent_id().',
       format('Policy %s on %s calls %s without kakunin_cert_status() or kakunin_active_agent_id() (commands: %s).',
              p.polname, p.rel::regclass, string_agg(DISTINCT f.proname || '()', ', '),
              (SELECT CASE pol.polcmd WHEN '*' THEN 'ALL' WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                                      WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' END
               FROM pg_policy pol WHERE pol.oid = p.policy)),
       'Replace kakunin_agent_id() with kakunin_active_agent_id(), or add AND kakunin_cert_status() = ''active''.',
       jsonb_build_object('table', p.rel::regclass::text, 'policy', p.polname),
       'kakunin_policy_without_status_check_' || p.rel::regclass::text || '_' || p.polname
FROM policy_fn p JOIN ext_fn f ON f.oid = p.fn AND f.proname IN ('kakunin_agent_id', 'kakunin_tenant_id')
WHERE NOT EXISTS (SELECT FROM policy_fn q JOIN ext_fn g ON g.oid = q.fn
                  WHERE q.policy = p.policy AND g.proname IN ('kakunin_cert_status', 'kakunin_active_agent_id'))
GROUP BY p.policy, p.polname, p.rel
UNION ALL
-- 4. An agent-facing role that reaches a superuser or BYPASSRLS role skips every policy.
SELECT 'kakunin_privileged_role_reachable', 'Agent-facing roles reach a role that bypasses row-level security', 'ERROR',
       'EXTERNAL', ARRAY['SECURITY'],
       'Agents, gateways or PostgREST roles can act as this role (through membership), which bypasses row-level security.',
       format('Role %s is %s and reachable from agent-facing roles.', r.rolname,
              CASE WHEN r.rolsuper THEN 'a superuser' ELSE 'BYPASSRLS' END),
       format('REVOKE the membership that leads to %s, or ALTER ROLE %s NOBYPASSRLS.', r.rolname, r.rolname),
       jsonb_build_object('role', r.rolname::text), 'kakunin_privileged_role_reachable_' || r.rolname
FROM reach JOIN pg_roles r ON r.oid = reach.oid WHERE r.rolsuper OR r.rolbypassrls
UNION ALL
-- 5. A view over a protected table that runs with its owner's rights.
SELECT DISTINCT 'kakunin_view_not_security_invoker', 'View over a protected table is not security_invoker', 'ERROR',
       'EXTERNAL', ARRAY['SECURITY'],
       'A view runs with its owner''s rights unless security_invoker is set, so its owner''s exemption from the policies reaches every reader of the view.',
       format('View %s reads %s, which has kakunin policies.', v.oid::regclass, t.tbl),
       format('ALTER VIEW %s SET (security_invoker = true);', v.oid::regclass),
       jsonb_build_object('view', v.oid::regclass::text, 'table', t.tbl),
       'kakunin_view_not_security_invoker_' || v.oid::regclass::text
FROM pg_class v JOIN pg_rewrite rw ON rw.ev_class = v.oid
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_class'::regclass
JOIN protected t ON t.oid = d.refobjid
WHERE v.relkind = 'v' AND NOT coalesce('security_invoker=true' = ANY (v.reloptions)
                                       OR 'security_invoker=on' = ANY (v.reloptions), false)
UNION ALL
-- 6. SECURITY DEFINER functions agent-facing roles may call, without a fixed search_path.
SELECT 'kakunin_security_definer_search_path', 'SECURITY DEFINER function without a fixed search_path', 'WARN',
       'EXTERNAL', ARRAY['SECURITY'],
       'A SECURITY DEFINER function callable by agent-facing roles resolves names through the caller''s search_path unless it sets its own, so a caller can make it run the caller''s objects with the owner''s rights.',
       format('Function %s (owner %s) is SECURITY DEFINER, callable by agent-facing roles, with no SET search_path.',
              p.oid::regprocedure, p.proowner::regrole),
       format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::regprocedure),
       jsonb_build_object('function', p.oid::regprocedure::text), 'kakunin_security_definer_search_path_' || p.oid::regprocedure::text
FROM pg_proc p
WHERE p.prosecdef AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  AND NOT EXISTS (SELECT FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search_path=%')
  AND EXISTS (SELECT FROM facing f WHERE has_function_privilege(f.oid, p.oid, 'EXECUTE'))
  AND p.oid NOT IN (SELECT oid FROM ext_fn)
UNION ALL
-- 6b. SECURITY DEFINER functions agent-facing roles may call whose owner bypasses row-level security.
SELECT 'kakunin_security_definer_bypasses_rls', 'SECURITY DEFINER function runs with row-level security bypassed', 'WARN',
       'EXTERNAL', ARRAY['SECURITY'],
       'A SECURITY DEFINER function runs as its owner; when the owner is a superuser or has BYPASSRLS, whatever it reads or writes ignores every policy, whoever calls it.',
       format('Function %s is SECURITY DEFINER, callable by agent-facing roles, and owned by %s, which bypasses row-level security.',
              p.oid::regprocedure, p.proowner::regrole),
       format('ALTER FUNCTION %s OWNER TO a role without BYPASSRLS, or make it SECURITY INVOKER, or REVOKE EXECUTE from agent-facing roles.', p.oid::regprocedure),
       jsonb_build_object('function', p.oid::regprocedure::text, 'owner', p.proowner::regrole::text),
       'kakunin_security_definer_bypasses_rls_' || p.oid::regprocedure::text
FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner
WHERE p.prosecdef AND (o.rolsuper OR o.rolbypassrls)
  AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  AND EXISTS (SELECT FROM facing f WHERE has_function_privilege(f.oid, p.oid, 'EXECUTE'))
  AND p.oid NOT IN (SELECT oid FROM ext_fn)
UNION ALL
-- 7. Policies that call forgeable SQL helpers (the seed's current_setting('kakunin.…') ones).
SELECT 'kakunin_forgeable_helper', 'Policy calls a helper that reads a setting any role can set', 'ERROR',
       'EXTERNAL', ARRAY['SECURITY'],
       'Settings such as app.* or kakunin.* read with current_setting() can be set by any role with set_config(), so a policy built on them can be forged. kakunin_pg''s native helpers cannot.',
       format('Policy %s on %s calls %s, which read current_setting().', pf.polname, pf.rel::regclass,
              string_agg(DISTINCT p.oid::regprocedure::text, ', ')),
       'Call the native helpers (kakunin_agent_id(), kakunin_cert_status(), …) instead.',
       jsonb_build_object('table', pf.rel::regclass::text, 'policy', pf.polname,
                          'functions', jsonb_agg(DISTINCT p.oid::regprocedure::text)),
       'kakunin_forgeable_helper_' || pf.rel::regclass::text || '_' || pf.polname
FROM policy_fn pf JOIN pg_proc p ON p.oid = pf.fn
WHERE p.oid NOT IN (SELECT oid FROM ext_fn) AND p.prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
  AND p.prosrc ~* 'current_setting\s*\('
GROUP BY pf.policy, pf.polname, pf.rel
UNION ALL
-- 8. Row-level security on, no policy: nobody but the owner sees a row.
SELECT 'kakunin_rls_no_policy', 'Row-level security enabled without a policy', 'INFO', 'EXTERNAL', ARRAY['SECURITY'],
       'With row-level security enabled and no policy, every query by a role other than the owner returns no rows (fail closed); usually a policy is missing.',
       format('Table %s has row-level security enabled and no policy.', c.oid::regclass),
       format('CREATE POLICY … ON %s …', c.oid::regclass),
       jsonb_build_object('table', c.oid::regclass::text), 'kakunin_rls_no_policy_' || c.oid::regclass::text
FROM pg_class c
WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity
  AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  AND NOT EXISTS (SELECT FROM pg_policy pol WHERE pol.polrelid = c.oid)
UNION ALL
-- 9. A policy filter column without an index: every query scans the table.
SELECT DISTINCT 'kakunin_unindexed_policy_filter', 'Policy filter column without an index', 'INFO', 'EXTERNAL',
       ARRAY['PERFORMANCE'],
       'Policies that compare agent_id or tenant_id with a kakunin helper filter every query; without an index leading with that column each query scans the table.',
       format('Table %s has no index leading with %s.', t.tbl, a.attname),
       format('CREATE INDEX ON %s (%s);', t.tbl, a.attname),
       jsonb_build_object('table', t.tbl, 'column', a.attname::text), 'kakunin_unindexed_policy_filter_' || t.tbl || '_' || a.attname
FROM protected t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attname IN ('agent_id', 'tenant_id') AND NOT a.attisdropped
WHERE NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = t.oid AND i.indkey[0] = a.attnum)
UNION ALL
-- 10. A trust anchor made for tests: whoever reads its key (superusers, file-level backups) can mint agents.
SELECT 'kakunin_test_trust_anchor', 'A test CA is trusted in this database', 'ERROR', 'EXTERNAL', ARRAY['SECURITY'],
       'kakunin.enable_test_ca() made a CA whose private key is stored in this database; while kakunin.allow_test_ca is on, any certificate it signs binds. It belongs in test databases only.',
       format('Trust anchor %s (%s) is a test anchor%s; kakunin.allow_test_ca is %s.', a.name, a.subject,
              CASE WHEN EXISTS (SELECT FROM kakunin.test_ca k WHERE k.anchor_name = a.name)
                   THEN ' and its private key is in kakunin.test_ca' ELSE '' END,
              coalesce(current_setting('kakunin.allow_test_ca', true), 'off')),
       'SELECT kakunin.disable_test_ca();',
       jsonb_build_object('anchor', a.name, 'fingerprint', a.fingerprint), 'kakunin_test_trust_anchor_' || a.name
FROM kakunin.trust_anchors a WHERE a.test_anchor
$advisor$;
REVOKE EXECUTE ON FUNCTION kakunin.advisor() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.advisor() TO kakunin_admin;
COMMENT ON FUNCTION kakunin.advisor() IS
    'What is unsafe or slow for kakunin policies in this database, one row per finding (splinter''s columns: name, title, level ERROR|WARN|INFO, facing, categories, description, detail, remediation, metadata, cache_key). Lints: kakunin_rls_disabled, kakunin_rls_not_forced, kakunin_policy_without_status_check, kakunin_privileged_role_reachable, kakunin_view_not_security_invoker, kakunin_security_definer_search_path, kakunin_security_definer_bypasses_rls, kakunin_forgeable_helper, kakunin_rls_no_policy, kakunin_unindexed_policy_filter, kakunin_test_trust_anchor. kakunin_admin only.';
