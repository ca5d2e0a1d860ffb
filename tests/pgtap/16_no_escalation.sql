-- Issue 14, attacked as a hostile non-superuser: each attack is refused and
-- nothing leaks. (The hostile search_path attack is 15_hostile_search_path.sql.)
BEGIN;
SELECT plan(52);
CALL kakunin_test.share_pgtap();

-- 2. Agent SQL in a gateway's session cannot bind another agent through
-- pre_request() (which lends the login role's standing to the first bind only).
SAVEPOINT gateway_flow;
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SET LOCAL ROLE authenticated;
SELECT set_config('request.headers',
    jsonb_build_object('x-kakunin-certificate', kakunin_test.url_escape(kakunin_test.cert('agent-b')))::text, true);
SELECT matches(kakunin_test.error_of('SELECT kakunin.pre_request()'), '^28000: proof of possession required',
    'agent SQL under the request role cannot bind another agent through pre_request()');
SELECT is(kakunin_agent_id(), 'agent-a', 'the gateway''s binding stands');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.bind_agent(kakunin_test.cert('agent-b'))$$),
    '^28000: proof of possession required', 'nor through bind_agent');
SELECT is((SELECT count(*) FROM kakunin.api_keys WHERE owner_id = 'agent-b'), 0::bigint, 'and no key of agent-b is visible');
RESET ROLE;
ROLLBACK TO SAVEPOINT gateway_flow;
-- PostgREST's documented flow (authenticator = gateway, pre_request after the role switch) still binds.
SAVEPOINT postgrest_flow;
GRANT kakunin_gateway TO authenticator;
SET ROLE authenticator;
SELECT set_config('request.headers',
    jsonb_build_object('x-kakunin-certificate', kakunin_test.url_escape(kakunin_test.cert('agent-b')))::text, true);
SET LOCAL ROLE authenticated;
SELECT lives_ok('SELECT kakunin.pre_request()', 'PostgREST''s flow: the first bind of the request uses the authenticator''s standing');
SELECT is(kakunin_agent_id(), 'agent-b', 'and binds the certificate''s agent');
SELECT set_config('request.headers',
    jsonb_build_object('x-kakunin-certificate', kakunin_test.url_escape(kakunin_test.cert('agent-a-chain')))::text, true);
SELECT matches(kakunin_test.error_of('SELECT kakunin.pre_request()'), '^28000: proof of possession required',
    'a second pre_request() in the same transaction cannot replace it');
RESET ROLE;
ROLLBACK TO SAVEPOINT postgrest_flow;

-- 3. A leaked key, or a certificate holder, cannot widen itself.
SET ROLE admin_user;
CREATE TEMP TABLE narrow AS SELECT * FROM kakunin.create_api_key('agent-k', 'narrow', ARRAY['trades:read'],
    now() + interval '1 hour', '{"instruments": ["AAPL"], "limits": {"max_notional": 100}}');
CREATE TEMP TABLE sibling AS SELECT * FROM kakunin.create_api_key('agent-k', 'sibling', ARRAY['trades:read', 'trades:write']);
GRANT SELECT ON narrow, sibling TO PUBLIC;
RESET ROLE;
SAVEPOINT narrow_key;
SET ROLE app_user;
SELECT is(kakunin.bind_api_key((SELECT api_key FROM narrow))->>'agent_id', 'agent-k', 'bound with the narrow key');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.rotate_api_key((SELECT key_id FROM sibling))$$),
    '^42501: permission denied: a caller bound with an API key manages only that key', 'it cannot rotate a sibling');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.revoke_api_key((SELECT key_id FROM sibling))$$),
    '^42501: permission denied: a caller bound with an API key manages only that key', 'nor revoke one');
SELECT is(kakunin.verify_api_key((SELECT api_key FROM sibling))->>'valid', 'true', 'the sibling still works for its holder');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.create_api_key('agent-k', 'w', ARRAY['trades:read'], NULL, '{"instruments": ["TSLA"]}')$$),
    '^42501: permission denied: a derived key''s claims must stay within the bound credential: "TSLA" is not in', 'no instrument it lacks');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.create_api_key('agent-k', 'w', ARRAY['trades:read'], NULL, '{"limits": {"max_notional": 101}}')$$),
    '^42501: .*limit "max_notional" must be at most', 'no higher limit');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.create_api_key('agent-k', 'w', ARRAY['trades:read'], NULL, '{"admin": true}')$$),
    '^42501: .*claim "admin" differs', 'no new claim');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.create_api_key('agent-k', 'w', ARRAY['trades:read'], NULL, '{}', 'tenant-9')$$),
    '^42501: permission denied: the bound identity belongs to no tenant', 'no tenant when its key has none');
