-- Administration (trust anchors, validate_certificate), grants, and the
-- catalog a policy author browses: roles, comments on every object.
BEGIN;
SELECT plan(26);
CALL kakunin_test.share_pgtap();

-- Trust anchors.
SET ROLE admin_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.add_trust_anchor(kakunin_test.cert('agent-b'), 'leaf')$$),
    '^22023: trust anchor is not a CA certificate', 'a leaf cannot become a trust anchor');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.add_trust_anchor('garbage', 'x')$$),
    '^22023: trust anchor: certificate is neither PEM nor base64', 'garbage is refused');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.add_trust_anchor(NULL, 'x')$$),
    '^22004: pem must not be NULL$', 'NULL pem is refused');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.add_trust_anchor(kakunin_test.cert('root-ca'), 'again')$$),
    '^22023: a trust anchor named "again" or with fingerprint [0-9a-f]{64} already exists', 'the same CA cannot be added twice');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.add_trust_anchor(kakunin_test.cert('root-ca') || kakunin_test.cert('intermediate-ca'), 'two')$$),
    '^22023: trust anchor: expected one certificate, got 2', 'one anchor at a time');
SELECT is(kakunin.remove_trust_anchor('no such anchor'), false, 'removing an unknown anchor returns false');
SELECT is((SELECT count(*) FROM kakunin.trust_anchors), 1::bigint, 'none of that changed the anchors');
-- An intermediate can be an anchor: then agent-a's leaf chains on its own.
SAVEPOINT intermediate;
SELECT is(kakunin.add_trust_anchor(kakunin_test.cert('intermediate-ca'), 'issuing CA')->>'name', 'issuing CA', 'an intermediate as anchor');
RESET ROLE;
SET ROLE gateway_app;
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-a'))->>'agent_id', 'agent-a', 'the leaf alone chains to the intermediate anchor');
RESET ROLE;
ROLLBACK TO SAVEPOINT intermediate;
SET ROLE app_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.add_trust_anchor(kakunin_test.cert('rogue-ca'), 'mine')$$),
    '^42501: permission denied for function add_trust_anchor', 'an ordinary role cannot add an anchor');
SELECT matches(kakunin_test.error_of($$INSERT INTO kakunin.trust_anchors (name, fingerprint, subject, certificate, not_after) VALUES ('x', 'x', 'x', '\x00', now())$$),
    '^42501: permission denied for table trust_anchors', 'nor write the anchor table');
SELECT matches(kakunin_test.error_of($$DELETE FROM kakunin.proof_replay$$),
    '^42501: permission denied', 'nor the proof replay table');
SELECT matches(kakunin_test.error_of($$DELETE FROM kakunin.certificate_status$$),
    '^42501: permission denied', 'nor the status registry');
SELECT matches(kakunin_test.error_of($$SELECT reason FROM kakunin.certificate_status$$),
    '^42501: permission denied', 'revocation reasons are not public');
RESET ROLE;

-- validate_certificate: the same engine, nothing bound.
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b')) - 'not_before' - 'not_after' - 'serial',
    '{"valid": true, "reason": null, "status": "active", "agent_id": "agent-b", "tenant_id": "tenant-2",
      "scope": {"instruments": ["TSLA"], "venues": ["XNYS"], "limits": {"max_notional": 5000}}}'::jsonb,
    'validate_certificate reports a valid agent');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('expired'))->>'reason', 'expired', 'expired');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('rogue-agent'))->>'reason', 'untrusted_issuer', 'untrusted issuer');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('two-agents'))->>'reason', 'multiple_agent_uris', 'two agent URIs');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'), '2001-01-01')->>'reason', 'not_yet_valid',
    'validation at a time before notBefore');
SELECT is(kakunin.validate_certificate(NULL), NULL, 'NULL in, NULL out');
SELECT is(kakunin_agent_id(), NULL, 'validate_certificate binds nothing');

-- Catalog: roles, and a comment on every object of the extension.
SELECT is((SELECT array_agg(rolname::text ORDER BY rolname) FROM pg_roles
           WHERE rolname IN ('kakunin_admin', 'kakunin_gateway') AND NOT rolcanlogin),
    ARRAY['kakunin_admin', 'kakunin_gateway'], 'CREATE EXTENSION created the NOLOGIN roles');
SELECT is((SELECT array_agg(p.oid::regprocedure::text) FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
           WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
             AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kakunin_pg')
             AND obj_description(p.oid, 'pg_proc') IS NULL),
    NULL, 'every function and procedure has a comment');
SELECT is((SELECT array_agg(c.oid::regclass::text) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
           WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND c.relkind = 'r'
             AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kakunin_pg')
             AND obj_description(c.oid, 'pg_class') IS NULL),
    NULL, 'every table has a comment');
SELECT ok(has_function_privilege('public', 'kakunin.bind_agent(text, text)', 'EXECUTE'), 'anyone may try to bind');
SELECT ok(NOT has_function_privilege('public', 'kakunin.set_certificate_status(text, text, text)', 'EXECUTE'),
    'PUBLIC cannot execute the admin functions');
SELECT * FROM finish();
ROLLBACK;
