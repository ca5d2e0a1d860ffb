-- Attacks on the binding: nobody but a successful bind can change what the
-- helpers return, and nothing outlives the transaction. The seed's baseline
-- (helpers over plain custom settings) falls to the first attack.
BEGIN;
SELECT plan(23);
CALL kakunin_test.share_pgtap();

-- The baseline is fooled: any role can set a plain custom setting.
SET ROLE app_user;
SELECT set_config('app.agent_id', 'agent-b', true), set_config('app.cert_status', 'active', true),
       set_config('app.permitted_instruments', 'TSLA,AAPL', true) \g /dev/null
SELECT is((SELECT count(*) FROM seed_trades), 2::bigint,
    'baseline: app_user forges app.agent_id and reads agent-b''s trades');
SELECT is((SELECT count(*) FROM trades), 0::bigint, 'kakunin: the same role sees nothing without a bind');

-- The same attack against kakunin's own setting.
SELECT matches(kakunin_test.error_of($$SELECT set_config('kakunin.binding', '1|{"agent_id":"agent-b"}', true)$$),
    '^42501: permission denied to set parameter "kakunin.binding"', 'set_config on kakunin.binding is refused');
SELECT matches(kakunin_test.error_of($$SET LOCAL kakunin.binding = '1|{"agent_id":"agent-b"}'$$),
    '^42501: permission denied to set parameter "kakunin.binding"', 'SET LOCAL is refused');
SELECT matches(kakunin_test.error_of($$SET kakunin.binding = '1|{"agent_id":"agent-b"}'$$),
    '^42501: permission denied to set parameter "kakunin.binding"', 'SET is refused');
SELECT matches(kakunin_test.error_of($$RESET kakunin.binding$$),
    '^42501: permission denied to set parameter "kakunin.binding"', 'RESET is refused');
SELECT matches(kakunin_test.error_of($$ALTER ROLE app_user SET kakunin.binding = 'x'$$),
    '^42501: permission denied', 'ALTER ROLE ... SET is refused');
SELECT matches(kakunin_test.error_of($$CREATE FUNCTION pg_temp.f() RETURNS text LANGUAGE sql
    SET kakunin.binding = '1|{}' AS 'SELECT kakunin_agent_id()'$$),
    '^42501: permission denied', 'a function SET clause is refused');
RESET ROLE;

-- The table owner is not trusted either (FORCE ROW LEVEL SECURITY).
SET ROLE table_owner;
SELECT matches(kakunin_test.error_of($$SELECT set_config('kakunin.binding', 'x', true)$$),
    '^42501: permission denied', 'the table owner cannot set the binding');
SELECT is((SELECT count(*) FROM trades), 0::bigint, 'the table owner sees no trade unbound');
RESET ROLE;

-- Even a superuser cannot write it directly: only bind can.
SELECT matches(kakunin_test.error_of($$SET LOCAL kakunin.binding = '1|{"agent_id":"agent-b"}'$$),
    '^42501: kakunin.binding can only be set by kakunin.bind_agent_session\(\)$', 'a superuser SET is refused by the check hook');
SELECT matches(kakunin_test.error_of($$ALTER ROLE app_user SET kakunin.binding = 'x'$$),
    '^42501: kakunin.binding can only be set by kakunin.bind_agent_session\(\)$', 'a superuser ALTER ROLE SET is refused');
SELECT is(kakunin_agent_id(), NULL, 'nothing was bound by any attempt');

-- A non-gateway role cannot swap agents inside one transaction.
SET ROLE app_user;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-b'), kakunin_test.proof('agent-b/3'));
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'), kakunin_test.proof('agent-a/4'))$$),
    '^28000: agent "agent-b" is already bound', 'rebinding to another agent is refused');
RESET ROLE;

-- Fresh sessions (dblink): placeholders and connection options set before the
-- library loads, and what survives COMMIT, ROLLBACK and autocommit.
SELECT dblink_connect('placeholder', kakunin_test.connstr('app_user')) \g /dev/null
SELECT is((SELECT v FROM dblink('placeholder', $$SELECT current_setting('kakunin.binding', true)$$) AS t(v text)),
    NULL, 'a fresh session has not loaded kakunin_pg yet');
SELECT dblink_exec('placeholder', $$SET kakunin.binding = '1|{"agent_id":"agent-b","tenant_id":null,"serial":"00","not_after":9999999999,"instruments":["TSLA"],"venues":[],"scope":{},"fingerprint":"","method":"gateway"}'$$) \g /dev/null
SELECT is((SELECT v FROM dblink('placeholder', 'SELECT kakunin_agent_id()') AS t(v text)),
    NULL, 'a placeholder set before the library loaded is discarded');
SELECT is((SELECT v FROM dblink('placeholder', 'SELECT count(*)::text FROM trades') AS t(v text)),
    '0', '... and admits no rows');
SELECT dblink_disconnect('placeholder') \g /dev/null

SELECT dblink_connect('options', kakunin_test.connstr('app_user', false,
    $$options='-c kakunin.binding=1|{"agent_id":"agent-b"}'$$)) \g /dev/null
SELECT is((SELECT v FROM dblink('options', 'SELECT kakunin_agent_id()') AS t(v text)),
    NULL, 'a binding passed in connection options is discarded');
SELECT dblink_disconnect('options') \g /dev/null

SELECT dblink_connect('life', kakunin_test.connstr('gateway_app')) \g /dev/null
SELECT dblink_exec('life', 'BEGIN') \g /dev/null
SELECT is((SELECT v FROM dblink('life', format('SELECT kakunin.bind_agent(%L)->>''agent_id''', kakunin_test.cert('agent-b'))) AS t(v text)),
    'agent-b', 'bound in a transaction of another session');
SELECT dblink_exec('life', 'COMMIT') \g /dev/null
SELECT is((SELECT v FROM dblink('life', 'SELECT kakunin_agent_id()') AS t(v text)), NULL, 'nothing survives COMMIT');
SELECT dblink_exec('life', 'BEGIN') \g /dev/null
SELECT * FROM dblink('life', format('SELECT kakunin.bind_agent(%L)::text', kakunin_test.cert('agent-b'))) AS t(v text) \g /dev/null
SELECT dblink_exec('life', 'ROLLBACK') \g /dev/null
SELECT is((SELECT v FROM dblink('life', 'SELECT kakunin_agent_id()') AS t(v text)), NULL, 'nothing survives ROLLBACK');
SELECT is((SELECT v FROM dblink('life', format('SELECT kakunin.bind_agent(%L)->>''agent_id''', kakunin_test.cert('agent-b'))) AS t(v text)),
    'agent-b', 'a bind outside a transaction block works for its own statement');
SELECT is((SELECT v FROM dblink('life', 'SELECT kakunin_agent_id()') AS t(v text)), NULL, '... and is gone at the next one');
SELECT dblink_disconnect('life') \g /dev/null

SELECT * FROM finish();
ROLLBACK;
