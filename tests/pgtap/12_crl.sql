-- Signed CRLs: a valid CRL revokes; untrusted, impostor, older and garbage CRLs
-- are refused with nothing changed; a stale CRL makes its issuer's
-- certificates bind as unknown.
BEGIN;
SELECT plan(20);
CALL kakunin_test.share_pgtap();
CREATE TEMP TABLE p AS SELECT (kakunin.validate_certificate(kakunin_test.cert('agent-p384')))->>'serial' AS serial;

SET ROLE app_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.load_crl(kakunin_test.cert('crl-current'))$$),
    '^42501: permission denied for function load_crl', 'only admins load CRLs');
RESET ROLE;
SET ROLE admin_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.load_crl(NULL)$$), '^22004: crl must not be NULL$', 'NULL');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.load_crl('garbage')$$),
    '^22023: CRL is neither PEM nor base64-encoded DER$', 'garbage');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.load_crl(kakunin_test.cert('agent-b'))$$),
    '^22023: CRL PEM is malformed', 'a certificate is not a CRL');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.load_crl(kakunin_test.cert('crl-rogue'))$$),
    '^28000: CRL refused: its issuer "O=kakunin test, CN=rogue-ca" is not a trust anchor$', 'a CRL from an untrusted CA');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.load_crl(kakunin_test.cert('crl-imposter'))$$),
    '^28000: CRL refused: its signature does not verify with the key of trust anchor', 'an impostor with the root''s name but another key');
SELECT is((SELECT count(*) FROM kakunin.crls), 0::bigint, 'no CRL was stored by the refusals');
SELECT is((SELECT count(*) FROM kakunin.certificate_status WHERE status <> 'active'), 0::bigint, 'no serial was revoked by the refusals');

-- A stale CRL (nextUpdate in 2025): the issuer's certificates bind as unknown.
SELECT is(kakunin.load_crl(kakunin_test.cert('crl-stale'))->>'crl_number', '01', 'the stale CRL (number 1) loads');
RESET ROLE;
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'status', 'unknown', 'stale CRL: agent-b is unknown');
SET ROLE gateway_app;
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-b'))->>'status', 'unknown', 'stale CRL: agent-b binds as unknown');
SET LOCAL ROLE authenticated;
SELECT is((SELECT count(*) FROM trades), 0::bigint, 'unknown: policies admit no rows');
RESET ROLE;
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-a-chain'))->>'status', 'active',
    'a certificate from another issuer (the intermediate) is unaffected');

-- The current CRL (number 2) replaces it.
SET ROLE admin_user;
SELECT is(kakunin.load_crl(kakunin_test.cert('crl-current')) - 'this_update' - 'next_update',
    '{"issuer": "O=kakunin test, CN=root-ca", "crl_number": "02", "revoked": 1, "newly_revoked": 0}'::jsonb,
    'the current CRL loads (its one serial was already revoked by the stale one)');
RESET ROLE;
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'status', 'active', 'fresh CRL: agent-b is active');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-p384'))->>'status', 'revoked', 'the listed certificate is revoked');
SELECT is((SELECT reason FROM kakunin.certificate_status WHERE serial = (SELECT serial FROM p)), 'crl: keyCompromise',
    'with the CRL''s reason');

-- An older CRL is refused, and changes nothing.
SET ROLE admin_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.load_crl(kakunin_test.cert('crl-stale'))$$),
    '^22023: CRL refused: it is older than the CRL already loaded for "O=kakunin test, CN=root-ca" \(number 02', 'an older CRL is refused');
RESET ROLE;
SELECT is((SELECT crl_number FROM kakunin.crls), '02', 'the current CRL stays loaded');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'status', 'active', 'and nothing turned stale');
SELECT * FROM finish();
ROLLBACK;
