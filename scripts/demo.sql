-- The walk-through scripts/demo.sh runs (psql variables: root, agent_a, agent_b, rogue).
\set QUIET on
\pset footer off
\echo
\echo '== 1. Install kakunin_pg and the example schema (trades, behavior_events, audit_log)'
\echo '   Policies say: own rows, certificate active, instrument in scope:'
\echo '     agent_id = kakunin_agent_id() AND kakunin_cert_status() = ''active'''
\echo '     AND instrument = ANY (kakunin_permitted_instruments())'
CREATE EXTENSION kakunin_pg;
\i sql/examples/agent_schema.sql
CREATE ROLE demo_gateway LOGIN IN ROLE kakunin_gateway;
CREATE ROLE demo_admin LOGIN IN ROLE kakunin_admin;
CREATE ROLE authenticated NOLOGIN;
GRANT authenticated TO demo_gateway;
GRANT SELECT, INSERT ON trades, behavior_events, audit_log TO authenticated;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO authenticated;
INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES
    ('agent-a', 'AAPL', 'XNAS', 100, 189.5), ('agent-a', 'MSFT', 'XNAS', 40, 410.0),
    ('agent-b', 'TSLA', 'XNYS', 25, 251.2), ('agent-b', 'TSLA', 'XNYS', 10, 249.9);

\echo
\echo '== 2. Trust the demo root CA (as a kakunin_admin member)'
SET ROLE demo_admin;
SELECT name, subject FROM jsonb_to_record(kakunin.add_trust_anchor(:'root', 'demo root')) AS t(name text, subject text);
RESET ROLE;

\echo
\echo '== 3. The gateway binds agent-a (mTLS terminated upstream), then acts as "authenticated"'
BEGIN;
SET ROLE demo_gateway;
CALL kakunin.bind_agent_session(:'agent_a');
SET LOCAL ROLE authenticated;
SELECT kakunin_agent_id() AS agent, kakunin_cert_status() AS status,
       kakunin_permitted_instruments() AS instruments;
\echo '   agent-a sees only its own trades:'
SELECT agent_id, instrument, venue, quantity FROM trades ORDER BY id;
COMMIT;

\echo
\echo '== 4. Same connection, next transaction: the binding is gone, so nothing is visible'
SET ROLE authenticated;
SELECT kakunin_agent_id() AS agent, (SELECT count(*) FROM trades) AS visible_trades;
RESET ROLE;

\echo
\echo '== 5. The gateway binds agent-b: a different agent, different rows'
BEGIN;
SET ROLE demo_gateway;
CALL kakunin.bind_agent_session(:'agent_b');
SET LOCAL ROLE authenticated;
SELECT agent_id, instrument, venue, quantity FROM trades ORDER BY id;
COMMIT;

\echo
\echo '== 6. agent-a tries to trade TSLA, which is outside its financial scope (the ERROR below is the refusal)'
BEGIN;
SET ROLE demo_gateway;
CALL kakunin.bind_agent_session(:'agent_a');
SET LOCAL ROLE authenticated;
\set ON_ERROR_STOP off
INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES ('agent-a', 'TSLA', 'XNAS', 1, 250);
\set ON_ERROR_STOP on
ROLLBACK;

\echo
\echo '== 7. An administrator revokes agent-b: every policy gated on status = active returns zero rows'
SET ROLE demo_admin;
SELECT kakunin.set_certificate_status(kakunin.validate_certificate(:'agent_b')->>'serial', 'revoked', 'key compromise')->>'status' AS agent_b_now;
RESET ROLE;
BEGIN;
SET ROLE demo_gateway;
CALL kakunin.bind_agent_session(:'agent_b');
SET LOCAL ROLE authenticated;
SELECT kakunin_agent_id() AS agent, kakunin_cert_status() AS status, (SELECT count(*) FROM trades) AS visible_trades;
COMMIT;

\echo
\echo '== 8. Attacks: forging the binding, and a look-alike certificate from an untrusted CA (both ERRORs below are refusals)'
SET ROLE authenticated;
\set ON_ERROR_STOP off
SELECT set_config('kakunin.binding', '1|{"agent_id":"agent-a"}', true);
\set ON_ERROR_STOP on
RESET ROLE;
BEGIN;
SET ROLE demo_gateway;
\set ON_ERROR_STOP off
CALL kakunin.bind_agent_session(:'rogue');
\set ON_ERROR_STOP on
ROLLBACK;

\echo
\echo '== 9. An agent tool holding a connection (the seed''s recipe: a privileged login role).'
\echo '   Its SQL goes through kakunin.execute_as_agent: run as "authenticated" under agent-a, no way out.'
-- The tool: runs what the agent wrote; a refusal is shown, not fatal.
CREATE FUNCTION pg_temp.agent_tool(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN kakunin.execute_as_agent('authenticated', query)::text;
EXCEPTION WHEN OTHERS THEN
    RETURN 'refused (' || SQLSTATE || '): ' || SQLERRM;
END $$;
BEGIN;
SET ROLE demo_gateway;
CALL kakunin.bind_agent_session(:'agent_a');
SELECT attempt AS "the agent's SQL", pg_temp.agent_tool(query) AS outcome FROM (VALUES
    ('SELECT agent_id, instrument, quantity FROM trades', 'SELECT agent_id, instrument, quantity FROM trades ORDER BY id'),
    ('RESET ROLE', 'RESET ROLE'),
    ('SET ROLE postgres', 'SET ROLE postgres'),
    ('set_config(''role'', …)', 'SELECT set_config(''role'', ''none'', true)'),
    ('COMMIT, then carry on unbound', 'COMMIT; SELECT * FROM trades'),
    ('bind agent-b (certificates are public)', format('CALL kakunin.bind_agent_session(%L)', :'agent_b')),
    ('SET row_security = off', 'SET row_security = off'),
    ('COPY … TO PROGRAM', 'COPY trades TO PROGRAM ''cat'''),
    ('NOTIFY other sessions', 'SELECT pg_notify(''ops'', ''hi'')'),
    ('PREPARE for later', 'PREPARE later AS SELECT * FROM trades'),
    ('write while read-only', 'INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES (''agent-a'', ''AAPL'', ''XNAS'', 1, 1)')
) AS t(attempt, query);
SELECT current_user AS "the session is still", kakunin_agent_id() AS "bound";
COMMIT;
RESET ROLE;
\echo '   Every call is in the audit log, refusals included (their transaction rolled back):'
SELECT actor_id, coalesce('row_count ' || (payload->>'row_count'), 'refused ' || (payload->>'sqlstate')) AS outcome,
       count(*) AS calls
FROM kakunin.audit_log WHERE action = 'agent.execute' GROUP BY 1, 2 ORDER BY 2;

\echo
\echo 'Done: two agents isolated, a revoked agent sees nothing, scope enforced on INSERT, forgery refused,'
\echo 'and an agent''s own SQL kept inside its identity.'
