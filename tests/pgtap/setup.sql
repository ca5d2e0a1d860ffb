-- Prepares the pgTAP database (run once by scripts/test.sh, after the fixtures
-- are loaded): the extensions, the example schema, test roles, a trust anchor
-- and rows for two agents.
SET client_min_messages = warning;
CREATE EXTENSION pgtap;
CREATE EXTENSION dblink;
-- Test roles (cluster-wide, so a previous run may have left them):
--   app_user       an agent connecting directly
--   gateway_app    an mTLS-terminating gateway
--   admin_user     manages anchors, status and keys
--   authenticated  the role policies are written for (Supabase's name)
--   table_owner    owns the example tables
--   anon, service_role, authenticator: Supabase's and PostgREST's other roles
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['app_user', 'gateway_app', 'admin_user', 'authenticator'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;
    END LOOP;
    FOREACH r IN ARRAY ARRAY['authenticated', 'table_owner', 'anon', 'service_role'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END $$;
CREATE EXTENSION kakunin_pg;

GRANT kakunin_gateway TO gateway_app;
GRANT authenticated TO gateway_app;
GRANT kakunin_admin TO admin_user;
GRANT anon, authenticated, service_role TO authenticator;

-- The example tables live in public; table_owner needs CREATE there.
GRANT CREATE ON SCHEMA public TO table_owner;
SET ROLE table_owner;
\i sql/examples/agent_schema.sql
GRANT SELECT, INSERT, UPDATE, DELETE ON behavior_events, trades, audit_log
    TO app_user, gateway_app, authenticated, anon;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app_user, gateway_app, authenticated, anon;
RESET ROLE;

INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES
    ('agent-a', 'AAPL', 'XNAS', 10, 190), ('agent-a', 'MSFT', 'XNAS', 5, 410),
    ('agent-a', 'TSLA', 'XNAS', 1, 250),   -- agent-a's own, but out of its scope
    ('agent-b', 'TSLA', 'XNYS', 7, 250), ('agent-b', 'AAPL', 'XNYS', 2, 190);
INSERT INTO behavior_events (agent_id, event_type) VALUES
    ('agent-a', 'login'), ('agent-a', 'quote'), ('agent-b', 'login');

SET ROLE admin_user;
SELECT kakunin.add_trust_anchor(pem, 'test root') FROM kakunin_test.certs WHERE name = 'root-ca';
RESET ROLE;
-- A committed webhook secret, for tests that deliver from another session.
SELECT kakunin.set_webhook_secret('whsec_committed_for_test');

-- Helpers for the test files.
CREATE FUNCTION kakunin_test.cert(name text) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT pem FROM kakunin_test.certs c WHERE c.name = cert.name $$;
CREATE FUNCTION kakunin_test.proof(name text) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT jws FROM kakunin_test.proofs p WHERE p.name = proof.name $$;

-- 'SQLSTATE: message' of the error `sql` raises, or 'ok'. Runs in a
-- subtransaction, so whatever `sql` did is rolled back either way.
CREATE FUNCTION kakunin_test.error_of(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- pgTAP keeps its state in temporary tables owned by whoever called plan();
-- tests that SET ROLE need them shared.
CREATE PROCEDURE kakunin_test.share_pgtap() LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
             WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind IN ('r', 'S')
    LOOP
        EXECUTE format('GRANT ALL ON %s TO PUBLIC', r.rel);
    END LOOP;
    EXECUTE format('GRANT USAGE ON SCHEMA %s TO PUBLIC', pg_my_temp_schema()::regnamespace);
END $$;

\i sql/examples/seed_helpers.sql

-- libpq connection string to this database as `who`, directly or through the
-- PgBouncer that scripts/test.sh starts (settings passed in PGOPTIONS).
CREATE FUNCTION kakunin_test.connstr(who text, via_bouncer boolean DEFAULT false, extra text DEFAULT '')
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format('host=%s port=%s dbname=%s user=%s %s',
        CASE WHEN via_bouncer THEN '127.0.0.1' ELSE current_setting('kakunin_test.socket') END,
        CASE WHEN via_bouncer THEN current_setting('kakunin_test.bouncer_port')
             ELSE current_setting('port') END,
        current_database(), who, extra)
$$;

-- The seed's baseline policy on a copy of trades, for the spoofing comparison.
CREATE TABLE seed_trades AS SELECT * FROM trades;
ALTER TABLE seed_trades ENABLE ROW LEVEL SECURITY;
CREATE POLICY seed_policy ON seed_trades
    USING (agent_id = seed_agent_id() AND seed_cert_status() = 'active'
           AND instrument = ANY (seed_permitted_instruments()));
GRANT SELECT ON seed_trades TO app_user;

-- EXPLAIN output as rows, for plan assertions.
CREATE FUNCTION kakunin_test.explain(query text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        RETURN NEXT line;
    END LOOP;
END $$;

-- What nginx's $ssl_client_escaped_cert does to a PEM.
CREATE FUNCTION kakunin_test.url_escape(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(CASE WHEN c ~ '[A-Za-z0-9._~-]' THEN c
                           ELSE upper(regexp_replace(encode(convert_to(c, 'UTF8'), 'hex'), '(..)', '%\1', 'g')) END, '')
    FROM regexp_split_to_table(t, '') AS c
$$;

\i tests/hmac_sha256.sql
-- The RFC 7807 problem document an error carries in its DETAIL, or NULL.
CREATE FUNCTION kakunin_test.problem_of(sql text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE detail text;
BEGIN
    EXECUTE sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN detail::jsonb;
END $$;
-- A CA's signature header for body at unix time t.
CREATE FUNCTION kakunin_test.webhook_header(secret text, t bigint, body text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('t=%s,v1=%s', t, encode(hmac_sha256(t || '.' || body, secret), 'hex'))
$$;

-- The fake CA verify endpoint's base URL for a behaviour and agent id.
CREATE FUNCTION kakunin_test.ca_url(mode text, agent text DEFAULT 'agent-b') RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('%s/v1/%s/%s/verify/', current_setting('kakunin_test.fake_ca'), mode, agent)
$$;
