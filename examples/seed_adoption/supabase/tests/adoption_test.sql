-- After the migrations: the seed's policies call kakunin_pg's native helpers,
-- set_config() forges nothing, and an agent bound from a certificate gets
-- exactly what the policies say.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap WITH SCHEMA extensions;
SELECT plan(8);

SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'kakunin%'),
    0::bigint, 'the SQL helpers are gone from public');
SELECT is((SELECT array_agg(DISTINCT p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text)
           FROM pg_policy pol JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid
           JOIN pg_proc p ON p.oid = d.refobjid AND d.refclassid = 'pg_proc'::regclass
           WHERE pol.polrelid::regclass::text NOT LIKE 'kakunin.%' AND p.pronamespace = 'extensions'::regnamespace),
    ARRAY['kakunin_agent_id()', 'kakunin_cert_status()', 'kakunin_permitted_instruments()'],
    'every policy calls the native helpers (in extensions, on the search_path)');
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid::regclass::text NOT LIKE 'kakunin.%'), 4::bigint, 'all four of the seed''s policies are kept');
SELECT is_empty($$SELECT name FROM kakunin.advisor() WHERE name = 'kakunin_forgeable_helper'$$,
    'the advisor finds no forgeable helper');

GRANT SELECT, INSERT ON public.behavior_events, public.trades TO authenticated;
INSERT INTO public.behavior_events (agent_id, event_type) VALUES ('agt-1', 'login'), ('agt-2', 'login');

-- The seed's own binding, forged by the caller: no longer anyone.
SET LOCAL ROLE authenticated;
SELECT set_config('kakunin.agent_id', 'agt-2', true), set_config('kakunin.cert_status', 'active', true) \g /dev/null
SELECT is_empty('SELECT * FROM public.behavior_events', 'set_config() no longer makes anyone an agent');
RESET ROLE;

-- A certificate binding (from the per-database test CA).
SET LOCAL kakunin.allow_test_ca = on;
SELECT kakunin.enable_test_ca() IS NOT NULL AS ca \gset
SELECT kakunin.bind_agent(kakunin.issue_test_certificate('agt-1', NULL, '{"instruments": ["AAPL"]}')) IS NOT NULL AS bound \gset
SET LOCAL ROLE authenticated;
SELECT results_eq('SELECT agent_id FROM public.behavior_events', $$VALUES ('agt-1')$$, 'agt-1 reads its own events');
SELECT lives_ok($$INSERT INTO public.trades (agent_id, instrument, quantity) VALUES ('agt-1', 'AAPL', 1)$$,
    'and trades an instrument in its scope');
SELECT throws_ok($$INSERT INTO public.trades (agent_id, instrument, quantity) VALUES ('agt-1', 'TSLA', 1)$$,
    '42501', NULL, 'but not one outside it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
