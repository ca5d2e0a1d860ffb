-- Proof of possession for callers that are not gateways: a JWS signed by the
-- certificate key, fresh, for this database, never replayed. Each case runs in
-- a savepoint that is rolled back, which also undoes its binding.
BEGIN;
SELECT plan(28);
CALL kakunin_test.share_pgtap();
SET ROLE app_user;

SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-b'))$$),
    '^28000: proof of possession required', 'a certificate alone is not enough for a non-gateway role');
SELECT is(kakunin_agent_id(), NULL, 'nothing bound without a proof');

SAVEPOINT b;
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-b'), kakunin_test.proof('agent-b/1'))->>'method',
    'proof', 'EdDSA proof binds agent-b');
SELECT is(kakunin_agent_id(), 'agent-b', 'agent-b is bound');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-b'), kakunin_test.proof('agent-b/1'))$$),
    '^28000: proof of possession refused: jti "agent-b-1" was already used \(replay\)$', 'a replayed proof is refused');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'), kakunin_test.proof('agent-a/1'))$$),
    '^28000: agent "agent-b" is already bound in this transaction', 'a non-gateway cannot switch to another agent');
SELECT is(kakunin_agent_id(), 'agent-b', 'the refused switch left agent-b bound');
SELECT lives_ok($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-b'), kakunin_test.proof('agent-b/2'))$$,
    'the same agent may bind again with a fresh proof');
ROLLBACK TO SAVEPOINT b;
SELECT is(kakunin_agent_id(), NULL, 'ROLLBACK TO SAVEPOINT undoes the binding');

SAVEPOINT a;
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-a-chain'), kakunin_test.proof('agent-a/2'))->>'agent_id', 'agent-a', 'ES256 proof binds agent-a');
ROLLBACK TO SAVEPOINT a;
SAVEPOINT r;
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-rsa'), kakunin_test.proof('agent-rsa/1'))->>'agent_id', 'agent-rsa', 'RS256 proof binds agent-rsa');
ROLLBACK TO SAVEPOINT r;
SAVEPOINT r;
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-rsa'), kakunin_test.proof('agent-rsa/ps256'))->>'agent_id', 'agent-rsa', 'PS256 proof binds agent-rsa');
ROLLBACK TO SAVEPOINT r;
SAVEPOINT p;
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-p384'), kakunin_test.proof('agent-p384/1'))->>'agent_id', 'agent-p384', 'ES384 proof binds agent-p384');
ROLLBACK TO SAVEPOINT p;

SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'), kakunin_test.proof('agent-a/stale'))$$),
    '^28000: proof of possession refused: iat \d+ is more than 300 seconds before now', 'a stale proof is refused');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'), kakunin_test.proof('agent-a/future'))$$),
    '^28000: proof of possession refused: iat \d+ is in the future', 'a proof from the future is refused');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'), kakunin_test.proof('agent-a/other-db'))$$),
    '^28000: proof of possession refused: aud does not name the current database', 'a proof for another database is refused');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'), kakunin_test.proof('agent-a/no-jti'))$$),
    '^28000: proof of possession refused: claim "jti" is missing', 'a proof without jti is refused');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'), kakunin_test.proof('agent-a/signed-by-b'))$$),
    '^28000: proof of possession refused: algorithm EdDSA does not match the certificate''s key type', 'a proof signed by another agent''s key is refused');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'), kakunin_test.proof('rogue-agent/1'))$$),
    '^28000: proof of possession refused: signature does not verify', 'a proof by the rogue key (same agent id) is refused');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('rogue-agent'), kakunin_test.proof('rogue-agent/2'))$$),
    '^28000: certificate does not chain to a trusted anchor', 'the rogue certificate with its own valid proof is refused');
SELECT matches(kakunin_test.error_of($$CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'), 'eyJhbGciOiJub25lIn0.e30.')$$),
    '^28000: proof of possession refused: algorithm "none"', 'alg none is refused');
SELECT is(kakunin_agent_id(), NULL, 'none of the refused proofs bound anything');
-- Issue 11: in a read-only transaction (PostgREST's GET) the jti cannot be
-- recorded; the refusal says so instead of failing with 25006 on our INSERT.
SAVEPOINT read_only;
SET LOCAL transaction_read_only = on;
-- (pgTAP records results in a table the read-only savepoint could not write.)
SELECT kakunin_test.error_of(format('SELECT kakunin.bind_agent(%L, %L)',
        kakunin_test.cert('agent-a-chain'), kakunin_test.proof('agent-a/7'))) AS read_only_error \gset
ROLLBACK TO SAVEPOINT read_only;
SELECT is(:'read_only_error'::text,
    '28000: proof of possession cannot be accepted in a read-only transaction or on a standby without shared memory: its jti must be recorded so the proof cannot be replayed; preload the library (shared_preload_libraries = ''kakunin_pg''), or bind in a read-write transaction on the primary, or through a kakunin_gateway member',
    'a proof bind in a read-only transaction is refused with 28000 in the caller''s terms');
RESET ROLE;
-- A certificate's binding is built once per backend, gateway and proof apart:
-- one certificate bound alone, with a proof, then alone again says each time
-- how it was bound.
SET ROLE gateway_app;
SAVEPOINT g;
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-b'))->>'method', 'gateway', 'a gateway binds agent-b alone: method gateway');
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-b'), kakunin_test.proof('agent-b/7'))->>'method', 'proof', 'then with a proof: method proof');
SELECT is(kakunin.bind_agent(kakunin_test.cert('agent-b'))->>'method', 'gateway', 'then alone again: method gateway');
ROLLBACK TO SAVEPOINT g;
RESET ROLE;
-- Not preloaded (this suite's server): no shared memory, and it says so.
SELECT is(kakunin.shared_memory(), '{"preloaded": false, "started_at": null, "proof_replay": null, "verify_cache": null}'::jsonb,
    'kakunin.shared_memory() reports the mode: not preloaded');
SELECT matches(kakunin_test.error_of('SET LOCAL ROLE app_user; SELECT kakunin.shared_memory()'),
    '^42501: permission denied for function shared_memory', 'kakunin.shared_memory() is kakunin_admin''s');
SELECT * FROM finish();
ROLLBACK;
