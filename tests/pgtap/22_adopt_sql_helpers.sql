-- Issue 12: kakunin.adopt_sql_helpers() moves policies off the seed's SQL
-- helpers (forgeable with set_config) onto the native ones, in one
-- transaction, or refuses and changes nothing. Here the seed's functions live
-- in schema seed_app (the suite's extension is in public); the example
-- project examples/supabase runs it on a database built exactly as the seed
-- describes (helpers in public, extension in extensions).
BEGIN;
SELECT plan(24);

CREATE SCHEMA seed_app;
SET LOCAL search_path = seed_app, public;
-- The seed's helpers, verbatim (000, "Create the RLS helper function").
CREATE OR REPLACE FUNCTION kakunin_agent_id() RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT current_setting('kakunin.agent_id', true) $$;
CREATE OR REPLACE FUNCTION kakunin_cert_status() RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT current_setting('kakunin.cert_status', true) $$;
CREATE OR REPLACE FUNCTION kakunin_permitted_instruments() RETURNS text[]
LANGUAGE sql STABLE
AS $$ SELECT string_to_array(
current_setting('kakunin.permitted_instruments', true), ','
) $$;
CREATE TABLE seed_app.orders (agent_id text, instrument text, note text);
INSERT INTO seed_app.orders VALUES ('agent-a', 'AAPL', 'seed_app.kakunin_agent_id()'), ('agent-b', 'TSLA', 'b');
ALTER TABLE seed_app.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY "agents_read_own" ON seed_app.orders FOR SELECT
    USING (agent_id = kakunin_agent_id() AND kakunin_cert_status() = 'active'
           AND instrument = ANY (kakunin_permitted_instruments()) AND note <> 'seed_app.kakunin_agent_id()x');
CREATE POLICY "agents_insert_own" ON seed_app.orders FOR INSERT
    WITH CHECK (agent_id = kakunin_agent_id() AND kakunin_cert_status() = 'active');
GRANT USAGE ON SCHEMA seed_app TO app_user, gateway_app;
GRANT SELECT, INSERT ON seed_app.orders TO app_user, gateway_app;
RESET search_path;

-- The hole it closes: with the seed's helpers any role forges an identity.
SET LOCAL ROLE app_user;
SELECT set_config('kakunin.agent_id', 'agent-a', true), set_config('kakunin.cert_status', 'active', true),
       set_config('kakunin.permitted_instruments', 'AAPL', true) \g /dev/null
SELECT is((SELECT count(*) FROM seed_app.orders), 1::bigint, 'before: set_config forges agent-a''s rows');
RESET ROLE;
SELECT set_config('kakunin.agent_id', '', true) \g /dev/null

-- Refusals, in the caller's terms; none changes anything.
SELECT is(kakunin_test.error_of('SET LOCAL ROLE app_user; SELECT * FROM kakunin.adopt_sql_helpers(''seed_app'', false)'),
    '42501: permission denied for function adopt_sql_helpers', 'not for every role');
SELECT is(kakunin_test.error_of('SELECT * FROM kakunin.adopt_sql_helpers(''public'', false)'),
    '22023: schema "public" is kakunin_pg''s own schema: name the schema that holds the SQL helpers', 'not the extension''s own schema');
SELECT is(kakunin_test.error_of('SELECT * FROM kakunin.adopt_sql_helpers(''no_such_schema'', false)'),
    '42704: schema "no_such_schema" does not exist', 'an unknown schema');
SELECT is(kakunin_test.error_of('SELECT * FROM kakunin.adopt_sql_helpers(NULL, false)'),
    '22004: from_schema must not be NULL', 'NULL');
CREATE VIEW seed_app.whoami AS SELECT seed_app.kakunin_agent_id() AS agent_id;
SELECT is(kakunin_test.error_of('SELECT * FROM kakunin.adopt_sql_helpers(''seed_app'', false)'),
    '2BP01: cannot adopt the SQL helpers: rule _RETURN on view seed_app.whoami depends on seed_app.kakunin_agent_id(); change or drop those first; nothing was changed',
    'anything but a policy depending on the helpers refuses');
DROP VIEW seed_app.whoami;
CREATE SCHEMA seed_odd;
CREATE FUNCTION seed_odd.kakunin_agent_id() RETURNS integer LANGUAGE sql AS 'SELECT 1';
SELECT is(kakunin_test.error_of('SELECT * FROM kakunin.adopt_sql_helpers(''seed_odd'', false)'),
    '22023: seed_odd.kakunin_agent_id() returns integer, but the native public.kakunin_agent_id() returns text: its policies would change meaning; nothing was changed',
    'a helper whose result type differs refuses');
-- A call of an overload with defaulted arguments prints like the helper's.
CREATE SCHEMA seed_over;
CREATE FUNCTION seed_over.kakunin_tenant_id(strict_mode int DEFAULT 0) RETURNS text LANGUAGE sql AS $$ SELECT 'deny-all' $$;
CREATE FUNCTION seed_over.kakunin_agent_id() RETURNS text LANGUAGE sql AS $$ SELECT current_setting('kakunin.agent_id', true) $$;
CREATE TABLE seed_over.t (agent_id text, tenant text);
CREATE POLICY q ON seed_over.t USING (agent_id = seed_over.kakunin_agent_id() AND tenant = seed_over.kakunin_tenant_id());
CREATE FUNCTION seed_over.kakunin_tenant_id() RETURNS text LANGUAGE sql AS $$ SELECT current_setting('kakunin.tenant', true) $$;
SELECT is(kakunin_test.error_of('SELECT * FROM kakunin.adopt_sql_helpers(''seed_over'')'),
    '22023: policy q on seed_over.t calls seed_over.kakunin_tenant_id(integer), an overload of a helper''s name whose call reads like the helper''s; rename or drop it first; nothing was changed',
    'a policy calling an overload of a helper''s name refuses (its call cannot be told apart)');
-- SQL and PL/pgSQL bodies are not in pg_depend: their text is read.
CREATE SCHEMA seed_body;
CREATE FUNCTION seed_body.kakunin_agent_id() RETURNS text LANGUAGE sql AS $$ SELECT current_setting('kakunin.agent_id', true) $$;
CREATE FUNCTION seed_body.is_mine(a text) RETURNS boolean LANGUAGE sql STABLE
    AS $$ SELECT a = /* who's calling */ seed_body.kakunin_agent_id() $$;
SELECT is(kakunin_test.error_of('SELECT * FROM kakunin.adopt_sql_helpers(''seed_body'', false)'),
    '2BP01: cannot adopt the SQL helpers: the body of function seed_body.is_mine(text) calls seed_body.kakunin_agent_id(); change or drop those first; nothing was changed',
    'a function body calling a helper by its schema refuses');
SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'seed_app'::regnamespace), 3::bigint, 'the helpers are all still there');

