-- Parallel query: the helpers are PARALLEL SAFE, parallel plans happen, and a
-- plan forced parallel returns exactly the rows the serial plan returns.
BEGIN;
SELECT plan(8);
CALL kakunin_test.share_pgtap();

SELECT is(
    (SELECT array_agg(DISTINCT p.proparallel::text) FROM pg_proc p
     WHERE p.proname IN ('kakunin_agent_id', 'kakunin_cert_status', 'kakunin_active_agent_id',
                         'kakunin_permitted_instruments', 'kakunin_permitted_venues', 'kakunin_scope',
                         'kakunin_tenant_id', 'kakunin_cert_serial')),
    ARRAY['s'], 'every policy helper is PARALLEL SAFE');
SELECT is(
    (SELECT array_agg(DISTINCT p.provolatile::text) FROM pg_proc p
     WHERE p.proname LIKE 'kakunin\_%' AND p.pronamespace = 'public'::regnamespace),
    ARRAY['s'], 'every policy helper is STABLE');

-- Enough rows for a parallel scan, owned by two agents.
CREATE TEMP TABLE big_trades (agent_id text, instrument text);
INSERT INTO big_trades
SELECT CASE WHEN g % 2 = 0 THEN 'agent-a' ELSE 'agent-b' END,
       (ARRAY['AAPL', 'MSFT', 'TSLA', 'IBM'])[1 + g % 4]
FROM generate_series(1, 200000) g;
CREATE TABLE public.parallel_trades AS SELECT * FROM big_trades;
ALTER TABLE public.parallel_trades ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON public.parallel_trades
    USING (agent_id = kakunin_agent_id() AND kakunin_cert_status() = 'active'
           AND instrument = ANY (kakunin_permitted_instruments()));
GRANT SELECT ON public.parallel_trades TO authenticated;
ANALYZE public.parallel_trades;

SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SET LOCAL ROLE authenticated;

SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial_answer AS
    SELECT instrument, count(*) AS n FROM public.parallel_trades GROUP BY instrument;
SELECT is((SELECT sum(n) FROM serial_answer), 50000::numeric, 'serial plan: agent-a sees 50,000 in-scope rows');

SET LOCAL max_parallel_workers_per_gather = 4;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
-- force_parallel_mode is debug_parallel_query from PostgreSQL 16 on.
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'on', true) \g /dev/null
SELECT ok(
    (SELECT string_agg(line, E'\n') FROM kakunin_test.explain(
        'SELECT instrument, count(*) FROM public.parallel_trades GROUP BY instrument') AS line) ~ 'Workers Planned: [1-9]',
    'the policy query gets a parallel plan');
SELECT set_eq(
    'SELECT instrument, count(*) FROM public.parallel_trades GROUP BY instrument',
    'SELECT instrument, n FROM serial_answer',
    'forced parallel plan returns exactly the serial answer');
SELECT is(
    (SELECT count(DISTINCT kakunin_agent_id()) FROM public.parallel_trades),
    1::bigint, 'workers see the bound agent id');

-- Revocation reaches parallel workers at the next statement.
RESET ROLE;
SET ROLE admin_user;
SELECT kakunin.set_certificate_status(kakunin_cert_serial(), 'revoked', 'test') \g /dev/null
RESET ROLE;
SET ROLE gateway_app;
SET LOCAL ROLE authenticated;
SELECT is((SELECT count(*) FROM public.parallel_trades), 0::bigint, 'revoked: the parallel plan returns zero rows');
RESET ROLE;

SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'off', true) \g /dev/null
SELECT is(kakunin_agent_id(), 'agent-a', 'the leader keeps its binding');
SELECT * FROM finish();
ROLLBACK;
