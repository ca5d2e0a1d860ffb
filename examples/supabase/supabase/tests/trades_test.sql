-- pgTAP tests of the trades policies, as `supabase test db` or pg_prove runs
-- them: each agent is bound from the per-database test CA (no openssl, no
-- certificate files), then the test acts as Supabase's `authenticated`.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap WITH SCHEMA extensions;
SELECT plan(9);

-- A test CA for this transaction only (superuser; off in production).
SET LOCAL kakunin.allow_test_ca = on;
SELECT isnt(kakunin.enable_test_ca(), NULL, 'a test CA for this test');

INSERT INTO public.trades (agent_id, tenant_id, instrument, quantity) VALUES
    ('agt-1', 'tenant-1', 'AAPL', 10), ('agt-1', 'tenant-1', 'TSLA', 1), ('agt-2', 'tenant-2', 'AAPL', 5);

-- agt-1, permitted to trade AAPL only.
SELECT is(kakunin.bind_agent(kakunin.issue_test_certificate('agt-1', 'tenant-1', '{"instruments": ["AAPL"]}'))->>'agent_id',
    'agt-1', 'agt-1 is bound for this transaction');
SET LOCAL ROLE authenticated;
SELECT results_eq('SELECT agent_id, instrument, quantity FROM public.trades',
    $$VALUES ('agt-1', 'AAPL', 10::numeric)$$, 'agt-1 sees its own AAPL trade, not its TSLA one nor agt-2''s');
SELECT lives_ok($$INSERT INTO public.trades (agent_id, tenant_id, instrument, quantity) VALUES ('agt-1', 'tenant-1', 'AAPL', 1)$$,
    'agt-1 may trade AAPL');
SELECT throws_ok($$INSERT INTO public.trades (agent_id, tenant_id, instrument, quantity) VALUES ('agt-1', 'tenant-1', 'TSLA', 1)$$,
    '42501', NULL, 'but not TSLA, which its scope does not permit');
SELECT throws_ok($$INSERT INTO public.trades (agent_id, tenant_id, instrument, quantity) VALUES ('agt-2', 'tenant-2', 'AAPL', 1)$$,
    '42501', NULL, 'nor as another agent');
RESET ROLE;

-- Revoked: the same transaction's policies match nothing at once.
SELECT kakunin.set_certificate_status(kakunin_cert_serial(), 'revoked') IS NOT NULL AS revoked \gset
SET LOCAL ROLE authenticated;
SELECT is_empty('SELECT * FROM public.trades', 'once its certificate is revoked, agt-1 sees nothing');
RESET ROLE;

-- The advisor finds nothing unsafe in this project but the test CA itself.
SELECT is_empty($$SELECT name FROM kakunin.advisor() WHERE level = 'ERROR' AND name <> 'kakunin_test_trust_anchor'$$,
    'kakunin.advisor() reports no ERROR for the project');
SELECT is((SELECT count(*) FROM kakunin.advisor() WHERE name = 'kakunin_test_trust_anchor'), 1::bigint,
    'and reports the test CA (rolled back with this transaction)');

SELECT * FROM finish();
ROLLBACK;
