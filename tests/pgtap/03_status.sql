-- Certificate status: expired, suspended, retired and revoked certificates
-- bind with that status and every `kakunin_cert_status() = 'active'` policy
-- returns zero rows; a status change reaches the very next statement.
BEGIN;
SELECT plan(28);
CALL kakunin_test.share_pgtap();

-- An expired but genuine certificate binds as expired, never as active.
SET ROLE gateway_app;
SELECT is(kakunin.bind_agent(kakunin_test.cert('expired'))->>'status', 'expired', 'expired certificate binds as expired');
SELECT is(kakunin_cert_status(), 'expired', 'kakunin_cert_status() says expired');
SELECT is(kakunin_agent_id(), 'expired', 'the agent id is still known');
SELECT is(kakunin_active_agent_id(), NULL, 'kakunin_active_agent_id() is NULL when not active');
RESET ROLE;
INSERT INTO behavior_events (agent_id, event_type) VALUES ('expired', 'login');
SET ROLE gateway_app;
SET LOCAL ROLE authenticated;
SELECT is((SELECT count(*) FROM behavior_events), 0::bigint, 'expired: zero rows under an active-gated policy');
RESET ROLE;

-- Revocation through the registry, mid-transaction.
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SET LOCAL ROLE authenticated;
SELECT is((SELECT count(*) FROM trades), 2::bigint, 'active: agent-a sees its two in-scope trades');
RESET ROLE;
SET ROLE admin_user;
-- Serials are accepted in either case, with or without colons.
SELECT is(kakunin.set_certificate_status(
    upper(regexp_replace(kakunin_cert_serial(), '(..)(?!$)', '\1:', 'g')), 'revoked', 'key compromise')->>'status',
    'revoked', 'admin revokes agent-a by its colon-separated upper-case serial');
RESET ROLE;
SET ROLE gateway_app;
SET LOCAL ROLE authenticated;
SELECT is(kakunin_cert_status(), 'revoked', 'the very next statement sees revoked');
SELECT is((SELECT count(*) FROM trades), 0::bigint, 'revoked: zero trades');
SELECT is((SELECT count(*) FROM behavior_events), 0::bigint, 'revoked: zero events');
SELECT is(kakunin_active_agent_id(), NULL, 'revoked: no active agent id');
SELECT throws_ok($$INSERT INTO trades (agent_id, instrument, venue, quantity, price)
                   VALUES ('agent-a', 'AAPL', 'XNAS', 1, 1)$$, '42501', NULL, 'revoked: INSERT refused');
RESET ROLE;
-- A fresh bind of a revoked certificate binds as revoked.
SET ROLE gateway_app;
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-a-chain'))->>'status', 'revoked', 're-binding a revoked certificate binds revoked');
RESET ROLE;

SET ROLE admin_user;
SELECT is(kakunin.set_certificate_status(kakunin_cert_serial(), 'suspended', 'review')->>'status', 'suspended', 'suspend');
SELECT is(kakunin_cert_status(), 'suspended', 'suspended is seen');
SELECT is(kakunin.set_certificate_status(kakunin_cert_serial(), 'retired', NULL)->>'status', 'retired', 'retire');
SELECT is(kakunin_cert_status(), 'retired', 'retired is seen');
SELECT is(kakunin.set_certificate_status(kakunin_cert_serial(), 'active', 'reinstated')->>'status', 'active', 'reinstate');
SELECT is(kakunin_cert_status(), 'active', 'active again');
RESET ROLE;

-- Bad input to set_certificate_status changes nothing.
SET ROLE admin_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.set_certificate_status('zz', 'revoked', NULL)$$),
    '^22023: serial number must be hexadecimal', 'non-hex serial is refused');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.set_certificate_status('0a', 'expired', NULL)$$),
    '^22023: status must be one of active, suspended, retired, revoked', 'expired cannot be set by hand');
RESET ROLE;
SET ROLE app_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.set_certificate_status('0a', 'revoked', NULL)$$),
    '^42501: permission denied for function set_certificate_status', 'an ordinary role cannot change status');
RESET ROLE;

-- Across sessions: a revocation committed by an admin reaches the very next
-- statement of a transaction that bound the certificate earlier, and a
-- removed trust anchor the next bind. Both are undone at the end.
SELECT dblink_connect('agent', kakunin_test.connstr('gateway_app')) \g /dev/null
SELECT dblink_connect('admin', kakunin_test.connstr('admin_user')) \g /dev/null
CREATE FUNCTION pg_temp.ask(conn text, sql text) RETURNS text LANGUAGE sql AS
$$ SELECT v FROM dblink(conn, sql) AS t(v text) $$;
CREATE TEMP TABLE b_serial AS SELECT (kakunin.validate_certificate(kakunin_test.cert('agent-b')))->>'serial' AS serial;
SELECT dblink_exec('agent', 'BEGIN') \g /dev/null
SELECT is(pg_temp.ask('agent', format('SELECT kakunin.bind_agent(%L)->>''status''', kakunin_test.cert('agent-b'))),
    'active', 'session 1 binds agent-b');
SELECT is(pg_temp.ask('agent', 'SELECT kakunin_cert_status()'), 'active', 'session 1 sees active');
SELECT is(pg_temp.ask('admin', format('SELECT kakunin.set_certificate_status(%L, ''revoked'', ''test'')->>''status''',
    (SELECT serial FROM b_serial))), 'revoked', 'session 2 revokes and commits');
SELECT is(pg_temp.ask('agent', 'SELECT kakunin_cert_status()'), 'revoked',
    'session 1''s next statement, same transaction, sees revoked');
SELECT dblink_exec('agent', 'ROLLBACK') \g /dev/null
SELECT pg_temp.ask('admin', format('SELECT kakunin.set_certificate_status(%L, ''active'', NULL)::text',
    (SELECT serial FROM b_serial))) \g /dev/null
SELECT is(pg_temp.ask('agent', format('SELECT kakunin.bind_agent(%L)->>''status''', kakunin_test.cert('agent-b'))),
    'active', 'reinstated in session 2: session 1 binds active again');
SELECT pg_temp.ask('admin', 'SELECT kakunin.remove_trust_anchor(''test root'')::text') \g /dev/null
SELECT matches(kakunin_test.error_of(format($$SELECT * FROM dblink('agent', %L) AS t(v text)$$,
        format('SELECT kakunin.bind_agent(%L)::text', kakunin_test.cert('agent-b')))),
    'no trust anchor is configured', 'an anchor removed in session 2 is no longer trusted by session 1''s next bind');
SELECT pg_temp.ask('admin', format('SELECT kakunin.add_trust_anchor(%L, ''test root'')::text', kakunin_test.cert('root-ca'))) \g /dev/null
SELECT dblink_disconnect('agent') \g /dev/null
SELECT dblink_disconnect('admin') \g /dev/null

SELECT * FROM finish();
ROLLBACK;