CREATE TEMP TABLE child AS SELECT * FROM kakunin.create_api_key('agent-k', 'child', ARRAY['trades:read'], 'infinity');
SELECT ok((SELECT expires_at FROM kakunin.api_keys WHERE key_id = (SELECT key_id FROM child))
          <= (SELECT expires_at FROM kakunin.api_keys WHERE key_id = (SELECT key_id FROM narrow)),
    'a derived key never outlives its parent');
SELECT is((SELECT claims->'limits'->>'max_notional' FROM kakunin.api_keys WHERE key_id = (SELECT key_id FROM child)), '100',
    'and inherits the parent''s limits');
RESET ROLE;
SELECT kakunin.revoke_api_key((SELECT key_id FROM narrow)) \g /dev/null
SELECT is(kakunin.verify_api_key((SELECT api_key FROM child)), '{"valid": false, "reason": "revoked"}',
    'a derived key dies with the key it was derived from');
ROLLBACK TO SAVEPOINT narrow_key;

SAVEPOINT from_certificate;
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SELECT matches(kakunin_test.error_of($$SELECT kakunin.create_api_key('agent-a', 'w', ARRAY['x'], NULL, '{"instruments": ["TSLA"]}')$$),
    '^42501: .*"TSLA" is not in the deriving credential''s instruments', 'a certificate holder cannot mint a wider scope');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.create_api_key('agent-a', 'w', ARRAY['x'], NULL, '{"limits": {"max_notional": 2000000}}')$$),
    '^42501: .*limit "max_notional"', 'nor a higher limit');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.create_api_key('agent-a', 'w', ARRAY['x'], NULL, '{}', 'tenant-2')$$),
    '^42501: permission denied: the bound identity belongs to tenant "tenant-1"', 'nor another tenant');
CREATE TEMP TABLE from_cert AS SELECT * FROM kakunin.create_api_key('agent-a', 'from-cert', ARRAY['x'], 'infinity');
GRANT SELECT ON from_cert TO PUBLIC;
SELECT is((SELECT expires_at FROM kakunin.api_keys WHERE key_id = (SELECT key_id FROM from_cert)),
    (kakunin.validate_certificate(kakunin_test.cert('agent-a-chain'))->>'not_after')::timestamptz,
    'a key never outlives the certificate it was derived from');
RESET ROLE;
SELECT kakunin.set_certificate_status((kakunin.validate_certificate(kakunin_test.cert('agent-a-chain')))->>'serial', 'revoked') \g /dev/null
SELECT is(kakunin.verify_api_key((SELECT api_key FROM from_cert)), '{"valid": false, "reason": "revoked"}',
    'and dies with it');
ROLLBACK TO SAVEPOINT from_certificate;

-- 4. An agent's status reaches its keys, on every path.
SAVEPOINT agent_status;
SET ROLE admin_user;
CREATE TEMP TABLE sk AS SELECT * FROM kakunin.create_api_key('agent-s', 'k', ARRAY['trades:read']);
GRANT SELECT ON sk TO PUBLIC;
RESET ROLE;
SET ROLE app_user;
SELECT is(kakunin.bind_api_key((SELECT api_key FROM sk))->>'status', 'active', 'agent-s binds with its key');
RESET ROLE;
SELECT kakunin.set_agent_status('agent-s', 'suspended') \g /dev/null
SET ROLE app_user;
SELECT is(kakunin_cert_status(), 'suspended', 'mid-transaction: the bound key reads suspended at the next statement');
SELECT ok(NOT kakunin.authorize('trades:read'), 'authorize() refuses');
SELECT is(kakunin.verify_api_key((SELECT api_key FROM sk)), '{"valid": false, "reason": "suspended"}', 'verify says suspended');
RESET ROLE;
SELECT kakunin.set_agent_status('agent-s', 'revoked') \g /dev/null
SELECT matches(kakunin_test.error_of($$SELECT kakunin.bind_api_key((SELECT api_key FROM sk))$$),
    '^28000: API key refused: revoked', 'bind refuses a key of a revoked agent');
ROLLBACK TO SAVEPOINT agent_status;

-- 5. An entry nobody could verify is refused when written; verification never crashes.
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SELECT matches(kakunin_test.error_of($$SELECT kakunin.audit('x', (repeat('[', 10000) || repeat(']', 10000))::jsonb)$$),
    '^54000: audit payload nests arrays and objects 10000 levels deep; at most 64 are accepted$', 'a 10,000-deep payload is refused');
