-- Signed webhooks: every refusal reason (28000 + an RFC 7807 problem), replay,
-- rotation, every event type, idempotence, and a revocation reaching the next
-- statement of another session's open transaction.
BEGIN;
SELECT plan(38);
CALL kakunin_test.share_pgtap();
CREATE TEMP TABLE v AS SELECT extract(epoch FROM now())::bigint AS now,
    'whsec_0123456789abcdef'::text AS secret,
    (kakunin.validate_certificate(kakunin_test.cert('agent-b')))->>'serial' AS b_serial;
GRANT SELECT ON v TO PUBLIC;
CREATE FUNCTION pg_temp.event(id text, type text, serial text, extra jsonb DEFAULT '{}') RETURNS text
LANGUAGE sql AS $$ SELECT jsonb_build_object('id', id, 'type', type,
    'data', jsonb_build_object('serial_number', serial, 'reason', 'test') || extra)::text $$;
CREATE FUNCTION pg_temp.deliver(body text, secret text DEFAULT NULL, t bigint DEFAULT NULL) RETURNS jsonb
LANGUAGE sql AS $$ SELECT kakunin.handle_webhook(body, kakunin_test.webhook_header(
    coalesce(secret, (SELECT secret FROM v)), coalesce(t, (SELECT now FROM v)), body)) $$;

-- Without a secret nothing can be verified: fail closed. (setup.sql committed
-- one for cross-session tests; this transaction removes it and sets its own.)
DELETE FROM kakunin.webhook_secret;
SELECT matches(kakunin_test.error_of($$SELECT pg_temp.deliver(pg_temp.event('e0', 'certificate.revoked', 'aa'))$$),
    '^28000: webhook refused: Webhook secret not configured$', 'no secret configured: refused');

SET ROLE app_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.set_webhook_secret('0123456789abcdefXX')$$),
    '^42501: permission denied for function set_webhook_secret', 'only admins set the secret');
RESET ROLE;
SET ROLE admin_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.set_webhook_secret('short')$$),
    '^22023: the webhook secret must be at least 16 bytes$', 'a short secret is refused');
SELECT lives_ok($$SELECT kakunin.set_webhook_secret((SELECT secret FROM v))$$, 'admin sets the secret');
SELECT matches(kakunin_test.error_of($$SELECT secret FROM kakunin.webhook_secret$$),
    '^42501: permission denied', 'the secret cannot be read back, even by an admin');
RESET ROLE;

-- Refusals, each with a problem document.
SET ROLE app_user;
SELECT is(kakunin_test.problem_of($$SELECT kakunin.handle_webhook('{}', NULL)$$) - 'detail',
    '{"type": "urn:kakunin:webhook:missing-signature", "title": "Missing signature header", "status": 401}', 'missing header');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.handle_webhook('{}', '')$$), '^28000: webhook refused: Missing signature header$', 'empty header: 28000');
SELECT is(kakunin_test.problem_of($$SELECT kakunin.handle_webhook('{}', 't=1,v1=nothex')$$)->>'type',
    'urn:kakunin:webhook:malformed-signature', 'malformed header');
SELECT is(kakunin_test.problem_of($$SELECT kakunin.handle_webhook('{}', 'v1=' || repeat('0', 64))$$)->>'detail',
    'the signature header is malformed: no t= value', 'header without a timestamp');
SELECT is(kakunin_test.problem_of($$SELECT pg_temp.deliver(pg_temp.event('e1', 'certificate.revoked', 'aa'), 'whsec_wrong_wrong_wrong')$$)->>'type',
    'urn:kakunin:webhook:invalid-signature', 'signed with another secret');
SELECT is(kakunin_test.problem_of(format($$SELECT kakunin.handle_webhook(%L, %L)$$,
        pg_temp.event('e1', 'certificate.revoked', 'ab'),
        kakunin_test.webhook_header((SELECT secret FROM v), (SELECT now FROM v), pg_temp.event('e1', 'certificate.revoked', 'aa'))))->>'type',
    'urn:kakunin:webhook:invalid-signature', 'a body changed after signing');