-- A table owner's trap: re-parsing a policy's constant runs its domain's CHECK.
-- The rewrite runs as the owner (restricted), never with the caller's rights.
CREATE TABLE public.adopt_trap_calls (who text);
GRANT INSERT ON public.adopt_trap_calls TO PUBLIC;
CREATE SCHEMA trap_app AUTHORIZATION table_owner;
GRANT USAGE ON SCHEMA seed_app TO table_owner;
SET LOCAL ROLE table_owner;
CREATE FUNCTION trap_app.note_caller(int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.adopt_trap_calls VALUES (current_user);
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE table_owner SUPERUSER';
    END IF;
    RETURN true;
END $$;
CREATE DOMAIN trap_app.trap AS int CHECK (trap_app.note_caller(VALUE));
CREATE TABLE trap_app.owned (id int, agent_id text);
ALTER TABLE trap_app.owned ENABLE ROW LEVEL SECURITY;
CREATE POLICY trapped ON trap_app.owned
    USING (agent_id = seed_app.kakunin_agent_id() AND id = ANY ('{1}'::trap_app.trap[]));
RESET ROLE;
DELETE FROM public.adopt_trap_calls;

-- The dry run (the default) lists and changes nothing.
SELECT results_eq(
    $$SELECT action, object FROM kakunin.adopt_sql_helpers('seed_app')$$,
    $$VALUES ('rewrite policy', 'policy agents_insert_own on seed_app.orders'),
             ('rewrite policy', 'policy agents_read_own on seed_app.orders'),
             ('rewrite policy', 'policy trapped on trap_app.owned'),
             ('drop function', 'seed_app.kakunin_agent_id()'),
             ('drop function', 'seed_app.kakunin_cert_status()'),
             ('drop function', 'seed_app.kakunin_permitted_instruments()')$$,
    'the dry run lists every policy rewrite and function drop');
SELECT is((SELECT after FROM kakunin.adopt_sql_helpers('seed_app') WHERE object = 'policy agents_insert_own on seed_app.orders'),
    'WITH CHECK (((agent_id = public.kakunin_agent_id()) AND (public.kakunin_cert_status() = ''active''::text)))',
    'each rewrite shows the new expression');
SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'seed_app'::regnamespace), 3::bigint, 'the dry run dropped nothing');

