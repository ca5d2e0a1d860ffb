-- Issue 10: kakunin.execute_as_agent runs an agent's SQL as a restricted role
-- under the identity bound in the transaction. Every escape is attempted and
-- must be refused, and nothing may leak: rows, role, binding, settings.
BEGIN;
SELECT plan(93);
CALL kakunin_test.share_pgtap();

-- What must be exactly as before after every call, refused or not.
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' | ', current_user, session_user, kakunin_agent_id(), kakunin_cert_serial(),
                     current_setting('transaction_read_only'), current_setting('search_path'),
                     current_setting('row_security'), current_setting('statement_timeout'),
                     (SELECT count(*) FROM trades), (SELECT count(*) FROM pg_prepared_statements),
                     (SELECT count(*) FROM pg_cursors), (SELECT count(*) FROM pg_listening_channels()))
$$;
-- plpgsql's WHEN OTHERS does not catch a cancel; this does.
CREATE FUNCTION pg_temp.cancel_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN query_canceled THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.refusals() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM kakunin.audit_log WHERE action = 'agent.execute' AND payload ? 'sqlstate'
$$;
-- Functions a DBA might have granted: a write, a notification, a cursor.
CREATE FUNCTION public.x_write() RETURNS void LANGUAGE sql
    AS $$ INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES ('agent-b', 'TSLA', 'XNYS', 1, 1) $$;
CREATE FUNCTION public.x_notify() RETURNS void LANGUAGE sql AS $$ SELECT pg_notify('agents', 'hello') $$;
CREATE FUNCTION public.x_cursor() RETURNS refcursor LANGUAGE plpgsql
    AS $$ DECLARE c refcursor := 'kept'; BEGIN OPEN c FOR SELECT 1; RETURN c; END $$;
GRANT EXECUTE ON FUNCTION public.x_write(), public.x_notify(), public.x_cursor() TO authenticated;

-- 1. A superuser's session (the test runner) binds agent-b; its agent SQL sees agent-b's rows only.
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-b'));
CREATE TEMP TABLE before AS SELECT pg_temp.state() AS s, pg_temp.refusals() AS r;
GRANT SELECT ON before TO PUBLIC;
SELECT is(kakunin.execute_as_agent('authenticated', 'SELECT agent_id, instrument FROM trades ORDER BY id'),
    '{"rows": [{"agent_id": "agent-b", "instrument": "TSLA"}], "row_count": 1, "truncated": false}',
    'the agent''s query returns only its own rows in scope, though the login role is a superuser');
SELECT is(kakunin.execute_as_agent('authenticated', 'SELECT current_user AS u, session_user AS s')->'rows'->0,
    jsonb_build_object('u', 'authenticated', 's', session_user::text), 'it runs as the role asked for');
SELECT is(kakunin.execute_as_agent('authenticated',
    'SELECT 1 AS one; SELECT 2.5 AS n, true AS b, NULL::text AS z, ''{"k": [1]}''::jsonb AS j, ''x'' AS t')->'rows'->0,
    '{"n": 2.5, "b": true, "z": null, "j": {"k": [1]}, "t": "x"}', 'several statements: the last one''s row, values as JSON');
SELECT is(kakunin.execute_as_agent('authenticated', $q$SELECT '"\u0000"'::json AS j$q$)->'rows'->0->>'j', '"\u0000"',
    'a json value jsonb cannot hold comes back in its text form, not as an error');
SELECT is((SELECT s FROM before), pg_temp.state(), 'the session is exactly as before');

