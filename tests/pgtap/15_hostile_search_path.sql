-- A hostile search_path and pg_temp against every function the extension exports.
-- Non-superusers booby-trap pg_temp with domains named like the built-in types
-- (PostgreSQL looks there first for types unless pg_temp is listed) and put a
-- schema of look-alike operators and functions first on their search_path,
-- then call everything, as a plain role and as a kakunin_admin + gateway member.
-- Each trap counts itself in a sequence (which no rollback undoes) and, if it
-- runs as anyone but the attacker, makes the attacker a superuser. Nothing of
-- the attacker's may run: not with the owner's rights (that was a path to
-- superuser, issue 14), and not with the caller's either.
BEGIN;
SELECT plan(7);
CALL kakunin_test.share_pgtap();
SET client_min_messages = error;

CREATE ROLE hostile_plain;
CREATE ROLE hostile_admin IN ROLE kakunin_admin, kakunin_gateway;
CREATE SCHEMA evil AUTHORIZATION hostile_plain;
GRANT USAGE ON SCHEMA evil TO PUBLIC;

-- What the attack calls need, made before any trap exists.
SELECT kakunin.audit('hostile.setup', '{"n": 1}');
SELECT kakunin.audit_checkpoint();
CREATE TEMP TABLE hk AS SELECT * FROM kakunin.create_api_key('agent-b', 'hostile-key', ARRAY['trades:read']);
CREATE TEMP TABLE hv AS SELECT
    (SELECT api_key FROM hk) AS key,
    overlay((SELECT api_key FROM hk) PLACING
        CASE WHEN substr((SELECT api_key FROM hk), 40, 1) = 'A' THEN 'B' ELSE 'A' END FROM 40 FOR 1) AS wrong_key,
    kakunin_test.cert('agent-b') AS cert_b,
    kakunin_test.cert('intermediate-ca') AS ca,
    kakunin_test.cert('crl-current') AS crl,
    extract(epoch FROM now())::bigint AS t;
