-- Every reason a bind is refused: class 28 (28000), a message naming the
-- problem, nothing bound, and the server still answering.
BEGIN;
SELECT plan(24);
CALL kakunin_test.share_pgtap();
SET ROLE gateway_app;

SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(NULL)$$),
    '^28000: certificate must not be NULL$', 'NULL certificate');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session('')$$),
    '^28000: certificate is empty$', 'empty certificate');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(E'   \n\t  ')$$),
    '^28000: certificate is empty$', 'whitespace-only certificate');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session('not a certificate')$$),
    '^28000: certificate is neither PEM nor base64-encoded DER$', 'garbage text');
SELECT matches(kakunin_test.error_of(
    $$CALL kakunin.bind_agent_session(E'-----BEGIN CERTIFICATE-----\nAAAA\n')$$),
    '^28000: certificate PEM is malformed', 'truncated PEM');
SELECT matches(kakunin_test.error_of(
    $$CALL kakunin.bind_agent_session(E'-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHHIG\n-----END CERTIFICATE-----\n')$$),
    '^28000: certificate (is malformed|PEM is malformed)', 'PEM with garbage DER inside');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(encode('\x3003020101'::bytea, 'base64'))$$),
    '^28000: certificate is malformed', 'base64 of DER that is not a certificate');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(repeat('A', 5 * 1024 * 1024))$$),
    '^28000: certificate input is 5242880 bytes, more than the 65536 allowed$', 'a 5 MB string');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('no-agent'))$$),
    '^28000: certificate has no agent identity', 'no agent URI');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('two-agents'))$$),
    '^28000: certificate has more than one SAN URI urn:kakunin:agent:', 'two agent URIs');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('two-tenants'))$$),
    '^28000: certificate has more than one SAN URI urn:kakunin:tenant:', 'two tenant URIs');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('bad-scope'))$$),
    '^28000: certificate financial scope is invalid', 'scope of the wrong type');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('rogue-agent'))$$),
    '^28000: certificate does not chain to a trusted anchor: its issuer is not a trust anchor',
    'signed by an untrusted root (same agent id as agent-a)');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a'))$$),
    '^28000: certificate does not chain to a trusted anchor', 'leaf without its intermediate');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(
    kakunin_test.cert('signed-by-leaf') || kakunin_test.cert('agent-a') || kakunin_test.cert('intermediate-ca'))$$),
    '^28000: certificate does not chain to a trusted anchor', 'a leaf signed by another leaf');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('not-yet-valid'))$$),
    '^28000: certificate is not yet valid', 'not yet valid');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('ca-as-leaf'))$$),
    '^28000: certificate does not chain to a trusted anchor: the leaf is a CA certificate', 'a CA certificate as the leaf');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('server-only'))$$),
    '^28000: certificate does not chain to a trusted anchor: the leaf''s extendedKeyUsage does not allow clientAuth',
    'a serverAuth-only leaf');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('root-ca'))$$),
    '^28000: certificate has no agent identity', 'the trust anchor itself');

-- A missing trust anchor fails closed.
RESET ROLE;
SET ROLE admin_user;
SELECT ok(kakunin.remove_trust_anchor('test root'), 'the only anchor is removed');
RESET ROLE;
SET ROLE gateway_app;
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-b'))$$),
    '^28000: certificate does not chain to a trusted anchor: no trust anchor is configured',
    'no trust anchor: a valid certificate is refused');

-- Nothing was bound by any of the above, and the server is still up.
SELECT is(kakunin_agent_id(), NULL, 'nothing was bound by a refused bind');
SELECT is(current_setting('kakunin.binding'), '', 'the binding setting is still empty');
SELECT is((SELECT 1 + 1), 2, 'the backend still answers');
RESET ROLE;
SELECT * FROM finish();
ROLLBACK;