-- 2. Every escape, refused with 42501 (or PostgreSQL's own refusal), changing nothing.
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'RESET ROLE')$$),
    '^42501: RESET is not allowed inside kakunin.execute_as_agent', 'RESET ROLE');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SET ROLE NONE')$$),
    '^42501: SET is not allowed', 'SET ROLE NONE');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SET ROLE pgrunner')$$),
    '^42501: SET is not allowed', 'SET ROLE to the login role');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SET SESSION AUTHORIZATION DEFAULT')$$),
    '^42501: SET is not allowed', 'SET SESSION AUTHORIZATION');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT set_config(''role'', ''none'', false)')$$),
    '^42501: set_config\(\) is not allowed', 'set_config(''role'', …)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'DO $d$ BEGIN EXECUTE ''RESET ROLE''; END $d$')$$),
    '^42501: RESET is not allowed', 'RESET ROLE from inside a DO block');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'COMMIT')$$),
    '^42501: COMMIT is not allowed', 'COMMIT');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT 1; ROLLBACK; SELECT 2')$$),
    '^42501: ROLLBACK is not allowed', 'ROLLBACK between statements');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SAVEPOINT s')$$),
    '^42501: SAVEPOINT is not allowed', 'SAVEPOINT');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'ROLLBACK TO SAVEPOINT s')$$),
    '^42501: ROLLBACK is not allowed', 'ROLLBACK TO SAVEPOINT');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    format('SELECT kakunin.bind_agent(%L)', kakunin_test.cert('agent-a-chain')))$$),
    '^42501: no identity can be bound or replaced inside kakunin.execute_as_agent', 'bind another agent (superuser login)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    format('CALL kakunin.bind_agent_session(%L)', kakunin_test.cert('agent-b')))$$),
    '^42501: no identity can be bound', 'bind again, even the same agent');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'SELECT set_config(''kakunin.binding'', ''1|{}'', true)')$$),
    '^42501: set_config\(\) is not allowed', 'write kakunin.binding');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'LOAD ''auto_explain''')$$),
    '^42501: LOAD is not allowed', 'LOAD');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SET row_security = off')$$),
    '^42501: SET is not allowed', 'SET row_security');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SET LOCAL search_path = pg_temp, public')$$),
    '^42501: SET is not allowed', 'SET search_path');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT set_config(''search_path'', ''pg_temp'', false)')$$),
    '^42501: set_config\(\) is not allowed', 'set_config(''search_path'', …)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'SELECT set_config(''session_replication_role'', ''replica'', true)')$$),
    '^42501: set_config\(\) is not allowed', 'set_config(''session_replication_role'', …)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'COPY trades TO PROGRAM ''cat''')$$),
    '^42501: COPY is not allowed', 'COPY … TO PROGRAM');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'COPY trades FROM ''/etc/passwd''')$$),
    '^42501: COPY is not allowed', 'COPY FROM a server file');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'LISTEN agents')$$),
    '^42501: LISTEN is not allowed', 'LISTEN');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'NOTIFY agents')$$),
    '^42501: NOTIFY is not allowed', 'NOTIFY');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT pg_notify(''agents'', ''x'')')$$),
    '^42501: pg_notify\(\) is not allowed', 'pg_notify()');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT public.x_notify()')$$),
    '^42501: pg_notify\(\) is not allowed', 'pg_notify() inside a granted SQL function');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'PREPARE p AS SELECT 1')$$),
    '^42501: PREPARE is not allowed', 'PREPARE');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'DECLARE c CURSOR WITH HOLD FOR SELECT 1')$$),
    '^42501: DECLARE CURSOR is not allowed', 'DECLARE CURSOR');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT public.x_cursor()')$$),
    '^42501: a cursor or portal opened by the query would outlive the call', 'a cursor opened by a granted function');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'CREATE TABLE public.agent_made (x int)')$$),
    '^42501: CREATE TABLE is not allowed', 'DDL');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'EXPLAIN (ANALYZE) CREATE TABLE public.agent_made AS SELECT * FROM trades')$$),
    '^42501: EXPLAIN of anything but a query is not allowed', 'DDL wrapped in EXPLAIN ANALYZE');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'EXPLAIN (ANALYZE) EXECUTE some_statement')$$),
    '^42501: EXPLAIN of anything but a query is not allowed', 'EXPLAIN ANALYZE EXECUTE of the session''s statements');
