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