SELECT matches(kakunin_test.error_of($$INSERT INTO kakunin.audit_log (action, payload) VALUES ('x', (repeat('{"a":', 65) || '1' || repeat('}', 65))::jsonb)$$),
    '^54000: audit payload nests arrays and objects 65 levels deep', 'so is a 65-deep one through a plain INSERT');
SELECT lives_ok($$SELECT kakunin.audit('deep.ok', (repeat('[', 64) || repeat(']', 64))::jsonb)$$, '64 levels are accepted');
RESET ROLE;
SELECT kakunin.audit_integrate() \g /dev/null
SET ROLE app_user;
SELECT is(kakunin.verify_audit_log()->>'ok', 'true', 'and the log, 64-deep entry included, verifies');
RESET ROLE;

-- 6. No role can stop the audit log with a lock.
SELECT dblink_connect('locker', kakunin_test.connstr('app_user')) \g /dev/null
SELECT dblink_exec('locker', 'BEGIN') \g /dev/null
SELECT * FROM dblink('locker', $$SELECT pg_advisory_lock(x'6b6b6e5f61756474'::bigint)::text$$) AS t(v text) \g /dev/null
SELECT * FROM dblink('locker', $$SELECT kakunin.verify_audit_log()::text$$) AS t(v text) \g /dev/null
SELECT * FROM dblink('locker', $$SELECT kakunin_test.error_of('SELECT kakunin.audit_checkpoint_note()')$$) AS t(v text) \g /dev/null
SELECT matches((SELECT v FROM dblink('locker', $$SELECT kakunin_test.error_of('SELECT kakunin.audit_integrate()')$$) AS t(v text)),
    '^42501: permission denied for function audit_integrate', 'only kakunin_admin integrates explicitly');
SELECT matches((SELECT v FROM dblink('locker', $$SELECT kakunin_test.error_of('SELECT * FROM kakunin.audit_sequencer FOR UPDATE')$$) AS t(v text)),
    '^42501: permission denied', 'nobody else can lock the sequencer''s row');
SET LOCAL statement_timeout = '10s';
SELECT is(kakunin.verify_audit_log()->>'ok', 'true',
    'with the old advisory key held and a reader idle in its transaction, verification (integrating first) does not wait');
SELECT ok((SELECT tree_size FROM kakunin.audit_checkpoint()) > 0, 'nor does a checkpoint');
RESET statement_timeout;
SELECT dblink_exec('locker', 'ROLLBACK') \g /dev/null
SELECT dblink_disconnect('locker') \g /dev/null

-- 7. Failed verifications cannot grow the database without bound.
CREATE TEMP TABLE events_before AS SELECT count(*) AS n FROM kakunin.api_key_events;
SET ROLE app_user;
SELECT count(kakunin.verify_api_key('not-a-key')) FROM generate_series(1, 20000) \g /dev/null
SELECT count(kakunin.verify_api_key('kkn_' || md5(g::text) || '_' || repeat('A', 43))) FROM generate_series(1, 2000) g \g /dev/null
SELECT count(kakunin.verify_api_key(overlay(k PLACING CASE WHEN substr(k, 50, 1) = 'x' THEN 'y' ELSE 'x' END FROM 50 FOR 1)))
FROM (SELECT api_key AS k FROM sibling) s, generate_series(1, 2000) \g /dev/null
RESET ROLE;
SELECT cmp_ok((SELECT count(*) FROM kakunin.api_key_events) - (SELECT n FROM events_before), '<=', 3::bigint,
    '24,000 failed verifications (malformed, 2,000 unknown ids, 2,000 wrong secrets) add at most one row per bucket');
SELECT is((SELECT occurrences FROM kakunin.api_key_events WHERE key_id = (SELECT key_id FROM sibling) AND event = 'verify_failed'),
    1::bigint, 'the first failure of a window is recorded, the rest are counted into the next record');

-- 8. Audit fields say where they came from.
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SELECT matches(kakunin_test.error_of($$INSERT INTO kakunin.audit_log (tenant_id, action) VALUES ('tenant-2', 'x')$$),
    '^42501: permission denied for table audit_log', 'an agent of tenant-1 cannot write an entry of tenant-2');
SELECT matches(kakunin_test.error_of($$INSERT INTO kakunin.audit_log (request_id, action) VALUES ('forged', 'x')$$),
    '^42501: permission denied for table audit_log', 'nor set request_id directly');
