-- The tamper-evident audit log: who may append, append-only for every role,
-- gapless positions with no hole from a rollback, signed checkpoints,
-- verification that pinpoints tampering, proofs and evidence export.
BEGIN;
SELECT plan(30);
CALL kakunin_test.share_pgtap();
-- Earlier files and setup.sql committed entries (administrative acts are
-- logged): place them first; this file's entries follow at position :n.
SELECT kakunin.audit_integrate() \g /dev/null
SELECT count(*) AS n FROM kakunin.audit_log \gset
SELECT count(*) AS c FROM kakunin.audit_checkpoints \gset

-- Appending: the bound agent as itself while active; nobody unbound.
SET ROLE app_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.audit('login')$$),
    '^42501: new row violates row-level security policy for table "audit_log"', 'an unbound role cannot append');
RESET ROLE;
SET ROLE gateway_app;
CALL kakunin.bind_agent_session(kakunin_test.cert('agent-a-chain'));
SELECT ok(kakunin.audit('trade.placed', '{"instrument": "AAPL", "qty": 10}') > 0, 'the bound agent appends');
SELECT lives_ok($$INSERT INTO kakunin.audit_log (action, payload) VALUES ('trade.amended', '{"qty": 12}')$$,
    'a plain INSERT works too');
RESET ROLE;
SELECT is((SELECT count(*) FROM kakunin.audit_log WHERE seq IS NOT NULL), :n::bigint,
    'appends never place their own transaction''s entries (only committed ones are placed)');
-- An explicit checkpoint places them (and would roll back with them).
SELECT count(*) FROM kakunin.audit_checkpoint() \g /dev/null
SET ROLE gateway_app;
SELECT matches(kakunin_test.error_of($$INSERT INTO kakunin.audit_log (actor_id, action) VALUES ('agent-b', 'x')$$),
    '^42501: permission denied for table audit_log', 'nobody appends as another agent');
SELECT matches(kakunin_test.error_of($$INSERT INTO kakunin.audit_log (seq, action) VALUES (99, 'x')$$),
    '^42501: permission denied', 'nobody chooses a position');
SELECT is(kakunin_test.error_of($$SELECT kakunin.audit(NULL)$$), '22004: action must not be NULL',
    'a NULL action is refused with its name');
SAVEPOINT null_payload;
SELECT kakunin.audit('no.payload', NULL) \g /dev/null
SELECT is((SELECT payload FROM kakunin.audit_log WHERE action = 'no.payload'), '{}'::jsonb,
    'a NULL payload is stored as {}');
ROLLBACK TO SAVEPOINT null_payload;
SAVEPOINT rolled_back;
SELECT kakunin.audit('never.committed') \g /dev/null
ROLLBACK TO SAVEPOINT rolled_back;
SELECT kakunin.audit('trade.closed', '{"pnl": 1.50}') \g /dev/null
SELECT is((SELECT actor_id || '/' || tenant_id FROM kakunin.audit_log WHERE action = 'trade.placed' ORDER BY id LIMIT 1), 'agent-a/tenant-1',
    'actor and tenant default to the binding');
RESET ROLE;

-- Append-only, even for a superuser (short of disabling triggers).
SET ROLE app_user;
SELECT matches(kakunin_test.error_of($$UPDATE kakunin.audit_log SET action = 'x'$$), '^42501: permission denied', 'no UPDATE grant');
RESET ROLE;
SELECT matches(kakunin_test.error_of($$UPDATE kakunin.audit_log SET action = 'x'$$),
    '^42501: the audit log is append-only: UPDATE is not allowed$', 'the owner cannot UPDATE');
SELECT matches(kakunin_test.error_of($$DELETE FROM kakunin.audit_log$$),
    '^42501: the audit log is append-only: DELETE is not allowed$', 'nor DELETE');
SELECT matches(kakunin_test.error_of($$TRUNCATE kakunin.audit_log$$),
    '^42501: the audit log is append-only: TRUNCATE is not allowed$', 'nor TRUNCATE');

-- Sequencing: gapless from 0, the rolled-back append left no hole.
SELECT kakunin.audit_integrate() \g /dev/null
SELECT is((SELECT array_agg(seq ORDER BY seq) FROM kakunin.audit_log), (SELECT array_agg(g) FROM generate_series(0, :n + 2) g)::bigint[],
    'positions are gapless; the rolled-back append left no hole');
SELECT is((SELECT count(*) FROM kakunin.audit_log WHERE leaf_hash IS NULL OR length(leaf_hash) <> 32), 0::bigint,
    'every integrated entry has its SHA-256 leaf hash');

