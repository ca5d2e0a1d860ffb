-- kakunin_pg: roles and the schema. Runs first; each domain's file (sql/identity.sql,
-- revocation.sql, api_keys.sql, postgrest.sql, audit.sql) then creates its
-- tables and its C functions, and grants and documents them next to the
-- functions pgrx generates for it (`requires` in src/lib.rs orders them).

-- Certificates, agent ids, JSON and every text the functions take are UTF-8;
-- in a database of another encoding a byte sequence that is not UTF-8 would
-- reach them as text they cannot read. Refused up front, before anything is
-- created.
DO $encoding$
BEGIN
    IF pg_catalog.getdatabaseencoding() OPERATOR(pg_catalog.<>) 'UTF8' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'feature_not_supported',
            MESSAGE = pg_catalog.format('kakunin_pg needs a database with UTF8 encoding; this one is %s',
                                        pg_catalog.getdatabaseencoding()),
            HINT = 'Create the database with ENCODING ''UTF8'' (Supabase''s databases are UTF8).';
    END IF;
END
$encoding$;

-- Roles are cluster-wide and may already exist (another database, an earlier
-- install); they are created NOLOGIN and left in place by DROP EXTENSION.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'kakunin_gateway') THEN
        CREATE ROLE kakunin_gateway NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'kakunin_admin') THEN
        CREATE ROLE kakunin_admin NOLOGIN;
    END IF;
END
$roles$;
COMMENT ON ROLE kakunin_gateway IS
    'kakunin_pg: members may bind an agent certificate without proof of possession (they terminated mTLS themselves)';
COMMENT ON ROLE kakunin_admin IS
    'kakunin_pg: members manage trust anchors, statuses, CRLs, the webhook secret and API keys, and integrate and export the audit log';

-- Plain CREATE SCHEMA, not IF NOT EXISTS: a schema somebody created beforehand
-- could hold objects we would then trust.
CREATE SCHEMA kakunin;
COMMENT ON SCHEMA kakunin IS 'kakunin_pg: agent identity, revocation data, API keys and the audit log';
-- Everyone may try to bind: the certificate and the proof decide.
GRANT USAGE ON SCHEMA kakunin TO PUBLIC;

-- Supabase / PostgREST: service_role is Supabase's administrative API role, so
-- it manages anchors, status and keys; anon and authenticated need nothing
-- beyond PUBLIC (they may try to bind; policies decide the rest).
DO $supabase$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT kakunin_admin TO service_role;
    END IF;
END
$supabase$;

-- Every change to the anchors or the registry queues a relcache invalidation,
-- broadcast to all backends at commit, which empties their caches of both.
CREATE FUNCTION kakunin.invalidate_caches() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'kakunin_invalidate_caches';
COMMENT ON FUNCTION kakunin.invalidate_caches() IS
    'Trigger: tells every backend to drop its cached trust anchors, statuses, CRLs and API keys (internal).';
REVOKE EXECUTE ON FUNCTION kakunin.invalidate_caches() FROM PUBLIC;

-- A logical backup (pg_dump, `supabase db dump`) carries everything the
-- extension stores: CREATE EXTENSION recreates the objects, and each domain's
-- file registers its tables and sequences with pg_extension_config_dump so
-- their rows are dumped as data. That includes secrets — the webhook HMAC
-- secret, API key hashes, the audit signing key — because a restore without
-- them would break webhooks, every key and the log's verifiability; a dump is
-- as sensitive as the database itself.
