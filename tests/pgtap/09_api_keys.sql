-- API keys: format, hashing at rest, verification reasons, binding, ownership,
-- no widening, rotation, revocation mid-transaction, events.
BEGIN;
SELECT plan(49);
CALL kakunin_test.share_pgtap();

INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES
    ('agent-k', 'AAPL', 'XNAS', 3, 1), ('agent-k', 'MSFT', 'XNAS', 4, 1);

-- An admin creates a key for agent-k; the plaintext is returned once.
SET ROLE admin_user;
CREATE TEMP TABLE k AS SELECT * FROM kakunin.create_api_key('agent-k', 'reporting',
    ARRAY['trades:read', 'events:read'], now() + interval '1 day',
    '{"instruments": ["AAPL"], "venues": ["XNAS"], "team": "risk"}', 'tenant-1');
GRANT SELECT ON k TO PUBLIC;
RESET ROLE;
SELECT matches((SELECT api_key FROM k), '^kkn_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$', 'format: kkn_<id>_<256-bit base64url secret>');
SELECT is(replace((SELECT key_id FROM k)::text, '-', ''), substr((SELECT api_key FROM k), 5, 32), 'the key id is embedded for lookup');
CREATE FUNCTION pg_temp.b64url(t text) RETURNS bytea LANGUAGE sql AS
$$ SELECT decode(translate(t, '-_', '+/') || repeat('=', (4 - length(t) % 4) % 4), 'base64') $$;
SELECT is((SELECT secret_hash FROM kakunin.api_keys WHERE key_id = (SELECT key_id FROM k)),
    sha256(pg_temp.b64url(substr((SELECT api_key FROM k), 38))), 'only SHA-256 of the secret is stored');
SELECT ok(NOT EXISTS (SELECT 1 FROM kakunin.api_keys a, k WHERE strpos(a::text, substr(k.api_key, 38)) > 0),
    'the plaintext secret is stored nowhere in the row');

SET ROLE app_user;
SELECT matches(kakunin_test.error_of($$SELECT secret_hash FROM kakunin.api_keys$$),
    '^42501: permission denied', 'no role can read the hashes');
SELECT is((SELECT count(*) FROM kakunin.api_keys), 0::bigint, 'an unbound role sees no keys (RLS)');

-- Verification reasons.
SELECT is((kakunin.verify_api_key((SELECT api_key FROM k)) - 'expires_at' - 'key_id'),
    '{"valid": true, "owner_id": "agent-k", "tenant_id": "tenant-1", "capabilities": ["trades:read", "events:read"],
      "claims": {"instruments": ["AAPL"], "venues": ["XNAS"], "team": "risk"}}'::jsonb, 'a valid key verifies');
SELECT is(kakunin.verify_api_key('kkn_nope'), '{"valid": false, "reason": "malformed"}', 'malformed');
SELECT is(kakunin.verify_api_key(NULL), '{"valid": false, "reason": "malformed"}', 'NULL is malformed');
SELECT is(kakunin.verify_api_key(repeat('x', 5000000)), '{"valid": false, "reason": "malformed"}', 'a 5 MB string is malformed');
SELECT is(kakunin.verify_api_key('kkn_' || md5('x') || '_' || substr((SELECT api_key FROM k), 38)),
    '{"valid": false, "reason": "unknown"}', 'unknown key id');
SELECT is(kakunin.verify_api_key(overlay((SELECT api_key FROM k) PLACING
        CASE WHEN substr((SELECT api_key FROM k), 40, 1) = 'A' THEN 'B' ELSE 'A' END FROM 40 FOR 1)),
    '{"valid": false, "reason": "unknown"}', 'a wrong secret looks exactly like an unknown id');