SELECT is(kakunin_test.problem_of($$SELECT pg_temp.deliver(pg_temp.event('e1', 'certificate.revoked', 'aa'), NULL, (SELECT now FROM v) - 310)$$)->>'type',
    'urn:kakunin:webhook:stale-timestamp', 'a timestamp more than five minutes old');
SELECT is(kakunin_test.problem_of($$SELECT pg_temp.deliver(pg_temp.event('e1', 'certificate.revoked', 'aa'), NULL, (SELECT now FROM v) + 310)$$)->>'type',
    'urn:kakunin:webhook:future-timestamp', 'a timestamp more than five minutes ahead');
SELECT is((kakunin_test.problem_of($$SELECT pg_temp.deliver('not json')$$))->>'type',
    'urn:kakunin:webhook:malformed-event', 'a signed body that is not an event');
SELECT is(kakunin_test.problem_of($$SELECT pg_temp.deliver(pg_temp.event('e1', 'certificate.revoked', 'aa'), 'whsec_wrong_wrong_wrong')$$)->>'status',
    '401', 'problems carry status 401');
SELECT ok(strpos(kakunin_test.error_of($$SELECT pg_temp.deliver(pg_temp.event('e1', 'certificate.revoked', 'aa'), NULL, 1)$$)
          || coalesce(kakunin_test.problem_of($$SELECT pg_temp.deliver(pg_temp.event('e1', 'certificate.revoked', 'aa'), NULL, 1)$$)::text, ''),
          (SELECT secret FROM v)) = 0, 'the secret appears in no error');
SELECT is((SELECT count(*) FROM kakunin.certificate_status WHERE status <> 'active'), 0::bigint, 'no refused delivery changed anything');

-- Events.
SAVEPOINT revoked;
SELECT is(pg_temp.deliver(pg_temp.event('e2', 'certificate.revoked', (SELECT b_serial FROM v)))->>'status', 'applied', 'certificate.revoked is applied');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'reason', 'revoked', 'agent-b is revoked');
SELECT is(kakunin_test.problem_of($$SELECT pg_temp.deliver(pg_temp.event('e2', 'certificate.revoked', (SELECT b_serial FROM v)))$$)->>'type',
    'urn:kakunin:webhook:replay', 'the same event id again is a replay, refused');
SELECT is(pg_temp.deliver(pg_temp.event('e3', 'certificate.revoked', (SELECT b_serial FROM v)))->>'status', 'superseded',
    'a second revocation event (new id) is accepted and changes nothing');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'reason', 'revoked', '... applying it twice is idempotent');
SELECT is(pg_temp.deliver(pg_temp.event('e3b', 'certificate.reinstated', (SELECT b_serial FROM v)))->>'status', 'superseded',
    'a revocation is final: certificate.reinstated does not undo it');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'reason', 'revoked', 'agent-b stays revoked');
ROLLBACK TO SAVEPOINT revoked;
SELECT is(pg_temp.deliver(pg_temp.event('e4', 'certificate.reinstated', (SELECT b_serial FROM v)))->>'status', 'applied', 'certificate.reinstated');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'valid', 'true', 'agent-b is active again');
SELECT is(pg_temp.deliver(pg_temp.event('e5', 'certificate.suspended', (SELECT b_serial FROM v)))->>'status', 'applied', 'certificate.suspended');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'reason', 'suspended', 'agent-b is suspended');
SELECT is(pg_temp.deliver(pg_temp.event('e6', 'certificate.reinstated', (SELECT b_serial FROM v)))->>'status', 'applied', 'reinstated again');
SELECT is(pg_temp.deliver(jsonb_build_object('id', 'e7', 'type', 'agent.retired', 'data', jsonb_build_object('agent_id', 'agent-b'))::text)->>'status',
    'applied', 'agent.retired by agent id');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('agent-b'))->>'reason', 'retired', 'every certificate of agent-b is retired');