-- Checkpoints and verification.
CREATE TEMP TABLE cp AS SELECT * FROM kakunin.audit_checkpoint();
SELECT is((SELECT tree_size FROM cp), :n + 3::bigint, 'a checkpoint covers the three entries');
SELECT matches(kakunin_test.error_of($$DELETE FROM kakunin.audit_checkpoints$$),
    '^42501: the audit log is append-only', 'checkpoints are append-only too');
SELECT is((SELECT encode(root_hash, 'hex') FROM cp), kakunin.audit_inclusion_proof(0, :n + 3)->>'root_hash',
    'its root is the tree''s root');
SELECT matches(kakunin.audit_checkpoint_note(),
    E'^kakunin/kakunin_test\\n' || (:n + 3) || E'\\n[A-Za-z0-9+/]{43}=\\n\\n\u2014 kakunin/kakunin_test [A-Za-z0-9+/]+=*\\n$', 'a C2SP signed note');
SELECT matches(kakunin.audit_public_key(), '^kakunin/kakunin_test\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$', 'the public key as a C2SP verifier key');
SET ROLE admin_user;
SELECT matches(kakunin_test.error_of($$SELECT seed FROM kakunin.audit_signing_key$$), '^42501: permission denied',
    'the private key is readable by no role, admins included');
RESET ROLE;
SELECT is(kakunin.verify_audit_log(), jsonb_build_object('ok', true, 'entries', :n + 3, 'checkpoints', :c + 2,
    'first_bad_seq', null, 'reason', null),
    'an untouched log verifies, with both checkpoints');
SELECT is(kakunin.audit_inclusion_proof(:n + 1, :n + 3)->>'root_hash', (SELECT encode(root_hash, 'hex') FROM cp),
    'an inclusion proof of this file''s second entry leads to the checkpoint''s root');
SELECT is(kakunin.audit_consistency_proof(:n + 2, :n + 3)->>'old_root', kakunin.audit_inclusion_proof(0, :n + 2)->>'root_hash',
    'a consistency proof starts from the older root');

-- Tampering (a superuser disabling the guard) is pinpointed.
SAVEPOINT tamper;
ALTER TABLE kakunin.audit_log DISABLE TRIGGER append_only;
UPDATE kakunin.audit_log SET payload = '{"qty": 1200}' WHERE seq = :n + 1;
SELECT is(kakunin.verify_audit_log() - 'checkpoints',
    jsonb_build_object('ok', false, 'entries', :n + 1, 'first_bad_seq', :n + 1,
        'reason', format('entry %s no longer matches its leaf hash', :n + 1)), 'an edited entry is found');
ROLLBACK TO SAVEPOINT tamper;
ALTER TABLE kakunin.audit_log DISABLE TRIGGER append_only;
DELETE FROM kakunin.audit_log WHERE seq = :n + 1;
SELECT is(kakunin.verify_audit_log()->>'reason', format('seq %s is missing', :n + 1), 'a deleted entry is found');
ROLLBACK TO SAVEPOINT tamper;
ALTER TABLE kakunin.audit_checkpoints DISABLE TRIGGER append_only;
UPDATE kakunin.audit_checkpoints SET root_hash = sha256('forged') WHERE tree_size = :n + 3;
SELECT is(kakunin.verify_audit_log()->>'reason', format('checkpoint at tree size %s no longer matches the entries', :n + 3),
    'a rewritten checkpoint is found');
ROLLBACK TO SAVEPOINT tamper;
ALTER TABLE kakunin.audit_tree DISABLE TRIGGER append_only;
UPDATE kakunin.audit_tree SET hash = sha256('forged') WHERE level = 1 AND idx = 0;
SELECT is(kakunin.verify_audit_log()->>'reason', 'stored tree nodes at level 1 no longer match the entries',
    'a forged interior node (which proofs would be built from) is found');
ROLLBACK TO SAVEPOINT tamper;

-- Evidence export: kakunin_admin only.
SET ROLE app_user;
SELECT matches(kakunin_test.error_of($$SELECT kakunin.export_evidence('-infinity', 'infinity')$$),
    '^42501: permission denied for function export_evidence', 'only admins export evidence');
RESET ROLE;
SET ROLE admin_user;
SELECT is(jsonb_array_length(kakunin.export_evidence('-infinity', 'infinity')->'entries'), :n + 3, 'the bundle holds every entry, this file''s three included');
RESET ROLE;
SELECT * FROM finish();
ROLLBACK;
