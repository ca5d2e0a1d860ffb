-- Issue 12: the test kit. A policy author's test binds an agent from a
-- per-database test CA without openssl; the CA exists only where a superuser
-- allowed it, its key is out of every other role's reach, its anchor is
-- trusted only while allowed, and the advisor reports it.
BEGIN;
SELECT plan(32);

-- Off by default: nothing can be made, and no other role can turn it on.
SELECT kakunin_agent_id() \g /dev/null
SELECT is(current_setting('kakunin.allow_test_ca'), 'off', 'kakunin.allow_test_ca is off by default');
SELECT is(kakunin_test.error_of('SELECT kakunin.enable_test_ca()'),
    '55000: kakunin.enable_test_ca is refused: test CAs are off in this database; a superuser may SET kakunin.allow_test_ca = on in a test database',
    'enable_test_ca is refused while kakunin.allow_test_ca is off');
SELECT is(kakunin_test.error_of('SELECT kakunin.issue_test_certificate(''agt-1'')'),
    '55000: kakunin.issue_test_certificate is refused: test CAs are off in this database; a superuser may SET kakunin.allow_test_ca = on in a test database',
    'issue_test_certificate too');
SELECT matches(kakunin_test.error_of('SET LOCAL ROLE admin_user; SET kakunin.allow_test_ca = on'),
    '^42501: permission denied to set parameter "kakunin.allow_test_ca"', 'only a superuser may turn it on');
SELECT is((SELECT count(*) FROM kakunin.trust_anchors WHERE test_anchor), 0::bigint, 'no test anchor was made');

SET LOCAL kakunin.allow_test_ca = on;
SELECT is(kakunin_test.error_of('SET LOCAL ROLE admin_user; SELECT kakunin.enable_test_ca()'),
    '42501: permission denied for function enable_test_ca', 'kakunin_admin may not create a test CA');
SELECT is(kakunin_test.error_of('SELECT kakunin.issue_test_certificate(''agt-1'')'),
    '55000: this database has no test CA: call kakunin.enable_test_ca() first', 'issuing needs a test CA first');

-- The issue's example, word for word (the suite's trades table and policy).
SELECT kakunin.enable_test_ca() AS ca \gset
SELECT matches(:'ca'::text, '^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$', 'enable_test_ca returns the CA certificate (PEM)');
SELECT is(kakunin.enable_test_ca(), :'ca'::text, 'a second call returns the same CA');
SELECT is((SELECT array_agg(name) FROM kakunin.trust_anchors WHERE test_anchor), ARRAY['kakunin-test-ca'],
    'the CA is a trust anchor marked as a test anchor');
SELECT is((SELECT count(*) FROM kakunin.test_ca), 1::bigint, 'its key is in kakunin.test_ca');
SELECT is(kakunin_test.error_of(format('SET LOCAL ROLE admin_user; SELECT kakunin.add_trust_anchor(%L, ''laundered'')', :'ca')),
    '22023: trust anchor is a kakunin test CA (made by kakunin.enable_test_ca); it can only be trusted as a test anchor',
    'kakunin_admin cannot trust the test CA as a production anchor');
SAVEPOINT as_agent;
SELECT kakunin.bind_agent(kakunin.issue_test_certificate('agent-a', 'tenant-1', '{"instruments": ["AAPL"]}')) \g /dev/null
SET LOCAL ROLE authenticated;
SELECT results_eq('SELECT agent_id, instrument FROM trades', $$VALUES ('agent-a', 'AAPL')$$,
    'bound from a test certificate, the policy admits exactly the agent''s rows in its scope');
SELECT is(kakunin_tenant_id(), 'tenant-1', 'the tenant is bound');
SELECT is(kakunin_cert_status(), 'active', 'and the status is active');
RESET ROLE;
ROLLBACK TO as_agent;

-- What the certificate holds, as validate_certificate reads it.
SELECT kakunin.issue_test_certificate('agt-2', NULL, '{"instruments": ["TSLA"], "venues": ["XNYS"], "limits": {"max_notional": 5}}', '10 minutes') AS leaf \gset
SELECT is((SELECT v - 'serial' - 'not_after' - 'not_before' FROM kakunin.validate_certificate(:'leaf') v),
    '{"valid": true, "reason": null, "status": "active", "agent_id": "agt-2", "tenant_id": null, "scope": {"instruments": ["TSLA"], "venues": ["XNYS"], "limits": {"max_notional": 5}}}'::jsonb,
    'the profile: agent id, no tenant, the scope as given');
