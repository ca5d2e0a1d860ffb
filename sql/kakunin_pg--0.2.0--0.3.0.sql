-- kakunin_pg 0.2.0 -> 0.3.0 (ALTER EXTENSION kakunin_pg UPDATE): the security
-- fixes of issue 14. Audit entries and checkpoints written before keep
-- verifying (the canonical bytes are unchanged).
\echo Use "ALTER EXTENSION kakunin_pg UPDATE TO '0.3.0'" to load this file. \quit

-- Keys remember the credential they were derived from, and die with it.
ALTER TABLE kakunin.api_keys ADD COLUMN parent_key_id uuid, ADD COLUMN parent_serial text, ADD COLUMN parent_issuer text;
GRANT SELECT (parent_key_id, parent_serial, parent_issuer) ON kakunin.api_keys TO PUBLIC;
COMMENT ON COLUMN kakunin.api_keys.parent_key_id IS
    'The API key this key was derived from (by a caller bound with it): the key dies with it and never exceeds it.';
COMMENT ON COLUMN kakunin.api_keys.parent_serial IS
    'Serial (lowercase hex) of the certificate this key was derived from (by a caller bound with it): the key dies with it.';
COMMENT ON COLUMN kakunin.api_keys.parent_issuer IS
    'Hex of the issuer Name (DER) of that certificate: a certificate is its issuer and serial (RFC 5280 §4.1.2.2).';

-- Statuses: one row per certificate (issuer and serial) and source, combined
-- by severity; a CA revocation is final, an older statement never wins.
ALTER TABLE kakunin.certificate_status
    ADD COLUMN issuer text NOT NULL DEFAULT '' CHECK (issuer ~ '^([0-9a-f]{2})*$'),
    ADD COLUMN source text NOT NULL DEFAULT 'admin' CHECK (source IN ('admin', 'webhook', 'crl')),
    ADD COLUMN stated_at timestamptz NOT NULL DEFAULT pg_catalog.now();
UPDATE kakunin.certificate_status
    SET source = CASE changed_by WHEN 'webhook' THEN 'webhook' WHEN 'crl' THEN 'crl' ELSE 'admin' END,
        stated_at = changed_at;
ALTER TABLE kakunin.certificate_status
    DROP CONSTRAINT certificate_status_pkey,
    ADD CONSTRAINT certificate_status_pkey PRIMARY KEY (serial, issuer, source),
    DROP CONSTRAINT certificate_status_status_check,
    ADD CONSTRAINT certificate_status_status_check CHECK (status IN ('active', 'suspended', 'retired', 'revoked'));
REVOKE SELECT ON kakunin.certificate_status FROM PUBLIC;
GRANT SELECT (serial, issuer, source, status) ON kakunin.certificate_status TO PUBLIC;
COMMENT ON TABLE kakunin.certificate_status IS
    'Local revocation registry, one row per certificate and source (admin, webhook, crl): a certificate''s status is the most severe of its rows and its agent''s. A CA revocation is final; an older statement never replaces a newer one. Write it with kakunin.set_certificate_status, kakunin.handle_webhook, kakunin.load_crl.';
COMMENT ON COLUMN kakunin.certificate_status.issuer IS
    'Hex of the issuer Name (DER) the statement is about; empty: the serial under every trusted issuer (an admin or webhook statement, which names no issuer).';
COMMENT ON COLUMN kakunin.certificate_status.stated_at IS
    'When the source made the statement (a webhook event''s own time, a CRL''s thisUpdate, the administrator''s clock); an older statement never replaces a newer one.';
ALTER TABLE kakunin.agent_status
    ADD COLUMN source text NOT NULL DEFAULT 'admin' CHECK (source IN ('admin', 'webhook')),
    ADD COLUMN stated_at timestamptz NOT NULL DEFAULT pg_catalog.now();
UPDATE kakunin.agent_status
    SET source = CASE changed_by WHEN 'webhook' THEN 'webhook' ELSE 'admin' END, stated_at = changed_at;
ALTER TABLE kakunin.agent_status
    DROP CONSTRAINT agent_status_pkey,
    ADD CONSTRAINT agent_status_pkey PRIMARY KEY (agent_id, source),
    DROP CONSTRAINT agent_status_status_check,
    ADD CONSTRAINT agent_status_status_check CHECK (status IN ('active', 'suspended', 'retired', 'revoked'));
GRANT SELECT (source) ON kakunin.agent_status TO PUBLIC;
COMMENT ON TABLE kakunin.agent_status IS
    'Agent-level status, one row per agent and source (admin, webhook): applies to every certificate and key of the agent, combined as in kakunin.certificate_status.';

-- Last use lives apart from the key row, so that revoking a key never waits
-- for a transaction that used it.
CREATE TABLE kakunin.api_key_usage (
    key_id       uuid PRIMARY KEY,
    last_used_at timestamptz
);
COMMENT ON TABLE kakunin.api_key_usage IS
    'When each API key was last used (written at most once a minute per key, never in a read-only transaction). Rows are visible with the key they belong to.';