CREATE TEMP TABLE hostile_calls (ord serial, as_role name, fn regprocedure, sql text, must_succeed bool);
INSERT INTO hostile_calls (as_role, fn, sql, must_succeed) SELECT r, fn::regprocedure, sql, ok
  FROM hv, unnest(ARRAY['hostile_plain', 'hostile_admin']) AS r,
  LATERAL (SELECT jsonb_build_object('id', 'hostile-' || r, 'type', 'certificate.suspended',
        'data', jsonb_build_object('serial_number', 'abcdef01', 'reason', 'test'))::text AS body) AS w,
  LATERAL (VALUES
    ('kakunin.verify_audit_log()', 'SELECT kakunin.verify_audit_log()', true),
    ('kakunin.verify_api_key(text)', format('SELECT kakunin.verify_api_key(%L)', wrong_key), true),
    ('kakunin.verify_api_key(text)', format('SELECT kakunin.verify_api_key(%L)', key), true),
    ('kakunin.audit_consistency_proof(bigint,bigint)', 'SELECT kakunin.audit_consistency_proof(1, 1)', true),
    ('kakunin.audit_inclusion_proof(bigint,bigint)', 'SELECT kakunin.audit_inclusion_proof(0)', true),
    ('kakunin.audit_integrate()', 'SELECT kakunin.audit_integrate()', r = 'hostile_admin'),
    ('kakunin.audit_checkpoint()', 'SELECT kakunin.audit_checkpoint()', r = 'hostile_admin'),
    ('kakunin.audit_checkpoint_note()', 'SELECT kakunin.audit_checkpoint_note()', true),
    ('kakunin.audit_public_key()', 'SELECT kakunin.audit_public_key()', true),
    ('kakunin.audit_lag()', 'SELECT kakunin.audit_lag()', true),
    ('kakunin.validate_certificate(text,timestamptz)', format('SELECT kakunin.validate_certificate(%L)', cert_b), true),
    ('kakunin.current_request_id()', 'SELECT kakunin.current_request_id()', true),
    ('kakunin.verify_endpoint_stats()', 'SELECT kakunin.verify_endpoint_stats()', true),
    ('kakunin.handle_webhook(text,text)', format('SELECT kakunin.handle_webhook(%L, %L)', body, 't=1,v1=00'), false),
    ('kakunin.handle_webhook(text,text)', format('SELECT kakunin.handle_webhook(%L, %L)', body,
        kakunin_test.webhook_header('whsec_committed_for_test', t, body)), true),
    ('kakunin.bind_agent_session(text,text)', format('CALL kakunin.bind_agent_session(%L, %L)', cert_b,
        kakunin_test.proof(CASE r WHEN 'hostile_plain' THEN 'agent-b/8' ELSE 'agent-b/9' END)), true),
    ('kakunin.bind_agent(text,text)', format('SELECT kakunin.bind_agent(%L)', cert_b), r = 'hostile_admin'),
    ('kakunin.advisor()', 'SELECT count(*) FROM kakunin.advisor()', r = 'hostile_admin'),
    ('kakunin.shared_memory()', 'SELECT kakunin.shared_memory()', r = 'hostile_admin'),
    ('kakunin.execute_as_agent(name,text,boolean,integer)',
        'SELECT kakunin.execute_as_agent(''authenticated'', ''SELECT 1 AS one'')', true),
    ('public.kakunin_agent_id()', 'SELECT public.kakunin_agent_id()', true),
    ('public.kakunin_active_agent_id()', 'SELECT public.kakunin_active_agent_id()', true),
    ('public.kakunin_cert_status()', 'SELECT public.kakunin_cert_status()', true),
    ('public.kakunin_tenant_id()', 'SELECT public.kakunin_tenant_id()', true),
    ('public.kakunin_cert_serial()', 'SELECT public.kakunin_cert_serial()', true),
    ('public.kakunin_permitted_instruments()', 'SELECT public.kakunin_permitted_instruments()', true),
    ('public.kakunin_permitted_venues()', 'SELECT public.kakunin_permitted_venues()', true),
    ('public.kakunin_scope()', 'SELECT public.kakunin_scope()', true),
    ('kakunin.audit(text,jsonb)', 'SELECT kakunin.audit(''hostile.append'', ''{"a": [1, {"b": 2}]}'')', true),
    ('kakunin.create_api_key(text,text,text[],timestamptz,jsonb,text)',
        format('SELECT kakunin.create_api_key(''agent-b'', %L, ARRAY[''trades:read''])', 'made-by-' || r), true),
    ('kakunin.list_api_keys(text)', 'SELECT kakunin.list_api_keys(''agent-b'')', true),
    ('kakunin.update_api_key_claims(uuid,jsonb)', format('SELECT kakunin.update_api_key_claims((SELECT key_id FROM kakunin.api_keys
        WHERE name OPERATOR(pg_catalog.=) %L LIMIT 1), ''{"instruments": ["TSLA"]}'')', 'made-by-' || r), true),
    ('kakunin.rotate_api_key(uuid,interval)', format('SELECT kakunin.rotate_api_key((SELECT key_id FROM kakunin.api_keys
        WHERE name OPERATOR(pg_catalog.=) %L AND rotated_to IS NULL LIMIT 1), ''1 minute'')', 'made-by-' || r), true),
    ('kakunin.revoke_api_key(uuid,text)', format('SELECT kakunin.revoke_api_key((SELECT key_id FROM kakunin.api_keys
        WHERE name OPERATOR(pg_catalog.=) %L AND revoked_at IS NULL LIMIT 1))', 'made-by-' || r), true),
    ('kakunin.bind_api_key(text)', format('SELECT kakunin.bind_api_key(%L)', key), true),
    ('public.kakunin_key_id()', 'SELECT public.kakunin_key_id()', true),
    ('kakunin.authorize(text)', 'SELECT kakunin.authorize(''trades:read'')', true),
    ('kakunin.pre_request()', format('SELECT pg_catalog.set_config(''request.headers'', %L, true), kakunin.pre_request()',
        jsonb_build_object('x-api-key', key, 'x-request-id', 'req-1')::text), true),
    ('kakunin.add_trust_anchor(text,text)', format('SELECT kakunin.add_trust_anchor(%L, ''hostile-anchor'')', ca), r = 'hostile_admin'),
    ('kakunin.remove_trust_anchor(text)', 'SELECT kakunin.remove_trust_anchor(''hostile-anchor'')', r = 'hostile_admin'),
    ('kakunin.set_certificate_status(text,text,text)', 'SELECT kakunin.set_certificate_status(''0abc'', ''suspended'')', r = 'hostile_admin'),
    ('kakunin.set_agent_status(text,text,text)', 'SELECT kakunin.set_agent_status(''agent-z'', ''suspended'')', r = 'hostile_admin'),
    ('kakunin.set_webhook_secret(text)', 'SELECT kakunin.set_webhook_secret(''whsec_hostile_0123456789'')', r = 'hostile_admin'),
    ('kakunin.load_crl(text)', format('SELECT kakunin.load_crl(%L)', crl), r = 'hostile_admin'),
    ('kakunin.export_evidence(timestamptz,timestamptz)',
        'SELECT kakunin.export_evidence(pg_catalog.now() OPERATOR(pg_catalog.-) ''1 day''::pg_catalog.interval, ''infinity'')',
        r = 'hostile_admin'),
    ('kakunin.bind_agent_serial(text)', 'SELECT kakunin.bind_agent_serial(''01'')', false),
    -- Superusers only (the test kit), or revoked from PUBLIC (adoption).
    ('kakunin.enable_test_ca()', 'SELECT kakunin.enable_test_ca()', false),
    ('kakunin.issue_test_certificate(text,text,jsonb,interval)', 'SELECT kakunin.issue_test_certificate(''agt'')', false),
    ('kakunin.disable_test_ca()', 'SELECT kakunin.disable_test_ca()', false),
    ('kakunin.adopt_sql_helpers(name,boolean)', 'SELECT count(*) FROM kakunin.adopt_sql_helpers(''public'')', false),
    -- The trigger functions run inside the writes above; called directly they refuse.
    ('kakunin.invalidate_caches()', 'SELECT kakunin.invalidate_caches()', false),
    ('kakunin.audit_guard()', 'SELECT kakunin.audit_guard()', false)
  ) AS c(fn, sql, ok);
