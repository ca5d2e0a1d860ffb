-- The policy helpers as policy authors see them: values, isolation, scope.
BEGIN;
SELECT plan(27);
CALL kakunin_test.share_pgtap();

-- Unbound: every helper answers NULL or an empty array.
SET ROLE app_user;
SELECT is(kakunin_agent_id(), NULL, 'unbound: kakunin_agent_id() is NULL');
SELECT is(kakunin_cert_status(), NULL, 'unbound: kakunin_cert_status() is NULL');
SELECT is(kakunin_active_agent_id(), NULL, 'unbound: kakunin_active_agent_id() is NULL');
SELECT is(kakunin_tenant_id(), NULL, 'unbound: kakunin_tenant_id() is NULL');
SELECT is(kakunin_cert_serial(), NULL, 'unbound: kakunin_cert_serial() is NULL');
SELECT is(kakunin_scope(), NULL, 'unbound: kakunin_scope() is NULL');
SELECT is(kakunin_permitted_instruments(), '{}'::text[], 'unbound: no permitted instruments');
SELECT is(kakunin_permitted_venues(), '{}'::text[], 'unbound: no permitted venues');
SELECT is((SELECT count(*) FROM trades), 0::bigint, 'unbound: policies admit no trade');
RESET ROLE;

-- The gateway flow: bind as the gateway, then SET LOCAL ROLE to the policy role.
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SET LOCAL ROLE authenticated;
SELECT is(kakunin_agent_id(), 'agent-a', 'agent id from the SAN URI');
SELECT is(kakunin_tenant_id(), 'tenant-1', 'tenant id from the SAN URI');
SELECT is(kakunin_cert_status(), 'active', 'status active');
SELECT is(kakunin_active_agent_id(), 'agent-a', 'active agent id while active');
SELECT is(kakunin_cert_serial(),
          (SELECT (kakunin.validate_certificate(kakunin_test.cert('agent-a-chain')))->>'serial'),
          'serial as validate_certificate reports it');
SELECT matches(kakunin_cert_serial(), '^[0-9a-f]+$', 'serial is lowercase hex without separators');
SELECT is(kakunin_permitted_instruments(), '{AAPL,MSFT}'::text[], 'instruments from the scope extension');
SELECT is(kakunin_permitted_venues(), '{XNAS}'::text[], 'venues from the scope extension');
SELECT is(kakunin_scope() -> 'limits' ->> 'max_notional', '1000000', 'limits in kakunin_scope()');
SELECT results_eq('SELECT instrument FROM trades ORDER BY instrument',
    ARRAY['AAPL', 'MSFT'], 'agent-a sees its own in-scope trades only');
SELECT results_eq('SELECT count(*) FROM behavior_events', ARRAY[2::bigint], 'agent-a sees its own events only');

-- Scope on INSERT: in scope passes, out of scope or as another agent is refused.
SELECT lives_ok($$INSERT INTO trades (agent_id, instrument, venue, quantity, price)
                  VALUES ('agent-a', 'AAPL', 'XNAS', 1, 1)$$, 'in-scope trade is accepted');
SELECT throws_ok($$INSERT INTO trades (agent_id, instrument, venue, quantity, price)
                   VALUES ('agent-a', 'TSLA', 'XNAS', 1, 1)$$, '42501', NULL,
                 'out-of-scope instrument is refused on INSERT');
SELECT throws_ok($$INSERT INTO trades (agent_id, instrument, venue, quantity, price)
                   VALUES ('agent-a', 'AAPL', 'XLON', 1, 1)$$, '42501', NULL,
                 'out-of-scope venue is refused on INSERT');
SELECT throws_ok($$INSERT INTO trades (agent_id, instrument, venue, quantity, price)
                   VALUES ('agent-b', 'AAPL', 'XNAS', 1, 1)$$, '42501', NULL,
                 'writing as another agent is refused');
SELECT throws_ok($$INSERT INTO audit_log (agent_id, action) VALUES ('agent-b', 'x')$$, '42501', NULL,
                 'audit entries only as the bound agent');
RESET ROLE;

-- A gateway may bind another agent in the same transaction (it serves many).
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-b'));
SET LOCAL ROLE authenticated;
SELECT results_eq('SELECT agent_id || '':'' || instrument FROM trades ORDER BY 1',
    ARRAY['agent-b:TSLA'], 'agent-b sees only its own in-scope trade');
SELECT is(kakunin_tenant_id(), 'tenant-2', 'the rebinding replaced the tenant too');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
