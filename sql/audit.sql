-- The tamper-evident audit log (src/audit/). Appends land in audit_log with
-- no position; the sequencer (kakunin.audit_integrate) gives committed entries
-- their gapless seq, leaf hash and tree nodes; checkpoints sign tree heads.

CREATE TABLE kakunin.audit_log (
    id         bigserial PRIMARY KEY,
    seq        bigint,
    ts         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    tenant_id  text DEFAULT @extschema@.kakunin_tenant_id(),
    actor_id   text NOT NULL DEFAULT coalesce(@extschema@.kakunin_agent_id(), SESSION_USER::text),
    request_id text DEFAULT kakunin.current_request_id(),
    action     text NOT NULL CHECK (length(action) BETWEEN 1 AND 200),
    payload    jsonb NOT NULL DEFAULT '{}',
    leaf_hash  bytea
);
-- Partial, so an append (seq still NULL) writes no entry into it.
CREATE UNIQUE INDEX audit_log_seq_key ON kakunin.audit_log (seq) WHERE seq IS NOT NULL;
CREATE INDEX audit_log_pending_idx ON kakunin.audit_log (id) WHERE seq IS NULL;
COMMENT ON TABLE kakunin.audit_log IS
    'Append-only audit log. seq is the entry''s position (0-based, gapless, in commit order), assigned with leaf_hash when the sequencer integrates it; NULL until then. No role can UPDATE, DELETE or TRUNCATE it.';
COMMENT ON COLUMN kakunin.audit_log.id IS 'Arrival order (gaps from rolled-back appends are normal); not the log position.';
COMMENT ON COLUMN kakunin.audit_log.seq IS 'Position in the Merkle tree (leaf index, from 0).';
COMMENT ON COLUMN kakunin.audit_log.leaf_hash IS 'SHA-256(0x00 || canonical bytes of the entry), RFC 6962.';

-- Appends an entry as the caller (src/audit/append.rs).
CREATE FUNCTION kakunin.audit(action text, payload jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'kakunin_audit';

-- Perfect-subtree nodes above the leaves: (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level). Proofs read O(log^2 n) of them.
CREATE TABLE kakunin.audit_tree (
    level smallint NOT NULL CHECK (level > 0),
    idx   bigint NOT NULL,
    hash  bytea NOT NULL,
    PRIMARY KEY (level, idx)
);
COMMENT ON TABLE kakunin.audit_tree IS 'Interior Merkle nodes of the audit log (internal).';

CREATE TABLE kakunin.audit_checkpoints (
    tree_size bigint PRIMARY KEY,
    root_hash bytea NOT NULL,
    ts        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    signature bytea NOT NULL,
    note      text NOT NULL
);
COMMENT ON TABLE kakunin.audit_checkpoints IS
    'Signed tree heads: Ed25519 signature over the C2SP tlog-checkpoint body; note is the full signed note.';

-- The Ed25519 key checkpoints are signed with. No role is granted anything.
CREATE TABLE kakunin.audit_signing_key (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seed       bytea NOT NULL CHECK (length(seed) = 32),
    public_key bytea NOT NULL,
    key_name   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE kakunin.audit_signing_key IS 'The checkpoint signing key (internal; the private half is readable by no role).';

-- Append-only, enforced for every role but the sequencer: a C trigger
-- (kakunin.audit_guard) lets an UPDATE through only from inside
-- kakunin.audit_integrate, and only to fill seq and leaf_hash once.
CREATE FUNCTION kakunin.audit_guard() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'kakunin_audit_guard';
COMMENT ON FUNCTION kakunin.audit_guard() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on the audit tables (only the sequencer fills in positions), and payloads over 1 MiB or nested deeper than 64 levels (internal).';
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON kakunin.audit_log
    FOR EACH ROW EXECUTE FUNCTION kakunin.audit_guard();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON kakunin.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION kakunin.audit_guard();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON kakunin.audit_tree
    FOR EACH ROW EXECUTE FUNCTION kakunin.audit_guard();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON kakunin.audit_tree
    FOR EACH STATEMENT EXECUTE FUNCTION kakunin.audit_guard();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON kakunin.audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION kakunin.audit_guard();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON kakunin.audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION kakunin.audit_guard();
-- The same trigger refuses, when it is written, a payload nested deeper than
-- verification accepts (64 levels of arrays and objects).
CREATE TRIGGER check_payload BEFORE INSERT ON kakunin.audit_log
    FOR EACH ROW EXECUTE FUNCTION kakunin.audit_guard();

-- The sequencer's lock: a row only the extension owner can lock (advisory
-- locks are open to every role).
CREATE TABLE kakunin.audit_sequencer (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton)
);
INSERT INTO kakunin.audit_sequencer VALUES (true);
COMMENT ON TABLE kakunin.audit_sequencer IS
    'One row, locked (FOR UPDATE) by whoever integrates audit entries; no role is granted anything on it (internal).';

