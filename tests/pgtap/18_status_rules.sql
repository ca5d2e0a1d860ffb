-- How statuses from several sources, in any order, combine (issue 15): a CA
-- revocation is final, an older statement never overrides a newer one, the
-- most severe current statement of any source wins, and a certificate is its
-- issuer and serial. Every pair of sources, in both orders.
BEGIN;
SELECT plan(23);
CALL kakunin_test.share_pgtap();
SELECT kakunin.set_webhook_secret('whsec_rules_0123456789abc') \g /dev/null
CREATE TEMP TABLE v AS SELECT extract(epoch FROM now())::bigint AS now,
    kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'serial' AS b,
    kakunin.validate_certificate(kakunin_test.cert('agent-p384'))->>'serial' AS p;
-- A CA event about a serial, stated at unix time `at` (the event's own time).
CREATE FUNCTION pg_temp.hook(type text, serial text, at bigint) RETURNS text LANGUAGE sql AS $$
    SELECT kakunin.handle_webhook(body, kakunin_test.webhook_header('whsec_rules_0123456789abc', (SELECT now FROM v), body))->>'status'
    FROM (SELECT jsonb_build_object('event', type, 'created_at', at,
                 'data', jsonb_build_object('serial_number', serial))::text AS body) b
$$;
CREATE FUNCTION pg_temp.status(cert text) RETURNS text LANGUAGE sql AS $$
    SELECT kakunin.validate_certificate(kakunin_test.cert(cert))->>'status'
$$;
CREATE FUNCTION pg_temp.admin(serial text, status text) RETURNS void LANGUAGE sql AS $$
    SELECT kakunin.set_certificate_status(serial, status) $$;

-- Webhooks alone, out of order (retries arrive late; t= is the delivery's time).
SAVEPOINT s;
SELECT is(pg_temp.hook('certificate.revoked', (SELECT b FROM v), 200), 'applied', 'revoked at 200');
SELECT is(pg_temp.hook('certificate.reinstated', (SELECT b FROM v), 100), 'superseded', 'a reinstatement from 100 arriving late is superseded');
SELECT is(pg_temp.status('agent-b'), 'revoked', 'the certificate stays revoked');
SELECT is(pg_temp.hook('certificate.reinstated', (SELECT b FROM v), 300), 'superseded', 'even a newer reinstatement: revocation is final');
SELECT is(pg_temp.hook('certificate.suspended', (SELECT b FROM v), 400), 'superseded', 'and a suspension does not soften it');
SELECT is(pg_temp.status('agent-b'), 'revoked', 'still revoked');
ROLLBACK TO SAVEPOINT s;
SELECT is(pg_temp.hook('certificate.suspended', (SELECT b FROM v), 200), 'applied', 'suspended at 200');
SELECT is(pg_temp.hook('certificate.reinstated', (SELECT b FROM v), 100), 'superseded', 'a late reinstatement from 100 does not lift it');
SELECT is(pg_temp.status('agent-b'), 'suspended', 'still suspended');
SELECT is(pg_temp.hook('certificate.reinstated', (SELECT b FROM v), 300), 'applied', 'a newer reinstatement lifts the hold');
SELECT is(pg_temp.status('agent-b'), 'active', 'active again');
ROLLBACK TO SAVEPOINT s;

-- Administrator and webhook, both orders.
SELECT pg_temp.admin((SELECT b FROM v), 'revoked') \g /dev/null
SELECT pg_temp.hook('certificate.reinstated', (SELECT b FROM v), (SELECT now FROM v) + 60) \g /dev/null
SELECT is(pg_temp.status('agent-b'), 'revoked', 'admin revokes, then the CA reinstates: revoked (most severe wins)');
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.hook('certificate.revoked', (SELECT b FROM v), (SELECT now FROM v) - 60) \g /dev/null
SELECT pg_temp.admin((SELECT b FROM v), 'active') \g /dev/null
SELECT is(pg_temp.status('agent-b'), 'revoked', 'the CA revokes, then an admin says active: revoked (an admin cannot undo the CA)');
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.admin((SELECT b FROM v), 'revoked') \g /dev/null
SELECT pg_temp.admin((SELECT b FROM v), 'active') \g /dev/null
SELECT is(pg_temp.status('agent-b'), 'active', 'an admin corrects its own revocation');
ROLLBACK TO SAVEPOINT s;

-- CRL and the others, both orders (crl-current revokes agent-p384).
SELECT kakunin.load_crl(kakunin_test.cert('crl-current')) \g /dev/null
SELECT pg_temp.hook('certificate.reinstated', (SELECT p FROM v), (SELECT now FROM v) + 60) \g /dev/null
SELECT pg_temp.admin((SELECT p FROM v), 'active') \g /dev/null
SELECT is(pg_temp.status('agent-p384'), 'revoked', 'CRL first, then webhook and admin reinstate: revoked');
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.hook('certificate.reinstated', (SELECT p FROM v), (SELECT now FROM v) + 60) \g /dev/null
SELECT pg_temp.admin((SELECT p FROM v), 'active') \g /dev/null
SELECT kakunin.load_crl(kakunin_test.cert('crl-current')) \g /dev/null
SELECT is(pg_temp.status('agent-p384'), 'revoked', 'webhook and admin first, then the CRL: revoked');
ROLLBACK TO SAVEPOINT s;

-- The verify endpoint (at bind) and the registry, both ways round.
SELECT set_config('kakunin.verify_url', kakunin_test.ca_url('active'), true) \g /dev/null
SELECT pg_temp.admin((SELECT b FROM v), 'revoked') \g /dev/null
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-b'))->>'status', 'revoked',
    'the endpoint says active, the registry revoked: revoked');
ROLLBACK TO SAVEPOINT s;
SELECT set_config('kakunin.verify_url', kakunin_test.ca_url('revoked'), true) \g /dev/null
SELECT pg_temp.admin((SELECT b FROM v), 'active') \g /dev/null
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-b'))->>'status', 'revoked',
    'the registry says active, the endpoint revoked: revoked');
ROLLBACK TO SAVEPOINT s;

-- Issuer and serial: two trusted CAs each issue serial 5a5a0001.
SELECT kakunin.add_trust_anchor(kakunin_test.cert('rogue-ca'), 'second ca') \g /dev/null
SELECT is(kakunin.validate_certificate(kakunin_test.cert('twin-root'))->>'serial',
          kakunin.validate_certificate(kakunin_test.cert('twin-rogue'))->>'serial', 'the twins share a serial');
SELECT is(kakunin.load_crl(kakunin_test.cert('crl-rogue-twin'))->>'revoked', '1', 'the second CA''s CRL lists it');
SELECT is(pg_temp.status('twin-rogue'), 'revoked', 'the second CA''s certificate is revoked');
SELECT is(pg_temp.status('twin-root'), 'active', 'the first CA''s certificate with the same serial is not: a CRL speaks for its issuer');
-- A serial without an issuer (webhook, admin) speaks for every issuer: fail closed.
SELECT pg_temp.admin('5a5a0001', 'suspended') \g /dev/null
SELECT is(pg_temp.status('twin-root') || ' ' || pg_temp.status('twin-rogue'), 'suspended revoked',
    'an admin''s serial names no issuer: both twins, each at its most severe');

SELECT * FROM finish();
ROLLBACK;