SELECT ok((SELECT (v->>'not_after')::timestamptz BETWEEN now() + '9 minutes' AND now() + '11 minutes' FROM kakunin.validate_certificate(:'leaf') v),
    'valid for what valid_for says');
SELECT is((SELECT count(*) FROM kakunin.audit_log WHERE action = 'kakunin.test_ca.certificate_issued' AND payload->>'agent_id' = 'agt-2'),
    1::bigint, 'issuing is audited');

-- Bad requests, in the caller's terms.
SELECT is(kakunin_test.error_of('SELECT kakunin.issue_test_certificate(''agt 1'')'),
    '22023: agent id contains whitespace or control characters', 'an agent id the profile would refuse');
SELECT is(kakunin_test.error_of('SELECT kakunin.issue_test_certificate(''a'', valid_for => ''-1 hour'')'),
    '22023: valid_for must be positive', 'a negative validity');
SELECT is(kakunin_test.error_of('SELECT kakunin.issue_test_certificate(''a'', valid_for => ''20 years'')'),
    '22023: valid_for ends after the test CA expires', 'a validity past the CA''s');
SELECT is(kakunin_test.error_of('SELECT kakunin.issue_test_certificate(''a'', scope => ''["AAPL"]'')'),
    '22023: scope must be a JSON object', 'a scope that is not an object');
SELECT is(kakunin_test.error_of('SET LOCAL ROLE admin_user; SELECT kakunin.issue_test_certificate(''a'')'),
    '42501: permission denied for function issue_test_certificate', 'kakunin_admin may not issue');

-- The key is out of reach of every role but superusers; kakunin_admin sees that it exists.
SELECT is(kakunin_test.error_of('SET LOCAL ROLE admin_user; SELECT private_key FROM kakunin.test_ca'),
    '42501: permission denied for table test_ca', 'kakunin_admin cannot read the key');
SELECT is(kakunin_test.error_of('SET LOCAL ROLE app_user; SELECT anchor_name FROM kakunin.test_ca'),
    '42501: permission denied for table test_ca', 'an agent cannot read the table');

-- The advisor reports it.
SET LOCAL ROLE admin_user;
SELECT is((SELECT level || ' ' || detail FROM kakunin.advisor() WHERE name = 'kakunin_test_trust_anchor'),
    'ERROR Trust anchor kakunin-test-ca (O=kakunin test, CN=kakunin test CA of database ' || current_database()
        || ') is a test anchor and its private key is in kakunin.test_ca; kakunin.allow_test_ca is on.',
    'kakunin_test_trust_anchor: an ERROR while a test CA exists');
RESET ROLE;

-- Once the setting is off, the anchor trusts nothing (fail closed), and says why.
SELECT kakunin.issue_test_certificate('agent-a') AS later \gset
SET LOCAL kakunin.allow_test_ca = off;
SELECT is(kakunin_test.error_of(format('SELECT kakunin.bind_agent(%L)', :'later')),
    '28000: certificate does not chain to a trusted anchor: its issuer is not a trust anchor nor a supplied intermediate (test anchors are trusted only while kakunin.allow_test_ca is on)',
    'with kakunin.allow_test_ca off a test certificate does not bind');
SELECT is(kakunin_agent_id(), NULL, 'and nothing was bound');

-- disable_test_ca removes the CA, its key and its anchor, whatever the setting.
SELECT is(kakunin_test.error_of('SET LOCAL ROLE admin_user; SELECT kakunin.disable_test_ca()'),
    '42501: permission denied for function disable_test_ca', 'kakunin_admin may not remove it either');
SELECT is(ARRAY[kakunin.disable_test_ca(), kakunin.disable_test_ca()], ARRAY[true, false],
    'disable_test_ca: true once, then false');
SELECT is((SELECT count(*) FROM kakunin.trust_anchors WHERE test_anchor) + (SELECT count(*) FROM kakunin.test_ca), 0::bigint,
    'no test anchor and no key are left');
SET LOCAL kakunin.allow_test_ca = on;
SELECT matches(kakunin_test.error_of(format('SELECT kakunin.bind_agent(%L)', :'later')),
    '^28000: certificate does not chain to a trusted anchor', 'a certificate from the removed CA no longer binds');

SELECT * FROM finish();
ROLLBACK;