ALTER TABLE kakunin.api_key_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY with_its_key ON kakunin.api_key_usage FOR SELECT
    USING (EXISTS (SELECT FROM kakunin.api_keys k WHERE k.key_id OPERATOR(pg_catalog.=) api_key_usage.key_id));
GRANT SELECT ON kakunin.api_key_usage TO PUBLIC;
INSERT INTO kakunin.api_key_usage SELECT key_id, last_used_at FROM kakunin.api_keys;
CREATE OR REPLACE FUNCTION kakunin.list_api_keys(owner_id text)
RETURNS TABLE (key_id uuid, name text, owner_id text, tenant_id text, capabilities text[], claims jsonb,
               created_at timestamptz, expires_at timestamptz, revoked_at timestamptz,
               rotated_to uuid, last_used_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.key_id, k.name, k.owner_id, k.tenant_id, k.capabilities, k.claims,
           k.created_at, k.expires_at, k.revoked_at, k.rotated_to, u.last_used_at
    FROM kakunin.api_keys k LEFT JOIN kakunin.api_key_usage u ON u.key_id = k.key_id
    WHERE k.owner_id = list_api_keys.owner_id
    ORDER BY k.created_at, k.key_id
$$;
ALTER TABLE kakunin.api_keys DROP COLUMN last_used_at;

-- Failed verifications are aggregated and pruned.
ALTER TABLE kakunin.api_key_events ADD COLUMN occurrences bigint NOT NULL DEFAULT 1;
CREATE INDEX api_key_events_failures_idx ON kakunin.api_key_events (at) WHERE event = 'verify_failed';
COMMENT ON COLUMN kakunin.api_key_events.occurrences IS
    'verify_failed: the failures this row stands for (one backend records a stored key and reason at most once a minute; unknown key ids share one bucket with key_id NULL). 1 for other events.';
COMMENT ON TABLE kakunin.api_key_events IS
    'API key events: created, rotated, revoked, claims_updated, and failed verifications (verify_failed, aggregated per minute, kept 30 days), with who (role and bound agent), when and why.';


-- Payloads nested deeper than verification accepts are refused when written.
CREATE TRIGGER check_payload BEFORE INSERT ON kakunin.audit_log
    FOR EACH ROW EXECUTE FUNCTION kakunin.audit_guard();

-- The sequencer's lock: a row only the extension owner can lock.
CREATE TABLE kakunin.audit_sequencer (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton)
);
INSERT INTO kakunin.audit_sequencer VALUES (true);
COMMENT ON TABLE kakunin.audit_sequencer IS
    'One row, locked (FOR UPDATE) by whoever integrates audit entries; no role is granted anything on it (internal).';

-- Actor and tenant come from the binding; only kakunin_admin writes them.
REVOKE INSERT (tenant_id, actor_id, request_id) ON kakunin.audit_log FROM PUBLIC;
GRANT INSERT (tenant_id, actor_id, request_id, action, payload) ON kakunin.audit_log TO kakunin_admin;
DROP POLICY append_as_self ON kakunin.audit_log;
CREATE POLICY append_as_self ON kakunin.audit_log FOR INSERT
    WITH CHECK ((actor_id OPERATOR(pg_catalog.=) @extschema@.kakunin_agent_id()
                 AND tenant_id IS NOT DISTINCT FROM @extschema@.kakunin_tenant_id()
                 AND @extschema@.kakunin_cert_status() OPERATOR(pg_catalog.=) 'active')
                OR pg_catalog.pg_has_role('kakunin_admin', 'MEMBER'));
COMMENT ON COLUMN kakunin.audit_log.actor_id IS
    'Who appended: the bound agent id, else the session user; an administrative act made by the extension reads role:<name>. Only kakunin_admin may write it directly.';
COMMENT ON COLUMN kakunin.audit_log.tenant_id IS 'The bound identity''s tenant. Only kakunin_admin may write it directly.';
COMMENT ON COLUMN kakunin.audit_log.request_id IS
    'x-request-id from request.headers: supplied by the client (PostgREST forwards it; any session can set request.headers), so it correlates but proves nothing.';

-- A revoked or suspended credential reads nothing through the extension's own policies.
DROP POLICY owner_or_admin ON kakunin.api_keys;
CREATE POLICY owner_or_admin ON kakunin.api_keys FOR SELECT
    USING (owner_id OPERATOR(pg_catalog.=) @extschema@.kakunin_active_agent_id()
           OR pg_catalog.pg_has_role('kakunin_admin', 'MEMBER'));
DROP POLICY read_own ON kakunin.audit_log;
CREATE POLICY read_own ON kakunin.audit_log FOR SELECT
    USING (actor_id OPERATOR(pg_catalog.=) @extschema@.kakunin_active_agent_id()
           OR pg_catalog.pg_has_role('kakunin_admin', 'MEMBER'));

-- Explicit integration and checkpoints: kakunin_admin only.
REVOKE EXECUTE ON FUNCTION kakunin.audit_integrate() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.audit_checkpoint() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.audit_integrate() TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.audit_checkpoint() TO kakunin_admin;

