-- Behind a real PgBouncer in transaction mode with ONE server connection, two
-- clients interleave binds and queries; neither ever sees the other's binding.
BEGIN;
SELECT plan(11);

SELECT dblink_connect('a', kakunin_test.connstr('gateway_app', true)) \g /dev/null
SELECT dblink_connect('b', kakunin_test.connstr('gateway_app', true)) \g /dev/null
CREATE FUNCTION pg_temp.ask(conn text, sql text) RETURNS text LANGUAGE sql AS
$$ SELECT v FROM dblink(conn, sql) AS t(v text) $$;

SELECT dblink_exec('a', 'BEGIN') \g /dev/null
SELECT is(pg_temp.ask('a', format('SELECT kakunin.bind_agent(%L)->>''agent_id''', kakunin_test.cert('agent-a-chain'))),
    'agent-a', 'client A binds agent-a in its transaction');
SELECT is(pg_temp.ask('a', 'SELECT kakunin_agent_id()'), 'agent-a', 'client A sees agent-a');
CREATE TEMP TABLE pids AS SELECT pg_temp.ask('a', 'SELECT pg_backend_pid()::text') AS a_pid;
-- Client B's query waits in PgBouncer for the only server connection.
SELECT dblink_send_query('b', 'SELECT coalesce(kakunin_agent_id(), ''<none>'') || '' on '' || pg_backend_pid()') \g /dev/null
SELECT dblink_exec('a', 'COMMIT') \g /dev/null
SELECT is((SELECT v FROM dblink_get_result('b') AS t(v text)), '<none> on ' || (SELECT a_pid FROM pids),
    'client B runs on the same server connection right after A commits and sees no binding');
SELECT is((SELECT v FROM dblink_get_result('b') AS t(v text)), NULL, '(end of B''s result)');

SELECT dblink_exec('b', 'BEGIN') \g /dev/null
SELECT is(pg_temp.ask('b', format('SELECT kakunin.bind_agent(%L)->>''agent_id''', kakunin_test.cert('agent-b'))),
    'agent-b', 'client B binds agent-b');
SELECT is(pg_temp.ask('b', 'SET LOCAL ROLE authenticated; SELECT string_agg(instrument, '','') FROM trades'),
    'TSLA', 'client B sees only agent-b''s trades');
SELECT dblink_send_query('a', 'SELECT coalesce(kakunin_agent_id(), ''<none>'') || '' on '' || pg_backend_pid()') \g /dev/null
SELECT dblink_exec('b', 'ROLLBACK') \g /dev/null
SELECT is((SELECT v FROM dblink_get_result('a') AS t(v text)), '<none> on ' || (SELECT a_pid FROM pids),
    'client A, next on that connection after B''s rollback, sees no binding');
SELECT is((SELECT v FROM dblink_get_result('a') AS t(v text)), NULL, '(end of A''s result)');

-- An autocommit bind does not outlive its statement either.
SELECT is(pg_temp.ask('a', format('SELECT kakunin.bind_agent(%L)->>''agent_id''', kakunin_test.cert('agent-a-chain'))),
    'agent-a', 'client A binds outside a transaction block');
SELECT is(pg_temp.ask('b', 'SELECT coalesce(kakunin_agent_id(), ''<none>'')'), '<none>', 'client B does not inherit it');
SELECT is(pg_temp.ask('b', 'SET ROLE authenticated; SELECT count(*)::text FROM trades'), '0',
    'client B''s policies admit nothing');
SELECT dblink_exec('b', 'RESET ROLE') \g /dev/null

SELECT dblink_disconnect('a') \g /dev/null
SELECT dblink_disconnect('b') \g /dev/null
SELECT * FROM finish();
ROLLBACK;