SELECT is(kakunin.execute_as_agent('authenticated', 'EXPLAIN (COSTS OFF) SELECT 1')->'row_count', '1', 'EXPLAIN of a query is allowed');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'DO $d$ DECLARE v text; BEGIN v := pg_notify(''agents'', ''x'')::text; END $d$')$$),
    '^42501: pg_notify\(\) is not allowed', 'pg_notify() in a PL/pgSQL expression (planned, never an executor)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'DO $d$ DECLARE v text; BEGIN v := set_config(''search_path'', ''pg_temp'', false); END $d$')$$),
    '^42501: set_config\(\) is not allowed', 'set_config() in a PL/pgSQL expression');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'DO $d$ DECLARE c refcursor := ''planted''; BEGIN OPEN c FOR EXECUTE ''EXPLAIN SELECT 1''; END $d$')$$),
    '^42501: a cursor or portal opened by the query would outlive the call', 'a cursor over a utility statement, planted for later');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT lo_from_bytea(0, ''x'')')$$),
    '^42501: lo_from_bytea\(\) is not allowed', 'large objects (writable even in a read-only transaction)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT pg_advisory_lock(4242)')$$),
    '^42501: pg_advisory_lock\(\) is not allowed', 'session advisory locks (they outlive a rollback)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT setseed(0.5)')$$),
    '^42501: setseed\(\) is not allowed', 'setseed (the session''s random() after the call)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'SELECT pg_logical_emit_message(false, ''p'', ''x'')')$$),
    '^42501: pg_logical_emit_message\(\) is not allowed', 'WAL messages');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'CALL kakunin.bind_agent_session(pg_advisory_lock(4243)::text || setseed(0.25)::text, '''')')$$),
    '^42501: (pg_advisory_lock|setseed)\(\) is not allowed', 'denied functions in a CALL''s arguments (evaluated outside any plan)');
SELECT is((SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), 0::bigint,
    'and no advisory lock was taken');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT current_query()')$$),
    '^42501: current_query\(\) is not allowed', 'the caller''s whole query text (it may hold a key)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'SELECT kakunin.audit('' Agent.Execute '', ''{}'')', false)$$),
    '^42501: audit action " Agent.Execute " is reserved', 'nor a look-alike of it');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT * FROM pg_prepared_statements')$$),
    '^42501: pg_prepared_statement\(\) is not allowed', 'the session''s prepared statements');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'SELECT kakunin.audit(''agent.execute'', ''{"role": "forged"}'')', false)$$),
    '^42501: audit action "agent.execute" is reserved', 'forging the record of a call');
DECLARE sessions_cursor CURSOR FOR SELECT * FROM trades;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT 1')$$),
    '^42501: kakunin.execute_as_agent cannot run while the session has an open cursor', 'the session''s own cursor (the SQL could read it with the session''s rights)');
CLOSE sessions_cursor;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'SELECT kakunin.execute_as_agent(''authenticated'', ''SELECT 1'')')$$),
    '^42501: kakunin.execute_as_agent cannot be called from inside itself', 'nested calls');
SELECT is(pg_temp.state(), (SELECT s FROM before), 'after every refusal the session is exactly as before: role, binding, settings, rows, no prepared statement, cursor or channel');
SELECT is(pg_temp.refusals() - (SELECT r FROM before), 44::bigint,
    'every refusal is in the audit log though its transaction rolled back');
SELECT is((SELECT payload - 'query_sha256' FROM kakunin.audit_log
           WHERE action = 'agent.execute' AND payload ? 'sqlstate' ORDER BY id DESC LIMIT 1),
    '{"role": "authenticated", "read_only": true, "sqlstate": "42501"}', 'the entry names the role and the SQLSTATE');
SELECT is((SELECT actor_id FROM kakunin.audit_log WHERE action = 'agent.execute' ORDER BY id DESC LIMIT 1),
    'agent-b', 'and the bound agent as actor');

-- 3. Read-only means no write, even through a function; read-write goes through the role's policies.
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES (''agent-b'', ''TSLA'', ''XNYS'', 1, 1)')$$),
    '^25006: cannot execute INSERT in a read-only transaction', 'read_only refuses an INSERT');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT public.x_write()')$$),
    '^25006: cannot execute INSERT in a read-only transaction', 'and a write inside a volatile function');
SELECT is(kakunin.execute_as_agent('authenticated',
    'INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES (''agent-b'', ''TSLA'', ''XNYS'', 3, 1) RETURNING quantity', false),
    '{"rows": [{"quantity": 3}], "row_count": 1, "truncated": false}', 'read_only => false writes what the policies allow');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES (''agent-a'', ''AAPL'', ''XNAS'', 1, 1)', false)$$),
    '^42501: new row violates row-level security policy', 'and no more');
SELECT is(kakunin.execute_as_agent('authenticated', 'UPDATE trades SET quantity = quantity WHERE true', false)->'row_count',
    '2', 'an UPDATE touches only the agent''s rows (its row count)');
SELECT is((SELECT count(*) FROM trades WHERE agent_id = 'agent-a'), 3::bigint, 'agent-a''s rows are untouched');

-- 4. Limits.
SELECT is(kakunin.execute_as_agent('authenticated', 'SELECT g FROM generate_series(1, 10) g', true, 3),
    '{"rows": [{"g": 1}, {"g": 2}, {"g": 3}], "row_count": 3, "truncated": true}', 'max_rows caps the rows, truncated says so');
SELECT is(kakunin.execute_as_agent('authenticated', 'SELECT g FROM generate_series(1, 3) g', true, 3)->>'truncated',
    'false', 'exactly max_rows rows are not truncated');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT repeat(''x'', 9 * 1024 * 1024) AS big')$$),
    '^54000: the result is larger than 8 MiB', 'a result over 8 MiB is refused');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT 1', true, 100001)$$),
    '^22023: max_rows must be between 0 and 100000', 'max_rows is bounded');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', NULL)$$),
    '^22004: query must not be NULL', 'a NULL query');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', ' ; ')$$),
    '^22023: query holds no statement', 'an empty query');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELEC 1')$$),
    '^42601: syntax error', 'a syntax error is the parser''s');
CREATE TEMP TABLE before_timeout AS SELECT pg_temp.state() AS s;
SAVEPOINT timeout;
SET LOCAL statement_timeout = '300ms';
SELECT matches(pg_temp.cancel_of($$SELECT kakunin.execute_as_agent('authenticated', 'SELECT pg_sleep(5)')$$),
    '^57014: canceling statement due to statement timeout', 'statement_timeout applies');
ROLLBACK TO SAVEPOINT timeout;
SELECT is(pg_temp.state(), (SELECT s FROM before_timeout), 'the session is still exactly as it was');

-- 5. Which roles: refused with 42501 naming the reason.
CREATE ROLE x_bypass NOLOGIN BYPASSRLS;
CREATE ROLE x_super NOLOGIN SUPERUSER;
CREATE ROLE x_owner NOLOGIN;
CREATE ROLE x_inherits NOLOGIN;
CREATE ROLE x_sets_only NOLOGIN NOINHERIT;
CREATE ROLE x_deep NOLOGIN;
CREATE ROLE x_files NOLOGIN;
CREATE ROLE x_reads_all NOLOGIN IN ROLE pg_read_all_data;
CREATE ROLE x_replicates NOLOGIN REPLICATION;
GRANT x_bypass TO x_inherits;
GRANT x_inherits TO x_deep;
GRANT x_super TO x_sets_only;  -- NOINHERIT: SET only (PostgreSQL 15 has no per-grant INHERIT)
GRANT pg_read_server_files TO x_files;
CREATE TABLE public.x_unforced (x int);
ALTER TABLE public.x_unforced OWNER TO x_owner;
ALTER TABLE public.x_unforced ENABLE ROW LEVEL SECURITY;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('x_super', 'SELECT 1')$$),
    '^42501: role "x_super" cannot run agent SQL: it is a superuser', 'a superuser role');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('x_bypass', 'SELECT 1')$$),
    '^42501: role "x_bypass" cannot run agent SQL: it has BYPASSRLS', 'a BYPASSRLS role');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('x_owner', 'SELECT 1')$$),
    '^42501: role "x_owner" cannot run agent SQL: it owns table public.x_unforced, whose row-level security is not FORCEd',
    'the owner of a table whose RLS is not forced');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('x_deep', 'SELECT 1')$$),
    '^42501: role "x_deep" cannot run agent SQL: it can reach role x_bypass, which has BYPASSRLS',
    'a role reaching BYPASSRLS through nested membership');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('x_sets_only', 'SELECT 1')$$),
    '^42501: role "x_sets_only" cannot run agent SQL: it can reach role x_super, which is a superuser',
    'a membership without INHERIT counts too');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('x_files', 'SELECT 1')$$),
    '^42501: role "x_files" cannot run agent SQL: it can reach role pg_read_server_files, which grants privileges that leave the sandbox',
    'a role reaching pg_read_server_files');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('x_reads_all', 'SELECT 1')$$),
    '^42501: role "x_reads_all" cannot run agent SQL: it can reach role pg_read_all_data, which grants privileges',
    'a role reaching pg_read_all_data (it reads the extension''s secrets)');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('x_replicates', 'SELECT 1')$$),
    '^42501: role "x_replicates" cannot run agent SQL: it has REPLICATION', 'a REPLICATION role');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('kakunin_gateway', 'SELECT 1')$$),
    '^42501: role "kakunin_gateway" cannot run agent SQL: it grants privileges', 'kakunin_gateway itself');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('admin_user', 'SELECT 1')$$),
    '^42501: role "admin_user" cannot run agent SQL: it can reach role kakunin_admin', 'a kakunin_admin member');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('no_such_role', 'SELECT 1')$$),
    '^42704: role "no_such_role" does not exist', 'a role that does not exist');
ALTER TABLE public.x_unforced FORCE ROW LEVEL SECURITY;
SELECT is(kakunin.execute_as_agent('x_owner', 'SELECT 1 AS ok')->'row_count', '1', 'once FORCEd, its owner may run agent SQL');
CREATE ROLE x_later NOLOGIN;
SELECT is(kakunin.execute_as_agent('x_later', 'SELECT 1 AS ok')->'row_count', '1', 'a plain role may run agent SQL');
GRANT x_bypass TO x_later;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('x_later', 'SELECT 1')$$),
    '^42501: role "x_later" cannot run agent SQL: it can reach role x_bypass', 'until a grant makes it reach BYPASSRLS (the cached verdict follows the catalog)');

-- 6. A gateway's session: certificates are public and a gateway binds without proof, yet agent SQL cannot.
SAVEPOINT gateway;
SET SESSION AUTHORIZATION gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-b'));
SELECT set_config('request.headers',
    jsonb_build_object('x-kakunin-certificate', kakunin_test.url_escape(kakunin_test.cert('agent-a-chain')))::text, true);
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    format('CALL kakunin.bind_agent_session(%L)', kakunin_test.cert('agent-a-chain')))$$),
    '^42501: no identity can be bound', 'a gateway member''s agent SQL cannot bind another agent without proof');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated',
    'SELECT kakunin.pre_request()')$$),
    '^42501: no identity can be bound', 'nor through pre_request() with a certificate header');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('authenticated', 'SET ROLE kakunin_gateway')$$),
    '^42501: SET is not allowed', 'nor take the gateway role back');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.execute_as_agent('anon', 'SELECT 1')$$),
    '^42501: role "anon" cannot run agent SQL: the session user may not become it', 'only roles the session user may become');
SELECT is(kakunin.execute_as_agent('authenticated', 'SELECT count(*) AS n FROM trades')->'rows'->0->'n', '2',
    'the agent''s own rows only');
SELECT is(kakunin_agent_id(), 'agent-b', 'the gateway''s binding stands');
SELECT is(current_user::text, 'gateway_app', 'and the gateway is itself again');
RESET SESSION AUTHORIZATION;
ROLLBACK TO SAVEPOINT gateway;

-- 7. In other sessions: without a binding, 28000; PostgREST's RPC flow after pre_request().
SELECT is((SELECT r FROM dblink(kakunin_test.connstr('app_user'),
    $$SELECT kakunin_test.error_of('SELECT kakunin.execute_as_agent(''authenticated'', ''SELECT 1'')')$$) AS t(r text)),
    '28000: kakunin.execute_as_agent needs an identity bound earlier in this transaction (kakunin.bind_agent_session, bind_api_key, bind_agent_serial or pre_request)',
    'without a binding made earlier in the transaction: 28000');
SELECT dblink_connect('rpc', kakunin_test.connstr('authenticator'));
SELECT dblink_exec('rpc', 'BEGIN');
SELECT dblink_exec('rpc', 'SET LOCAL ROLE authenticated');
SELECT dblink_exec('rpc', format('SET LOCAL request.headers = %L',
    jsonb_build_object('x-kakunin-certificate', kakunin_test.url_escape(kakunin_test.cert('agent-b')),
                       'x-kakunin-proof', kakunin_test.proof('agent-b/9'))::text));
SELECT r FROM dblink('rpc', 'SELECT kakunin.pre_request()::text') AS t(r text);
SELECT is((SELECT r::jsonb FROM dblink('rpc',
    $$SELECT kakunin.execute_as_agent('authenticated', 'SELECT agent_id, instrument FROM trades')::text$$) AS t(r text)),
    '{"rows": [{"agent_id": "agent-b", "instrument": "TSLA"}], "row_count": 1, "truncated": false}',
    'from PostgREST: an RPC after pre_request() runs as the request role under the request''s identity');
SELECT dblink_exec('rpc', 'ROLLBACK');
SELECT dblink_disconnect('rpc');

SELECT * FROM finish();
ROLLBACK;
