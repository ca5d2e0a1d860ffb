-- API keys (src/api_keys/). Only SHA-256 of each secret is stored, in a
-- column no role is granted; all writes go through the kakunin functions
-- (src/api_keys/store.rs is their one writer).

CREATE TABLE kakunin.api_keys (
    key_id         uuid PRIMARY KEY,
    owner_id       text NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 256),
    tenant_id      text,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    secret_hash    bytea NOT NULL CHECK (length(secret_hash) = 32),
    capabilities   text[] NOT NULL DEFAULT '{}',
    claims         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(claims) = 'object'),
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by     text NOT NULL,
    expires_at     timestamptz,
    revoked_at     timestamptz,
    revoked_reason text,
    rotated_to     uuid,
    parent_key_id  uuid,
    parent_serial  text,
    parent_issuer  text
);
CREATE INDEX api_keys_owner_idx ON kakunin.api_keys (owner_id);
COMMENT ON TABLE kakunin.api_keys IS
    'API keys: owner, tenant, capabilities, claims, expiry and revocation. secret_hash (SHA-256 of the secret) is readable by no role. Rows are visible to their owner (the bound agent) and to kakunin_admin.';

-- Owners see their own keys while their binding is active (a revoked or
-- suspended credential reads nothing); admins all.
ALTER TABLE kakunin.api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_or_admin ON kakunin.api_keys FOR SELECT
    USING (owner_id OPERATOR(pg_catalog.=) @extschema@.kakunin_active_agent_id()
           OR pg_catalog.pg_has_role('kakunin_admin', 'MEMBER'));
GRANT SELECT (key_id, owner_id, tenant_id, name, capabilities, claims, created_at, created_by,
              expires_at, revoked_at, revoked_reason, rotated_to,
              parent_key_id, parent_serial, parent_issuer)
    ON kakunin.api_keys TO PUBLIC;
COMMENT ON COLUMN kakunin.api_keys.parent_key_id IS
    'The API key this key was derived from (by a caller bound with it): the key dies with it and never exceeds it.';
COMMENT ON COLUMN kakunin.api_keys.parent_serial IS
    'Serial (lowercase hex) of the certificate this key was derived from (by a caller bound with it): the key dies with it.';
COMMENT ON COLUMN kakunin.api_keys.parent_issuer IS
    'Hex of the issuer Name (DER) of that certificate: a certificate is its issuer and serial (RFC 5280 §4.1.2.2).';

CREATE TRIGGER invalidate_caches
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kakunin.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION kakunin.invalidate_caches();

-- When each key was last used, apart from the key row: a bind writes here (at
-- most once a minute, SKIP LOCKED), so no bind ever holds a lock that
-- revoking the key must wait for (issue 15).
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

-- Who created, rotated, revoked or changed a key, and failed verifications of
-- stored keys.
CREATE TABLE kakunin.api_key_events (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    key_id   uuid,
    event    text NOT NULL CHECK (event IN ('created', 'rotated', 'revoked', 'claims_updated', 'verify_failed')),
    actor    text NOT NULL,
    agent_id text,
    reason   text,
    occurrences bigint NOT NULL DEFAULT 1
);
-- Failed verifications are recorded at most once a minute per backend, stored
-- key and reason, and pruned after 30 days (src/api_keys/store.rs).
CREATE INDEX api_key_events_failures_idx ON kakunin.api_key_events (at) WHERE event = 'verify_failed';
COMMENT ON COLUMN kakunin.api_key_events.occurrences IS
    'verify_failed: the failures this row stands for (one backend records a stored key and reason at most once a minute; failures that name no stored key are not recorded). 1 for other events.';
COMMENT ON TABLE kakunin.api_key_events IS
    'API key events: created, rotated, revoked, claims_updated, and failed verifications (verify_failed, aggregated per minute, kept 30 days), with who (role and bound agent), when and why.';
GRANT SELECT ON kakunin.api_key_events TO kakunin_admin;

CREATE FUNCTION kakunin.list_api_keys(owner_id text)
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
COMMENT ON FUNCTION kakunin.list_api_keys(text) IS
    'The keys of an owner that the caller may see (its own, or all for kakunin_admin); never a hash.';

COMMENT ON FUNCTION kakunin.create_api_key(text, text, text[], timestamptz, jsonb, text) IS
    'Creates an API key and returns its id and plaintext, once. Only SHA-256 of the secret is kept. The bound owner (42501 otherwise) derives it from its credential: capabilities within its key''s, claims within its scope (instruments and venues subsets, limits no higher, other claims equal), its tenant (none stays none), expiry no later; the key dies with that credential. kakunin_admin may create any key (recorded in the audit log).';
COMMENT ON FUNCTION kakunin.verify_api_key(text) IS
    'Checks an API key: {valid, key_id, owner_id, tenant_id, capabilities, claims, expires_at} or {valid: false, reason: malformed|unknown|revoked|expired|suspended|retired}; the status is the most severe of the key''s, the keys and certificate it was derived from, and its agent''s. One index probe and a constant-time hash comparison.';
COMMENT ON FUNCTION kakunin.bind_api_key(text) IS
    'Binds an API key''s identity (owner as agent id, tenant, capabilities, claims as scope) until the end of the transaction; an invalid key raises 28000.';
COMMENT ON FUNCTION kakunin.revoke_api_key(uuid, text) IS 'Revokes a key the caller manages (its owner; a caller bound with a key, that key only; kakunin_admin); false if it was already revoked. Keys derived from it stop working too.';
COMMENT ON FUNCTION kakunin.rotate_api_key(uuid, interval) IS
    'Creates a replacement key with the same owner, tenant, capabilities, claims, expiry and lineage; the old key works for the grace period only. Refused to a caller bound with an API key (a key cannot renew itself).';
COMMENT ON FUNCTION kakunin.update_api_key_claims(uuid, jsonb) IS
    'Replaces a key''s claims (the owner bound by certificate, or kakunin_admin).';

SELECT pg_catalog.pg_extension_config_dump('kakunin.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.api_key_usage', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.api_key_events', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.api_key_events_id_seq', '');
