-- Issue 15's reported faults, each as the input that showed it: revocation
-- never waits for the key holder, messages in the caller's terms, the
-- sequencer's lag is visible, API keys expire at the timestamp's precision.
BEGIN;
SELECT plan(16);
CALL kakunin_test.share_pgtap();

-- 4. A revocation never waits for the key holder.
SELECT dblink_connect('admin', kakunin_test.connstr('admin_user')) \g /dev/null
SELECT dblink_connect('holder', kakunin_test.connstr('app_user')) \g /dev/null
SELECT dblink_connect('other', kakunin_test.connstr('app_user')) \g /dev/null
CREATE TEMP TABLE held AS SELECT * FROM dblink('admin',
    $$SELECT key_id, api_key FROM kakunin.create_api_key('agent-w', 'held', ARRAY['r'])
      UNION ALL SELECT key_id, api_key FROM kakunin.create_api_key('agent-w', 'busy', ARRAY['r'])$$)
    AS t(key_id uuid, api_key text);
CREATE TEMP TABLE held_key AS SELECT * FROM held LIMIT 1;
CREATE TEMP TABLE busy_key AS SELECT * FROM held WHERE key_id <> (SELECT key_id FROM held_key);
SELECT dblink_exec('holder', 'BEGIN') \g /dev/null
SELECT is((SELECT s FROM dblink('holder', format('SELECT kakunin.bind_api_key(%L)->>''agent_id''', (SELECT api_key FROM held_key))) AS t(s text)),
    'agent-w', 'the holder binds its key and stays idle in its transaction (its first use is being recorded)');
SELECT dblink_exec('admin', 'SET statement_timeout = ''5s''') \g /dev/null
SELECT is((SELECT r FROM dblink('admin', format('SELECT kakunin.revoke_api_key(%L)::text', (SELECT key_id FROM held_key))) AS t(r text)),
    'true', 'the revocation returns at once (statement_timeout 5 s would cancel a wait)');
SELECT is((SELECT s FROM dblink('holder', 'SELECT kakunin_cert_status()') AS t(s text)), 'revoked',
    'the holder''s next statement sees it');
SELECT is((SELECT s FROM dblink('other', format('SELECT kakunin.verify_api_key(%L)->>''reason''', (SELECT api_key FROM held_key))) AS t(s text)),
    'revoked', 'and so does every other session');
SELECT dblink_exec('holder', 'ROLLBACK') \g /dev/null
-- A holder inside a long statement.
SELECT dblink_send_query('holder', format('SELECT kakunin.bind_api_key(%L), pg_sleep(3)', (SELECT api_key FROM busy_key))) \g /dev/null
SELECT pg_sleep(0.5) \g /dev/null
SELECT is((SELECT r FROM dblink('admin', format('SELECT kakunin.revoke_api_key(%L)::text', (SELECT key_id FROM busy_key))) AS t(r text)),
    'true', 'a holder in a long statement does not hold it up either');
-- fail = false: had the holder started only after the revocation, its bind is refused (fine)
SELECT * FROM dblink_get_result('holder', false) AS t(a text, b text) \g /dev/null
SELECT dblink_disconnect('holder') \g /dev/null
SELECT dblink_disconnect('other') \g /dev/null

-- 6. Messages are for people: the number, the OID, the header, as given.
SELECT is(kakunin_test.error_of('SELECT kakunin.audit_inclusion_proof(-1)'), '22023: seq must be 0 or more (got -1)',
    'a negative position is reported as given');
SELECT is(kakunin_test.error_of('SELECT kakunin.audit_consistency_proof(-1, 5)'), '22023: old_size must be 0 or more (got -1)',
    'so is a negative size');
SELECT is(kakunin.validate_certificate(kakunin_test.cert('unknown-critical'))->>'detail',
    'certificate is malformed: it has a critical extension that is not supported (RFC 5280 §4.2): OID 1.3.6.1.4.1.99999.1',
    'an unknown critical extension is named by its OID');
SET ROLE gateway_app;
SAVEPOINT headers;
SELECT set_config('request.headers', '{"x-api-key": 5}', true) \g /dev/null
SELECT is(kakunin_test.error_of('SELECT kakunin.pre_request()'), '28000: request header x-api-key must be a string, not a number',
    'a credential header of the wrong JSON type is refused, not ignored');
SELECT set_config('request.headers', jsonb_build_object('x-kakunin-certificate',
    replace(kakunin_test.url_escape(kakunin_test.cert('agent-b')), '%20', '+'))::text, true) \g /dev/null
SELECT lives_ok('SELECT kakunin.pre_request()', 'a form-encoded certificate header (spaces as +) binds');
SELECT is(kakunin_agent_id(), 'agent-b', 'as the certificate''s agent');
ROLLBACK TO SAVEPOINT headers;
ROLLBACK TO SAVEPOINT headers;
RESET ROLE;

-- 8. The sequencer's lag is visible; keys expire at the timestamp's precision.
SELECT ok((kakunin.audit_lag() ?& ARRAY['unplaced', 'oldest_unplaced', 'worker_running'])
          AND (kakunin.audit_lag()->>'worker_running') = 'false',
    'audit_lag() reports unplaced entries, the oldest''s time and whether the worker runs');
-- Just past a second boundary, a key expiring 900 ms into that second is still valid.
SELECT pg_sleep((1000 - (extract(milliseconds FROM clock_timestamp())::int % 1000)) / 1000.0 + 0.01) \g /dev/null
CREATE TEMP TABLE short_key AS SELECT * FROM kakunin.create_api_key('agent-e', 'short', ARRAY['r'],
    date_trunc('second', clock_timestamp()) + interval '900 ms');
SELECT is(kakunin.verify_api_key((SELECT api_key FROM short_key))->>'valid', 'true',
    'a key with 0.8 s left is valid (whole seconds called it expired)');
SELECT pg_sleep(1) \g /dev/null
SELECT is(kakunin.verify_api_key((SELECT api_key FROM short_key))->>'reason', 'expired', 'and expired once its time has passed');

-- Session 6's hostile review: a jsonb argument nested past serde's 128 levels
-- reached any role as a Rust panic (XX000, serde's debug text); now a 22023 in
-- plain words.
SET ROLE app_user;
SELECT is(kakunin_test.error_of($$SELECT kakunin.update_api_key_claims(gen_random_uuid(), (repeat('[', 200) || repeat(']', 200))::jsonb)$$),
    '22023: a jsonb argument cannot be read: recursion limit exceeded at line 1 column 128',
    'claims nested 200 deep are refused with 22023, not a panic');
RESET ROLE;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.create_api_key('agent-e', 'deep', ARRAY['r'], NULL, (repeat('{"a":', 130) || '1' || repeat('}', 130))::jsonb)$$),
    '^22023: a jsonb argument cannot be read: recursion limit exceeded at line 1 column \d+$',
    'and so are deep claims at key creation');

SELECT dblink_disconnect('admin') \g /dev/null
SELECT * FROM finish();
ROLLBACK;