-- Who may append: the bound agent as itself, in its own tenant, while its
-- certificate is active (the seed's policy), or kakunin_admin. Agents read
-- their own entries. Other roles may only write action and payload: actor and
-- tenant come from the binding, request_id from request.headers.
ALTER TABLE kakunin.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY append_as_self ON kakunin.audit_log FOR INSERT
    WITH CHECK ((actor_id OPERATOR(pg_catalog.=) @extschema@.kakunin_agent_id()
                 AND tenant_id IS NOT DISTINCT FROM @extschema@.kakunin_tenant_id()
                 AND @extschema@.kakunin_cert_status() OPERATOR(pg_catalog.=) 'active')
                OR pg_catalog.pg_has_role('kakunin_admin', 'MEMBER'));
CREATE POLICY read_own ON kakunin.audit_log FOR SELECT
    USING (actor_id OPERATOR(pg_catalog.=) @extschema@.kakunin_active_agent_id()
           OR pg_catalog.pg_has_role('kakunin_admin', 'MEMBER'));
GRANT SELECT ON kakunin.audit_log, kakunin.audit_checkpoints TO PUBLIC;
GRANT INSERT (action, payload) ON kakunin.audit_log TO PUBLIC;
GRANT INSERT (tenant_id, actor_id, request_id, action, payload) ON kakunin.audit_log TO kakunin_admin;
COMMENT ON COLUMN kakunin.audit_log.actor_id IS
    'Who appended: the bound agent id, else the session user; an administrative act made by the extension reads role:<name>. Only kakunin_admin may write it directly.';
COMMENT ON COLUMN kakunin.audit_log.tenant_id IS 'The bound identity''s tenant. Only kakunin_admin may write it directly.';
COMMENT ON COLUMN kakunin.audit_log.request_id IS
    'x-request-id from request.headers: supplied by the client (PostgREST forwards it; any session can set request.headers), so it correlates but proves nothing.';
GRANT USAGE ON SEQUENCE kakunin.audit_log_id_seq TO PUBLIC;

-- Audit log. Appends go through RLS (the seed's policy); integration,
-- checkpoints, verification and proofs reveal no entry content and are open to
-- all; an evidence export contains entries, so it is kakunin_admin's.
REVOKE EXECUTE ON FUNCTION kakunin.export_evidence(timestamptz, timestamptz) FROM PUBLIC;
-- Explicit integration holds the sequencer lock until the caller's transaction
-- ends: only kakunin_admin may do that (the worker integrates without exposing
-- the lock to other roles' SQL; appends never integrate).
REVOKE EXECUTE ON FUNCTION kakunin.audit_integrate() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.audit_checkpoint() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.audit_integrate() TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.audit_checkpoint() TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.export_evidence(timestamptz, timestamptz) TO kakunin_admin;
REVOKE EXECUTE ON FUNCTION kakunin.audit_guard() FROM PUBLIC;
GRANT SELECT ON kakunin.audit_tree TO PUBLIC;
COMMENT ON FUNCTION kakunin.audit(text, jsonb) IS
    'Appends an audit entry as the bound agent (in its tenant, while its status is active; kakunin_admin members may append as anyone) and returns its id; the sequencer assigns its seq in commit order.';
COMMENT ON FUNCTION kakunin.audit_integrate() IS
    'Integrates committed audit entries (and this transaction''s) into the Merkle tree (gapless seq, leaf hashes, nodes); returns how many. Waits at most 5 s for another sequencer (55P03). kakunin_admin only; otherwise the background worker integrates (appends never do).';
COMMENT ON FUNCTION kakunin.audit_lag() IS
    'Committed audit entries not yet placed in the tree: {unplaced, oldest_unplaced (RFC 3339), worker_running}. Open to all; reveals counts, not content.';
COMMENT ON FUNCTION kakunin.audit_checkpoint() IS
    'Integrates committed entries and records an Ed25519-signed checkpoint (tree size, root hash) in kakunin.audit_checkpoints. kakunin_admin only.';
COMMENT ON FUNCTION kakunin.audit_checkpoint_note() IS
    'The latest checkpoint as a C2SP tlog-checkpoint signed note; for kakunin_admin, entries are integrated and a new checkpoint signed first if entries arrived since.';
COMMENT ON FUNCTION kakunin.audit_public_key() IS
    'The checkpoint signing key''s public half, as a C2SP verifier key: <name>+<key hash>+<base64(0x01 || Ed25519 key)>.';
COMMENT ON FUNCTION kakunin.verify_audit_log() IS
    'Recomputes every leaf and the tree and checks every checkpoint: {ok, entries, checkpoints, first_bad_seq, reason}. Verifies what is integrated; for kakunin_admin it integrates first.';
COMMENT ON FUNCTION kakunin.audit_inclusion_proof(bigint, bigint) IS
    'RFC 6962 inclusion proof of entry seq in the tree of tree_size entries (default: the latest checkpoint), hashes in hex.';
COMMENT ON FUNCTION kakunin.audit_consistency_proof(bigint, bigint) IS
    'RFC 6962 consistency proof between two tree sizes, hashes in hex.';
COMMENT ON FUNCTION kakunin.export_evidence(timestamptz, timestamptz) IS
    'An evidence bundle for the entries in [from_ts, to_ts): entries, an inclusion proof each, the signed checkpoint note and the verifier key; check it offline with verify-evidence. kakunin_admin only.';

-- Dumped as data (see sql/bootstrap.sql); kakunin.audit_sequencer's one row
-- comes from CREATE EXTENSION and is not dumped.
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_tree', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_checkpoints', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_signing_key', '');