CREATE TEMP TABLE hostile_outcomes (ord int, outcome text);
GRANT SELECT ON hostile_calls TO PUBLIC;
GRANT INSERT ON hostile_outcomes TO PUBLIC;
CREATE FUNCTION kakunin_test.hostile_run() RETURNS void LANGUAGE plpgsql AS $$
DECLARE c record;
BEGIN
    -- Over an array, not a query: a FOR loop over a query keeps a cursor open,
    -- and kakunin.execute_as_agent refuses to run beside one.
    FOREACH c IN ARRAY (SELECT pg_catalog.array_agg(h ORDER BY h.ord) FROM pg_temp.hostile_calls h
                        WHERE h.as_role OPERATOR(pg_catalog.=) CURRENT_USER) LOOP
        BEGIN
            EXECUTE c.sql;
            INSERT INTO pg_temp.hostile_outcomes VALUES (c.ord, 'ok');
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO pg_temp.hostile_outcomes VALUES (c.ord, SQLERRM);
        END;
    END LOOP;
END $$;

-- The traps.
SET ROLE hostile_plain;
CREATE SEQUENCE evil.hits;
GRANT USAGE, UPDATE ON SEQUENCE evil.hits TO PUBLIC;
CREATE FUNCTION evil.trap() RETURNS pg_catalog.bool LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('evil.hits'::pg_catalog.regclass);
    IF CURRENT_USER OPERATOR(pg_catalog.<>) 'hostile_plain' AND CURRENT_USER OPERATOR(pg_catalog.<>) 'hostile_admin' THEN
        EXECUTE 'ALTER ROLE hostile_plain SUPERUSER';
    END IF;
    RETURN true;
END $$;
DO $$
DECLARE t text; op text[];
BEGIN
    -- Domains shadowing the types the extension's SQL names.
    FOREACH t IN ARRAY ARRAY['text', 'int8', 'int4', 'int2', 'float8', 'bool', 'jsonb', 'json', 'bytea',
                             'uuid', 'timestamptz', 'name', 'oid', 'regclass', 'xid', 'date'] LOOP
        EXECUTE format('CREATE DOMAIN pg_temp.%I AS pg_catalog.%I CHECK (evil.trap())', t, t);
    END LOOP;
    -- Operators and functions with the exact signatures of pg_catalog's, found first on the path.
    FOREACH op SLICE 1 IN ARRAY ARRAY[
        ['+', 'int8', 'int4', 'int8'], ['+', 'int8', 'int8', 'int8'], ['-', 'int8', 'int8', 'int8'],
        ['-', 'timestamptz', 'interval', 'timestamptz'], ['+', 'timestamptz', 'interval', 'timestamptz'],
        ['=', 'text', 'text', 'bool'], ['=', 'uuid', 'uuid', 'bool'], ['=', 'int8', 'int8', 'bool'],
        ['=', 'bytea', 'bytea', 'bool'], ['<', 'timestamptz', 'timestamptz', 'bool'],
        ['>', 'int8', 'int8', 'bool'], ['<', 'int8', 'int8', 'bool'], ['||', 'text', 'text', 'text'],
        ['=', 'name', 'name', 'bool'], ['<>', 'text', 'text', 'bool']] LOOP
        EXECUTE format('CREATE FUNCTION evil.op_%s(a pg_catalog.%I, b pg_catalog.%I) RETURNS pg_catalog.%I
                        LANGUAGE sql AS $f$ SELECT a OPERATOR(pg_catalog.%s) b WHERE evil.trap() $f$',
                       md5(op::pg_catalog.text), op[2], op[3], op[4], op[1]);
        EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = pg_catalog.%I, RIGHTARG = pg_catalog.%I, FUNCTION = evil.op_%s)',
                       op[1], op[2], op[3], md5(op::pg_catalog.text));
    END LOOP;