SELECT set_config('request.headers', '{"x-request-id": "req-42"}', true);
CREATE TEMP TABLE appended AS SELECT kakunin.audit('order.sent') AS id;
SELECT is((SELECT actor_id || '/' || tenant_id || '/' || request_id FROM kakunin.audit_log WHERE id = (SELECT id FROM appended)),
    'agent-a/tenant-1/req-42', 'actor and tenant come from the binding, request_id from the request');
RESET ROLE;

-- 9. What kakunin_admin changes is in the audit log, with who did it.
SET ROLE admin_user;
SELECT kakunin.set_agent_status('agent-z', 'suspended', 'investigation') \g /dev/null
SELECT kakunin_test.error_of($$SELECT kakunin.add_trust_anchor(kakunin_test.cert('intermediate-ca'), 'second')$$) \g /dev/null
RESET ROLE;
SELECT is((SELECT array_agg(actor_id || ' ' || action ORDER BY id) FROM kakunin.audit_log
           WHERE action IN ('kakunin.agent_status.set', 'kakunin.trust_anchor.added') AND actor_id = 'role:admin_user'
             AND id > (SELECT id FROM appended)),
    ARRAY['role:admin_user kakunin.agent_status.set', 'role:admin_user kakunin.trust_anchor.added'],
    'administrative acts are audit entries naming the role');
SELECT is((SELECT array_agg(actor_id || ' ' || action ORDER BY id) FROM kakunin.audit_log
           WHERE action = 'kakunin.api_key.created' AND payload->>'owner_id' = 'agent-k'),
    ARRAY['role:admin_user kakunin.api_key.created', 'role:admin_user kakunin.api_key.created'],
    'so is every key an admin mints for an owner');

-- Found by attacking 0.3.0 as a hostile role.
-- An appending transaction can be made to wait at its commit by its author (an
-- ON COMMIT action on a table another session locks): it holds no sequencer lock.
SELECT dblink_connect('setup', kakunin_test.connstr(current_user)) \g /dev/null
SELECT dblink_exec('setup', 'CREATE TABLE public.perm (x int); GRANT ALL ON public.perm TO PUBLIC; ALTER TABLE public.perm OWNER TO gateway_app') \g /dev/null
SELECT dblink_connect('locker2', kakunin_test.connstr('app_user')) \g /dev/null
SELECT dblink_connect('appender', kakunin_test.connstr('gateway_app')) \g /dev/null
SELECT dblink_exec('appender', 'CREATE TEMP TABLE c () INHERITS (public.perm) ON COMMIT DELETE ROWS') \g /dev/null
SELECT dblink_exec('locker2', 'BEGIN') \g /dev/null
SELECT dblink_exec('locker2', 'LOCK TABLE public.perm IN ACCESS SHARE MODE') \g /dev/null
SELECT dblink_exec('appender', 'BEGIN') \g /dev/null
SELECT * FROM dblink('appender', format('SELECT kakunin.bind_agent(%L)::text', kakunin_test.cert('agent-a-chain'))) AS t(v text) \g /dev/null
SELECT * FROM dblink('appender', $$SELECT kakunin.audit('stall.attempt')::text$$) AS t(v text) \g /dev/null
SELECT dblink_exec('appender', 'INSERT INTO c VALUES (1)') \g /dev/null
SELECT dblink_send_query('appender', 'COMMIT') \g /dev/null
SELECT pg_sleep(0.3) \g /dev/null
SET LOCAL statement_timeout = '5s';
SELECT lives_ok('SELECT kakunin.audit_integrate()',
    'while an appender''s COMMIT is held up by its author, integration does not wait for it');
SET LOCAL statement_timeout = 0;
SELECT dblink_exec('locker2', 'ROLLBACK') \g /dev/null
SELECT * FROM dblink_get_result('appender') AS t(v text) \g /dev/null
-- The empty second result ends the query.
SELECT * FROM dblink_get_result('appender') AS t(v text) \g /dev/null
-- Dropped by its own session before the parent (a closing session drops its
-- temporary tables only after the disconnect has returned).
SELECT dblink_exec('appender', 'DROP TABLE c') \g /dev/null
SELECT dblink_disconnect('appender') \g /dev/null
SELECT dblink_disconnect('locker2') \g /dev/null
SELECT dblink_exec('setup', 'DROP TABLE public.perm') \g /dev/null

-- Pruning expired proof ids never waits for another binder's open transaction.
SELECT dblink_exec('setup', $$INSERT INTO kakunin.proof_replay
    SELECT 'expired-f' || g, 'j' || g, now() - interval '1 hour' FROM generate_series(1, 50) g$$) \g /dev/null
