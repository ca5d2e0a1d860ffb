-- Identity (src/identity/): the policy helpers, where proofs are remembered,
-- the bind procedure, and the grants and documentation of every identity
-- function (bind, validate, helpers).

-- The policy helpers (src/identity/policy_helpers.rs), in the schema CREATE
-- EXTENSION was given. Plain C functions: a policy calls them once per row.
CREATE FUNCTION kakunin_agent_id() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_agent_id';
CREATE FUNCTION kakunin_active_agent_id() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_active_agent_id';
CREATE FUNCTION kakunin_cert_status() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_cert_status';
CREATE FUNCTION kakunin_tenant_id() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_tenant_id';
CREATE FUNCTION kakunin_cert_serial() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_cert_serial';
CREATE FUNCTION kakunin_permitted_instruments() RETURNS text[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_permitted_instruments';
CREATE FUNCTION kakunin_permitted_venues() RETURNS text[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_permitted_venues';

-- Proof-of-possession token ids seen within their five-minute window.
CREATE TABLE kakunin.proof_replay (
    fingerprint text NOT NULL,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (fingerprint, jti)
);
CREATE INDEX ON kakunin.proof_replay (expires_at);
COMMENT ON TABLE kakunin.proof_replay IS
    'jti of each accepted proof of possession, per public key (fingerprint: hex SHA-256 of the certificate''s SubjectPublicKeyInfo), until its window closes; used when the library is not preloaded (internal).';
GRANT SELECT ON kakunin.proof_replay TO kakunin_admin;
SELECT pg_catalog.pg_extension_config_dump('kakunin.proof_replay', '');

-- A C procedure (src/identity/bind.rs): CALL runs no SQL body and builds no result.
CREATE PROCEDURE kakunin.bind_agent_session(certificate text, proof text DEFAULT NULL)
LANGUAGE c AS 'MODULE_PATHNAME', 'bind_agent_session_wrapper';

COMMENT ON PROCEDURE kakunin.bind_agent_session(text, text) IS
    'Validates an agent certificate (PEM chain or base64 DER) and binds its identity, status and financial scope until the end of the current transaction. proof: a compact JWS signed by the certificate key (required unless the caller is a kakunin_gateway member).';
COMMENT ON FUNCTION kakunin.bind_agent(text, text) IS
    'Same as CALL kakunin.bind_agent_session, as a function returning what was bound (agent_id, tenant_id, serial, status, scope, not_after, method).';
COMMENT ON FUNCTION kakunin.validate_certificate(text, timestamptz) IS
    'Validates a certificate at a given time without binding: {valid, reason, status, serial, agent_id, tenant_id, not_before, not_after, scope}.';
-- A gateway that checked the client certificate itself forwards its serial.
GRANT EXECUTE ON FUNCTION kakunin.bind_agent_serial(text) TO kakunin_gateway;
REVOKE EXECUTE ON FUNCTION kakunin.bind_agent_serial(text) FROM PUBLIC;
COMMENT ON FUNCTION kakunin.bind_agent_serial(text) IS
    'Gateway flow: binds the agent the CA''s verify endpoint names for a serial (X-Kakunin-Cert-Serial), with its status and scope. kakunin_gateway only; needs kakunin.verify_url; if the endpoint cannot answer, nothing is bound.';

COMMENT ON FUNCTION kakunin_agent_id() IS 'Policy helper: the bound agent id, or NULL.';
COMMENT ON FUNCTION kakunin_cert_status() IS
    'Policy helper: the status of the bound certificate or API key: active, suspended, retired, revoked, expired, or unknown (a stale CRL, or a verify endpoint that could not answer); re-read once per statement; NULL when nothing is bound.';
COMMENT ON FUNCTION kakunin_active_agent_id() IS
    'Policy helper: the bound agent id while its certificate is active, else NULL (fail-closed).';
COMMENT ON FUNCTION kakunin_permitted_instruments() IS
    'Policy helper: instruments in the bound financial scope; empty array when nothing is bound.';
COMMENT ON FUNCTION kakunin_permitted_venues() IS
    'Policy helper: venues in the bound financial scope; empty array when nothing is bound.';
COMMENT ON FUNCTION kakunin_scope() IS 'Policy helper: the whole bound financial scope (instruments, venues, limits), or NULL.';
COMMENT ON FUNCTION kakunin_tenant_id() IS 'Policy helper: the bound tenant id, or NULL.';
COMMENT ON FUNCTION kakunin_cert_serial() IS 'Policy helper: the bound certificate serial (lowercase hex), or NULL.';

COMMENT ON FUNCTION kakunin.authorize(text) IS 'Policy helper: true while the bound API key is active and has the capability.';
COMMENT ON FUNCTION kakunin_key_id() IS 'Policy helper: the bound API key id, or NULL.';