END $$;
CREATE FUNCTION evil.now() RETURNS pg_catalog.timestamptz LANGUAGE sql AS $$ SELECT pg_catalog.now() WHERE evil.trap() $$;
CREATE FUNCTION evil.length(pg_catalog.text) RETURNS pg_catalog.int4 LANGUAGE sql AS $$ SELECT pg_catalog.length($1) WHERE evil.trap() $$;
CREATE FUNCTION evil.sha256(pg_catalog.bytea) RETURNS pg_catalog.bytea LANGUAGE sql AS $$ SELECT pg_catalog.sha256($1) WHERE evil.trap() $$;
CREATE FUNCTION evil.to_timestamp(pg_catalog.float8) RETURNS pg_catalog.timestamptz LANGUAGE sql AS $$ SELECT pg_catalog.to_timestamp($1) WHERE evil.trap() $$;
CREATE FUNCTION evil.jsonb_typeof(pg_catalog.jsonb) RETURNS pg_catalog.text LANGUAGE sql AS $$ SELECT pg_catalog.jsonb_typeof($1) WHERE evil.trap() $$;
CREATE FUNCTION evil.pg_try_advisory_xact_lock(pg_catalog.int8) RETURNS pg_catalog.bool LANGUAGE sql AS $$ SELECT evil.trap() $$;
CREATE FUNCTION evil.pg_advisory_xact_lock(pg_catalog.int8) RETURNS void LANGUAGE sql AS $$ SELECT evil.trap() $$;
CREATE FUNCTION evil.pg_has_role(pg_catalog.name, pg_catalog.text) RETURNS pg_catalog.bool LANGUAGE sql AS $$ SELECT evil.trap() $$;
RESET ROLE;

-- The attack: both roles, evil first on the path, the traps in pg_temp.
SET search_path = evil, pg_catalog, public;
SET ROLE hostile_plain;
SELECT kakunin_test.hostile_run();
RESET ROLE;
SET ROLE hostile_admin;
SELECT kakunin_test.hostile_run();
RESET ROLE;
CREATE TEMP TABLE hostile_hits AS
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS after_calls FROM evil.hits;
-- Control: the same traps do fire for SQL that names the types and operators unqualified.
SET ROLE hostile_plain;
SELECT 'x'::text, 1::int8 + 1;
RESET ROLE;
RESET search_path;
CREATE TEMP TABLE hostile_control AS SELECT last_value AS after_control FROM evil.hits;
DO $$ DECLARE t pg_catalog.text; BEGIN
    FOR t IN SELECT typname FROM pg_type WHERE typnamespace = pg_my_temp_schema() AND typtype = 'd' LOOP
        EXECUTE format('DROP DOMAIN pg_temp.%I', t);
    END LOOP;
END $$;
SET client_min_messages = warning;

SELECT is((SELECT after_calls FROM hostile_hits), 0::bigint,
    'no trap ran: every call resolved its types, operators and functions in pg_catalog/kakunin only');
SELECT ok(NOT (SELECT rolsuper FROM pg_roles WHERE rolname = 'hostile_plain'), 'the attacker is not a superuser');
SELECT ok((SELECT after_control FROM hostile_control) >= 2,
    'control: the traps fire for SQL that resolves names through the hostile path');
SELECT is_empty($$
    SELECT p.oid::regprocedure::text FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
    WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kakunin_pg')
      AND p.oid NOT IN (SELECT fn FROM hostile_calls)
$$, 'every function and procedure the extension exports is called by the attack');
SELECT is_empty($$
    SELECT c.as_role || ': ' || c.sql || ' -> ' || coalesce(o.outcome, 'not run')
    FROM hostile_calls c LEFT JOIN hostile_outcomes o USING (ord)
    WHERE c.must_succeed AND o.outcome IS DISTINCT FROM 'ok'
$$, 'the calls that reach SQL inside the extension succeeded under the hostile path');
SELECT is((SELECT count(*) FROM hostile_outcomes), (SELECT count(*) FROM hostile_calls),
    'every call ran');
SELECT ok(NOT EXISTS (SELECT FROM pg_roles WHERE rolname LIKE 'hostile%' AND rolsuper), 'no hostile role gained superuser');

SELECT * FROM finish();
ROLLBACK;