-- Binding with a key.
SELECT is(kakunin.bind_api_key((SELECT api_key FROM k))->>'agent_id', 'agent-k', 'bind_api_key binds the owner');
SELECT is(kakunin_agent_id(), 'agent-k', 'kakunin_agent_id() is the owner');
SELECT is(kakunin_tenant_id(), 'tenant-1', 'kakunin_tenant_id() is the key''s tenant');
SELECT is(kakunin_key_id(), (SELECT key_id FROM k), 'kakunin_key_id() is the key');
SELECT is(kakunin_cert_serial(), NULL, 'no certificate serial for a key binding');
SELECT is(kakunin_cert_status(), 'active', 'an active key reads as active to status-gated policies');
SELECT ok(kakunin.authorize('trades:read'), 'authorize: a capability the key has');
SELECT ok(NOT kakunin.authorize('trades:write'), 'authorize: a capability it lacks');
SELECT is(kakunin_permitted_instruments(), '{AAPL}'::text[], 'claims carry the financial scope');
SELECT results_eq('SELECT instrument FROM trades', ARRAY['AAPL'], 'policies admit the key''s in-scope rows');
SELECT is((SELECT count(*) FROM kakunin.list_api_keys('agent-k')), 1::bigint, 'the owner lists its own key');

-- A key cannot widen itself.
SELECT matches(kakunin_test.error_of($$SELECT * FROM kakunin.create_api_key('agent-k', 'wider', ARRAY['trades:write'])$$),
    '^42501: permission denied: a key cannot create a key with capability "trades:write"', 'no new capability');
CREATE TEMP TABLE narrow AS SELECT * FROM kakunin.create_api_key('agent-k', 'narrow', ARRAY['trades:read']);
SELECT ok((SELECT expires_at FROM kakunin.api_keys WHERE key_id = (SELECT key_id FROM narrow))
          <= (SELECT expires_at FROM kakunin.api_keys WHERE key_id = (SELECT key_id FROM k)),
    'a narrower key is capped at its creator''s expiry');
SELECT matches(kakunin_test.error_of($$SELECT * FROM kakunin.create_api_key('agent-k', 'x', ARRAY['trades:read'], NULL, '{}', 'tenant-2')$$),
    '^42501: permission denied: the bound identity belongs to tenant "tenant-1"', 'no other tenant');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.update_api_key_claims((SELECT key_id FROM k), '{"instruments": ["AAPL", "TSLA"]}')$$),
    '^42501: permission denied: a caller bound with an API key cannot change key claims', 'no claim widening');
SELECT matches(kakunin_test.error_of($$SELECT * FROM kakunin.create_api_key('agent-b', 'theirs', ARRAY['trades:read'])$$),
    '^42501: permission denied: only the bound agent "agent-b"', 'no keys for another owner');
RESET ROLE;

-- Revocation reaches the next statement of the bound transaction.
SET ROLE admin_user;
SELECT ok(kakunin.revoke_api_key((SELECT key_id FROM k), 'leaked'), 'admin revokes the key');
SELECT ok(NOT kakunin.revoke_api_key((SELECT key_id FROM k)), 'revoking twice returns false');
RESET ROLE;
SET ROLE app_user;
SELECT is(kakunin_cert_status(), 'revoked', 'the bound key is revoked at the next statement');
SELECT ok(NOT kakunin.authorize('trades:read'), 'authorize is false once revoked');
SELECT is((SELECT count(*) FROM trades), 0::bigint, 'revoked: zero rows');
SELECT is(kakunin.verify_api_key((SELECT api_key FROM k)), '{"valid": false, "reason": "revoked"}', 'verify says revoked');
RESET ROLE;

-- Rotation and expiry; an invalid key binds nothing.
SAVEPOINT rotation;
SET ROLE admin_user;
CREATE TEMP TABLE k2 AS SELECT * FROM kakunin.create_api_key('agent-k', 'rotating', ARRAY['trades:read']);
CREATE TEMP TABLE k3 AS SELECT * FROM kakunin.rotate_api_key((SELECT key_id FROM k2));
SELECT is(kakunin.verify_api_key((SELECT api_key FROM k2)), '{"valid": false, "reason": "expired"}', 'rotation without grace: the old key is expired');
SELECT ok((kakunin.verify_api_key((SELECT api_key FROM k3))->>'valid')::boolean, 'the new key is valid');
CREATE TEMP TABLE k4 AS SELECT * FROM kakunin.rotate_api_key((SELECT key_id FROM k3), interval '1 hour');
SELECT ok((kakunin.verify_api_key((SELECT api_key FROM k3))->>'valid')::boolean, 'rotation with grace: the old key still works');
SELECT is((SELECT rotated_to FROM kakunin.api_keys WHERE key_id = (SELECT key_id FROM k3)), (SELECT key_id FROM k4), 'the old key points to its successor');
CREATE TEMP TABLE k5 AS SELECT * FROM kakunin.create_api_key('agent-k', 'past', ARRAY['x'], now() - interval '1 second');
SELECT is(kakunin.verify_api_key((SELECT api_key FROM k5)), '{"valid": false, "reason": "expired"}', 'expired');
RESET ROLE;
ROLLBACK TO SAVEPOINT rotation;
SET ROLE gateway_app;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.bind_api_key('kkn_garbage')$$), '^28000: API key refused: malformed$', 'binding a malformed key: 28000');
RESET ROLE;