SELECT is(pg_temp.deliver(pg_temp.event('e8', 'certificate.renewed', 'aa'))->>'status', 'ignored', 'an unknown event type is acknowledged and ignored');
-- The CA's own format, as the seed's handler reads it: event.event, event.data.serial_number, no id.
SELECT is(pg_temp.deliver(jsonb_build_object('event', 'certificate.suspended',
        'data', jsonb_build_object('serial_number', upper((SELECT b_serial FROM v)), 'agent_id', 'agent-b'))::text)->>'status',
    'applied', 'the CA''s own body (event, data.serial_number) is applied');
SELECT is((SELECT status FROM kakunin.certificate_status WHERE serial = (SELECT b_serial FROM v) AND source = 'webhook'), 'suspended',
    'and sets the status it names');
-- Rotation: the CA signs with the old and the new secret at once.
SELECT is(kakunin.handle_webhook(pg_temp.event('e9', 'certificate.renewed', 'aa'),
    format('t=%s,v1=%s,v1=%s', (SELECT now FROM v),
           encode(hmac_sha256((SELECT now FROM v) || '.' || pg_temp.event('e9', 'certificate.renewed', 'aa'), 'whsec_next_secret_0000'), 'hex'),
           encode(hmac_sha256((SELECT now FROM v) || '.' || pg_temp.event('e9', 'certificate.renewed', 'aa'), (SELECT secret FROM v)), 'hex')))->>'status',
    'ignored', 'two v1 values during rotation: the matching one passes');
RESET ROLE;

-- A suspension delivered in another session reaches the next statement of a
-- transaction that bound earlier. Lifted afterwards (a revocation, being
-- final, would outlive this file).
SELECT dblink_connect('agent', kakunin_test.connstr('gateway_app')) \g /dev/null
SELECT dblink_connect('hook', kakunin_test.connstr('app_user')) \g /dev/null
SELECT dblink_exec('agent', 'BEGIN') \g /dev/null
SELECT is((SELECT s FROM dblink('agent', format('SELECT kakunin.bind_agent(%L)->>''status''', kakunin_test.cert('agent-a-chain'))) AS t(s text)),
    'active', 'session 1 binds agent-a');
CREATE TEMP TABLE a AS SELECT (kakunin.validate_certificate(kakunin_test.cert('agent-a-chain')))->>'serial' AS serial;
SET ROLE admin_user;
SELECT kakunin.set_webhook_secret((SELECT secret FROM v)) \g /dev/null
RESET ROLE;
-- (the secret set above is not committed: the hook session needs its own)
SELECT * FROM dblink('hook', format('SELECT kakunin.handle_webhook(%L, %L)::text',
    pg_temp.event('x1-' || txid_current(), 'certificate.suspended', (SELECT serial FROM a)),
    kakunin_test.webhook_header('whsec_committed_for_test', (SELECT now FROM v),
                                pg_temp.event('x1-' || txid_current(), 'certificate.suspended', (SELECT serial FROM a))))) AS t(r text) \g /dev/null
SELECT is((SELECT s FROM dblink('agent', 'SELECT kakunin_cert_status()') AS t(s text)),
    'suspended', 'session 1''s next statement sees the webhook''s suspension');
SELECT dblink_exec('agent', 'ROLLBACK') \g /dev/null
SELECT * FROM dblink('hook', format('SELECT kakunin.handle_webhook(%L, %L)::text',
    pg_temp.event('x2-' || txid_current(), 'certificate.reinstated', (SELECT serial FROM a)),
    kakunin_test.webhook_header('whsec_committed_for_test', (SELECT now FROM v),
                                pg_temp.event('x2-' || txid_current(), 'certificate.reinstated', (SELECT serial FROM a))))) AS t(r text) \g /dev/null
SELECT is((SELECT s FROM dblink('agent', format('SELECT kakunin.bind_agent(%L)->>''status''', kakunin_test.cert('agent-a-chain'))) AS t(s text)),
    'active', 'reinstated by the next webhook');
SELECT dblink_disconnect('agent') \g /dev/null
SELECT dblink_disconnect('hook') \g /dev/null
SELECT * FROM finish();
ROLLBACK;
