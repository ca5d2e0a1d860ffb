-- The tamper-evident audit log (src/audit/). Appends land in audit_log with
-- no position; the sequencer (kakunin.audit_integrate) gives committed entries
-- their gapless seq, leaf hash and tree nodes; checkpoints sign tree heads.

-- x-request-id of the PostgREST request, if any; never fails (src/postgrest.rs).
CREATE FUNCTION kakunin.current_request_id() RETURNS text
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_current_request_id';
COMMENT ON FUNCTION kakunin.current_request_id() IS
    'The x-request-id header of the current PostgREST request, or NULL (audit_log.request_id default).';

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

-- Appends an entry as the caller (src/audit/sequencer.rs; comment in finalize.sql).
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
COMMENT ON FUNCTION kakunin.audit_guard() IS 'Trigger: refuses UPDATE, DELETE and TRUNCATE on the audit tables (internal).';
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