-- The real run.
SELECT is((SELECT count(*) FROM kakunin.adopt_sql_helpers('seed_app', dry_run => false)), 6::bigint, 'six steps taken');
SELECT is((SELECT array_agg(who) FROM public.adopt_trap_calls), ARRAY['table_owner']::text[],
    'the trap''s CHECK ran during the rewrite, as the table''s owner');
SELECT ok(NOT (SELECT rolsuper FROM pg_roles WHERE rolname = 'table_owner'), 'and its owner did not become a superuser');
SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'seed_app'::regnamespace), 0::bigint, 'the SQL helpers are gone');
SELECT is((SELECT array_agg(DISTINCT p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text)
           FROM pg_policy pol JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid
           JOIN pg_proc p ON p.oid = d.refobjid AND d.refclassid = 'pg_proc'::regclass
           WHERE pol.polrelid = 'seed_app.orders'::regclass),
    ARRAY['kakunin_agent_id()', 'kakunin_cert_status()', 'kakunin_permitted_instruments()'],
    'the policies call the native helpers (PostgreSQL''s own records)');
SELECT is((SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polname = 'agents_read_own'),
    '((agent_id = kakunin_agent_id()) AND (kakunin_cert_status() = ''active''::text) AND (instrument = ANY (kakunin_permitted_instruments())) AND (note <> ''seed_app.kakunin_agent_id()x''::text))',
    'a string literal that looks like a call is left alone');
SELECT is((SELECT count(*) FROM kakunin.audit_log WHERE action = 'kakunin.sql_helpers.adopted' AND payload->>'from_schema' = 'seed_app'),
    1::bigint, 'the adoption is audited');

-- After: set_config forges nothing; a bound agent sees its rows.
SET LOCAL ROLE app_user;
SELECT set_config('kakunin.agent_id', 'agent-a', true), set_config('kakunin.cert_status', 'active', true),
       set_config('kakunin.permitted_instruments', 'AAPL', true) \g /dev/null
SELECT is((SELECT count(*) FROM seed_app.orders), 0::bigint, 'after: set_config forges nothing');
RESET ROLE;
SAVEPOINT bound;
SET LOCAL ROLE gateway_app;
SELECT kakunin.bind_agent(kakunin_test.cert('agent-a-chain')) \g /dev/null
SELECT results_eq('SELECT agent_id, instrument FROM seed_app.orders', $$VALUES ('agent-a', 'AAPL')$$,
    'a bound agent sees its own rows in scope');
RESET ROLE;
ROLLBACK TO bound;
SELECT is((SELECT count(*) FROM kakunin.advisor() WHERE name = 'kakunin_forgeable_helper' AND metadata->>'table' = 'seed_app.orders'),
    0::bigint, 'the advisor finds no forgeable helper left on the table');
SELECT is((SELECT count(*) FROM kakunin.adopt_sql_helpers('seed_app', false)), 0::bigint, 'a second run has nothing to do');

SELECT * FROM finish();
ROLLBACK;