-- Ownership through RLS: agent-a (by certificate) cannot touch agent-k's keys.
SAVEPOINT other_owner;
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SELECT is((SELECT count(*) FROM kakunin.list_api_keys('agent-k')), 0::bigint, 'another agent lists none of agent-k''s keys');
SELECT matches(kakunin_test.error_of($$SELECT kakunin.revoke_api_key((SELECT key_id FROM k))$$),
    '^42501: API key [0-9a-f-]+ does not exist or is not yours', 'and cannot revoke them');
SELECT ok((SELECT api_key FROM kakunin.create_api_key('agent-a', 'mine', ARRAY['any']) ) IS NOT NULL,
    'an agent bound by certificate creates its own key');
RESET ROLE;
ROLLBACK TO SAVEPOINT other_owner;

-- Events: who did what.
SELECT is((SELECT array_agg(event ORDER BY id) FROM kakunin.api_key_events WHERE key_id = (SELECT key_id FROM k)),
    ARRAY['created', 'verify_failed', 'revoked', 'verify_failed'], 'creation, failed verifications and revocation are recorded');
SELECT ok((SELECT last_used_at FROM kakunin.api_key_usage WHERE key_id = (SELECT key_id FROM k)) IS NOT NULL, 'last use is recorded');
-- Verification and binding in a read-only transaction (as on a hot standby):
-- they work and write nothing.
SELECT dblink_connect('admin', kakunin_test.connstr('admin_user')) \g /dev/null
SELECT dblink_connect('reader', kakunin_test.connstr('app_user')) \g /dev/null
CREATE TEMP TABLE committed_key AS SELECT * FROM dblink('admin',
    $$SELECT key_id, api_key FROM kakunin.create_api_key('agent-ro', 'read-only test', ARRAY['r'])$$)
    AS t(key_id uuid, api_key text);
SELECT dblink_exec('reader', 'BEGIN READ ONLY') \g /dev/null
SELECT is((SELECT v FROM dblink('reader', format('SELECT kakunin.verify_api_key(%L)->>''valid''', (SELECT api_key FROM committed_key))) AS t(v text)),
    'true', 'verify works in a read-only transaction');
SELECT is((SELECT v FROM dblink('reader', format('SELECT kakunin.verify_api_key(%L)->>''reason''', 'kkn_' || repeat('0', 32) || '_' || substr((SELECT api_key FROM committed_key), 38))) AS t(v text)),
    'unknown', 'a failed verification in a read-only transaction is reported, not recorded');
SELECT is((SELECT v FROM dblink('reader', format('SELECT kakunin.bind_api_key(%L)->>''agent_id''', (SELECT api_key FROM committed_key))) AS t(v text)),
    'agent-ro', 'bind_api_key works in a read-only transaction');
SELECT dblink_exec('reader', 'COMMIT') \g /dev/null
SELECT is((SELECT v FROM dblink('admin', format('SELECT (last_used_at IS NULL)::text FROM kakunin.api_key_usage WHERE key_id = %L', (SELECT key_id FROM committed_key))) AS t(v text)),
    'true', 'nothing was written by the read-only uses');
SELECT * FROM dblink('admin', format('SELECT kakunin.revoke_api_key(%L, ''test cleanup'')', (SELECT key_id FROM committed_key))) AS t(v boolean) \g /dev/null
SELECT dblink_disconnect('admin') \g /dev/null
SELECT dblink_disconnect('reader') \g /dev/null

SELECT * FROM finish();
ROLLBACK;