COMMENT ON FUNCTION kakunin.audit_integrate() IS
    'Integrates committed audit entries (and this transaction''s) into the Merkle tree (gapless seq, leaf hashes, nodes); returns how many. Waits at most 5 s for another sequencer (55P03). kakunin_admin only; appends and the background worker integrate on their own.';
COMMENT ON FUNCTION kakunin.audit_checkpoint() IS
    'Integrates committed entries and records an Ed25519-signed checkpoint (tree size, root hash) in kakunin.audit_checkpoints. kakunin_admin only.';
COMMENT ON FUNCTION kakunin.audit_checkpoint_note() IS
    'The latest checkpoint as a C2SP tlog-checkpoint signed note; for kakunin_admin, entries are integrated and a new checkpoint signed first if entries arrived since.';
COMMENT ON FUNCTION kakunin.verify_audit_log() IS
    'Recomputes every leaf and the tree and checks every checkpoint: {ok, entries, checkpoints, first_bad_seq, reason}. Verifies what is integrated; for kakunin_admin it integrates first.';
COMMENT ON FUNCTION kakunin.create_api_key(text, text, text[], timestamptz, jsonb, text) IS
    'Creates an API key and returns its id and plaintext, once. Only SHA-256 of the secret is kept. The bound owner (42501 otherwise) derives it from its credential: capabilities within its key''s, claims within its scope (instruments and venues subsets, limits no higher, other claims equal), its tenant (none stays none), expiry no later; the key dies with that credential. kakunin_admin may create any key (recorded in the audit log).';
COMMENT ON FUNCTION kakunin.verify_api_key(text) IS
    'Checks an API key: {valid, key_id, owner_id, tenant_id, capabilities, claims, expires_at} or {valid: false, reason: malformed|unknown|revoked|expired|suspended|retired}; the status is the most severe of the key''s, the keys and certificate it was derived from, and its agent''s. One index probe and a constant-time hash comparison.';
COMMENT ON FUNCTION kakunin.revoke_api_key(uuid, text) IS 'Revokes a key the caller manages (its owner; a caller bound with a key, that key only; kakunin_admin); false if it was already revoked. Keys derived from it stop working too.';
COMMENT ON FUNCTION kakunin.pre_request() IS
    'PostgREST db-pre-request hook: binds from request.headers (x-kakunin-certificate + x-kakunin-proof, else x-api-key); a bad header raises, no header binds nothing. A certificate binds without proof only if the session user (PostgREST''s authenticator) is a kakunin_gateway member and nothing is bound yet in the transaction; replacing a binding needs the current role to be a gateway.';

-- How far the sequencer is behind (issue 15).
CREATE FUNCTION kakunin."audit_lag"() RETURNS jsonb
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'audit_lag_wrapper';
COMMENT ON FUNCTION kakunin.audit_lag() IS
    'Committed audit entries not yet placed in the tree: {unplaced, oldest_unplaced (RFC 3339), worker_running}. Open to all; reveals counts, not content.';

-- Comments that changed with the rules above.
COMMENT ON FUNCTION kakunin.set_certificate_status(text, text, text) IS
    'Records the administrator''s statement about a serial (any issuer): suspended, retired or revoked (with a reason), or active to clear the administrator''s own statement; a CA''s statements stand (the most severe wins). Effective for the next statement of every session; an audit entry records it. kakunin_admin only.';
COMMENT ON FUNCTION kakunin.set_agent_status(text, text, text) IS
    'Records the administrator''s statement about an agent (suspended, retired, revoked, or active to clear it) for all its certificates and keys; an audit entry records it. kakunin_admin only.';
COMMENT ON FUNCTION kakunin.handle_webhook(text, text) IS
    'Verifies and applies a CA webhook: body as received ({"event", "created_at"?, "data": {"serial_number", "agent_id"?}}; "type" and "id" also read), header t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">. Answers applied, superseded (a revocation or newer statement stands) or ignored. Refusals raise 28000 with an RFC 7807 problem document as DETAIL.';
COMMENT ON FUNCTION kakunin.load_crl(text) IS
    'Loads an X.509 CRL (PEM or base64 DER) signed by a trust anchor, unless it is older than the one loaded for its issuer; its serials, under that issuer only, become revoked (certificateHold: suspended, lifted when a newer CRL drops them). A certificate whose issuer''s CRL is past nextUpdate binds as unknown. kakunin_admin only.';

-- A logical backup (pg_dump, `supabase db dump`) carries everything the
-- extension stores: CREATE EXTENSION recreates the objects, these rows and
-- sequence positions are dumped as data. That includes secrets — the webhook
-- HMAC secret, API key hashes, the audit signing key — because a restore
-- without them would break webhooks, every key and the log's verifiability;
-- a dump is as sensitive as the database itself. kakunin.audit_sequencer's one
-- row comes from CREATE EXTENSION and is not dumped.
SELECT pg_catalog.pg_extension_config_dump('kakunin.trust_anchors', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.certificate_status', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.proof_replay', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.agent_status', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.webhook_secret', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.webhook_events', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.crls', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.api_key_usage', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.api_key_events', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.api_key_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_tree', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_checkpoints', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.audit_signing_key', '');