SELECT dblink_connect('pruner', kakunin_test.connstr('app_user')) \g /dev/null
SELECT dblink_connect('victim', kakunin_test.connstr('app_user')) \g /dev/null
SELECT dblink_exec('pruner', 'BEGIN') \g /dev/null
SELECT * FROM dblink('pruner', format('SELECT kakunin.bind_agent(%L, %L)::text', kakunin_test.cert('agent-a-chain'),
    kakunin_test.proof('agent-a/6'))) AS t(v text) \g /dev/null
SELECT dblink_exec('victim', $$SET statement_timeout = '5s'$$) \g /dev/null
SELECT dblink_exec('victim', 'BEGIN') \g /dev/null
SELECT is((SELECT v FROM dblink('victim', format('SELECT kakunin.bind_agent(%L, %L)->>''agent_id''', kakunin_test.cert('agent-b'),
    kakunin_test.proof('agent-b/6'))) AS t(v text)), 'agent-b',
    'a proof bind does not wait for another binder that pruned expired proof ids and stays open');
SELECT dblink_exec('victim', 'ROLLBACK') \g /dev/null
SELECT dblink_exec('pruner', 'ROLLBACK') \g /dev/null
SELECT dblink_disconnect('pruner') \g /dev/null
SELECT dblink_disconnect('victim') \g /dev/null
SELECT dblink_exec('setup', $$DELETE FROM kakunin.proof_replay WHERE fingerprint LIKE 'expired-f%'$$) \g /dev/null
SELECT dblink_disconnect('setup') \g /dev/null

-- Readers never create the signing key (an open insert would make the signer wait).
SAVEPOINT no_key;
DELETE FROM kakunin.audit_signing_key;
SET ROLE app_user;
SELECT is(kakunin_test.error_of('SELECT kakunin.audit_public_key()'), '55000: the audit log has no signing key yet',
    'without a key, audit_public_key() says so instead of creating one');
RESET ROLE;
SELECT is((SELECT count(*) FROM kakunin.audit_signing_key), 0::bigint, 'and created none');
ROLLBACK TO SAVEPOINT no_key;

-- A key cannot renew itself; limits compare exactly; a revoked credential reads nothing.
SET ROLE admin_user;
CREATE TEMP TABLE k100 AS SELECT * FROM kakunin.create_api_key('agent-q', 'k100', ARRAY['r'], NULL, '{"limits": {"max_notional": 100}}');
GRANT SELECT ON k100 TO PUBLIC;
RESET ROLE;
SAVEPOINT renew;
SET ROLE gateway_app;
SELECT kakunin.bind_api_key((SELECT api_key FROM k100)) \g /dev/null
SELECT matches(kakunin_test.error_of($$SELECT kakunin.rotate_api_key((SELECT key_id FROM k100), '1000 years')$$),
    '^42501: permission denied: a caller bound with an API key cannot rotate keys',
    'a leaked key cannot rotate itself into a key that outlives its revocation');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.create_api_key('agent-q', 'w', ARRAY['r'], NULL, '{"limits": {"max_notional": 100.00000000000001}}')$$),
    '^42501: .*limit "max_notional" must be at most',
    'a limit above the parent''s by 1e-14 is refused (compared exactly, not as floating point)');
RESET ROLE;
ROLLBACK TO SAVEPOINT renew;
SAVEPOINT revoked_reads;
INSERT INTO kakunin.audit_log (actor_id, tenant_id, action) VALUES ('agent-a', 'tenant-1', 'readable.while.active');
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SELECT ok((SELECT count(*) FROM kakunin.audit_log WHERE action = 'readable.while.active') = 1, 'an active agent reads its own entries');
RESET ROLE;
SELECT kakunin.set_agent_status('agent-a', 'revoked') \g /dev/null
SET ROLE gateway_app;
SELECT is((SELECT count(*) FROM kakunin.audit_log WHERE action = 'readable.while.active'), 0::bigint,
    'revoked, it reads none (the extension''s own policies check the status)');
RESET ROLE;
ROLLBACK TO SAVEPOINT revoked_reads;

-- A key derived from a certificate answers unknown while that certificate's CRL is stale.
SAVEPOINT stale;
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-b'));
CREATE TEMP TABLE bk AS SELECT * FROM kakunin.create_api_key('agent-b', 'from-b', ARRAY['r']);
RESET ROLE;
SELECT kakunin.load_crl(kakunin_test.cert('crl-stale')) \g /dev/null
SELECT is(kakunin.verify_api_key((SELECT api_key FROM bk)), '{"valid": false, "reason": "unknown"}',
    'a stale CRL for its certificate''s issuer makes the derived key unknown, as the certificate');

SELECT * FROM finish();
ROLLBACK;
