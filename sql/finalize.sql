-- kakunin_pg: the bind procedure, grants and documentation. Runs after the
-- generated functions.

-- A C procedure (src/bind.rs): CALL runs no SQL body and builds no result.
CREATE PROCEDURE kakunin.bind_agent_session(certificate text, proof text DEFAULT NULL)
LANGUAGE c AS 'MODULE_PATHNAME', 'bind_agent_session_wrapper';

-- Everyone may try to bind: the certificate and the proof decide.
GRANT USAGE ON SCHEMA kakunin TO PUBLIC;

-- Binding reads these as the caller. Certificates and their status are public
-- information (as OCSP answers are); reasons and audit columns are not.
GRANT SELECT ON kakunin.trust_anchors TO PUBLIC;
GRANT SELECT (serial, issuer, source, status) ON kakunin.certificate_status TO PUBLIC;

-- Administration: EXECUTE for kakunin_admin only (each function re-checks),
-- the writes themselves happen as the extension owner.
REVOKE EXECUTE ON FUNCTION kakunin.add_trust_anchor(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.remove_trust_anchor(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.set_certificate_status(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.invalidate_caches() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.add_trust_anchor(text, text) TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.remove_trust_anchor(text) TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.set_certificate_status(text, text, text) TO kakunin_admin;
GRANT SELECT ON kakunin.trust_anchors, kakunin.certificate_status, kakunin.proof_replay,
    kakunin.api_key_events TO kakunin_admin;

COMMENT ON PROCEDURE kakunin.bind_agent_session(text, text) IS
    'Validates an agent certificate (PEM chain or base64 DER) and binds its identity, status and financial scope until the end of the current transaction. proof: a compact JWS signed by the certificate key (required unless the caller is a kakunin_gateway member).';
COMMENT ON FUNCTION kakunin.bind_agent(text, text) IS
    'Same as CALL kakunin.bind_agent_session, as a function returning what was bound (agent_id, tenant_id, serial, status, scope, not_after, method).';
COMMENT ON FUNCTION kakunin.validate_certificate(text, timestamptz) IS
    'Validates a certificate at a given time without binding: {valid, reason, status, serial, agent_id, tenant_id, not_before, not_after, scope}.';
COMMENT ON FUNCTION kakunin.add_trust_anchor(text, text) IS
    'Trusts a CA certificate (PEM or base64 DER) under a unique name. kakunin_admin only.';
COMMENT ON FUNCTION kakunin.remove_trust_anchor(text) IS
    'Stops trusting the named anchor; true if it existed. kakunin_admin only.';
COMMENT ON FUNCTION kakunin.set_certificate_status(text, text, text) IS
    'Records the administrator''s statement about a serial (any issuer): suspended, retired or revoked (with a reason), or active to clear the administrator''s own statement; a CA''s statements stand (the most severe wins). Effective for the next statement of every session; an audit entry records it. kakunin_admin only.';
COMMENT ON FUNCTION kakunin_agent_id() IS 'Policy helper: the bound agent id, or NULL.';
COMMENT ON FUNCTION kakunin_cert_status() IS
    'Policy helper: the bound certificate''s status (active, suspended, retired, revoked, expired), re-read once per statement; NULL when nothing is bound.';
COMMENT ON FUNCTION kakunin_active_agent_id() IS
    'Policy helper: the bound agent id while its certificate is active, else NULL (fail-closed).';
COMMENT ON FUNCTION kakunin_permitted_instruments() IS
    'Policy helper: instruments in the bound financial scope; empty array when nothing is bound.';
COMMENT ON FUNCTION kakunin_permitted_venues() IS
    'Policy helper: venues in the bound financial scope; empty array when nothing is bound.';
COMMENT ON FUNCTION kakunin_scope() IS 'Policy helper: the whole bound financial scope (instruments, venues, limits), or NULL.';
COMMENT ON FUNCTION kakunin_tenant_id() IS 'Policy helper: the bound tenant id, or NULL.';
COMMENT ON FUNCTION kakunin_cert_serial() IS 'Policy helper: the bound certificate serial (lowercase hex), or NULL.';

COMMENT ON FUNCTION kakunin.create_api_key(text, text, text[], timestamptz, jsonb, text) IS
    'Creates an API key and returns its id and plaintext, once. Only SHA-256 of the secret is kept. The bound owner (42501 otherwise) derives it from its credential: capabilities within its key''s, claims within its scope (instruments and venues subsets, limits no higher, other claims equal), its tenant (none stays none), expiry no later; the key dies with that credential. kakunin_admin may create any key (recorded in the audit log).';
COMMENT ON FUNCTION kakunin.verify_api_key(text) IS
    'Checks an API key: {valid, key_id, owner_id, tenant_id, capabilities, claims, expires_at} or {valid: false, reason: malformed|unknown|revoked|expired|suspended|retired}; the status is the most severe of the key''s, the keys and certificate it was derived from, and its agent''s. One index probe and a constant-time hash comparison.';
COMMENT ON FUNCTION kakunin.bind_api_key(text) IS
    'Binds an API key''s identity (owner as agent id, tenant, capabilities, claims as scope) until the end of the transaction; an invalid key raises 28000.';
COMMENT ON FUNCTION kakunin.revoke_api_key(uuid, text) IS 'Revokes a key the caller manages (its owner; a caller bound with a key, that key only; kakunin_admin); false if it was already revoked. Keys derived from it stop working too.';
COMMENT ON FUNCTION kakunin.rotate_api_key(uuid, interval) IS
    'Creates a replacement key with the same owner, capabilities, claims and expiry; the old key works for the grace period only.';
COMMENT ON FUNCTION kakunin.update_api_key_claims(uuid, jsonb) IS
    'Replaces a key''s claims (the owner bound by certificate, or kakunin_admin).';
COMMENT ON FUNCTION kakunin.authorize(text) IS 'Policy helper: true while the bound API key is active and has the capability.';
COMMENT ON FUNCTION kakunin_key_id() IS 'Policy helper: the bound API key id, or NULL.';

-- Supabase / PostgREST: service_role is Supabase's administrative API role, so
-- it manages anchors, status and keys; anon and authenticated need nothing
-- beyond PUBLIC (they may try to bind; policies decide the rest).
DO $supabase$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT kakunin_admin TO service_role;
    END IF;
END
$supabase$;
COMMENT ON FUNCTION kakunin.pre_request() IS
    'PostgREST db-pre-request hook: binds from request.headers (x-kakunin-certificate + x-kakunin-proof, else x-api-key); a bad header raises, no header binds nothing. A certificate binds without proof only if the session user (PostgREST''s authenticator) is a kakunin_gateway member and nothing is bound yet in the transaction; replacing a binding needs the current role to be a gateway.';

-- Revocation channels.
REVOKE EXECUTE ON FUNCTION kakunin.set_webhook_secret(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.set_agent_status(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.set_webhook_secret(text) TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.set_agent_status(text, text, text) TO kakunin_admin;
-- handle_webhook stays executable by PUBLIC: the HMAC, not the role,
-- authenticates a delivery (the application's webhook route calls it).
GRANT SELECT ON kakunin.agent_status, kakunin.webhook_events TO kakunin_admin;
COMMENT ON FUNCTION kakunin.set_webhook_secret(text) IS
    'Stores the webhook HMAC secret (at least 16 bytes). It can never be read back. kakunin_admin only.';
COMMENT ON FUNCTION kakunin.handle_webhook(text, text) IS
    'Verifies and applies a CA webhook: body as received ({"event", "created_at"?, "data": {"serial_number", "agent_id"?}}; "type" and "id" also read), header t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">. Answers applied, superseded (a revocation or newer statement stands) or ignored. Refusals raise 28000 with an RFC 7807 problem document as DETAIL.';
COMMENT ON FUNCTION kakunin.set_agent_status(text, text, text) IS
    'Records the administrator''s statement about an agent (suspended, retired, revoked, or active to clear it) for all its certificates and keys; an audit entry records it. kakunin_admin only.';
REVOKE EXECUTE ON FUNCTION kakunin.load_crl(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.load_crl(text) TO kakunin_admin;
GRANT SELECT ON kakunin.crls TO kakunin_admin;
COMMENT ON FUNCTION kakunin.load_crl(text) IS
    'Loads an X.509 CRL (PEM or base64 DER) signed by a trust anchor, unless it is older than the one loaded for its issuer; its serials, under that issuer only, become revoked (certificateHold: suspended, lifted when a newer CRL drops them). A certificate whose issuer''s CRL is past nextUpdate binds as unknown. kakunin_admin only.';
GRANT EXECUTE ON FUNCTION kakunin.bind_agent_serial(text) TO kakunin_gateway;
REVOKE EXECUTE ON FUNCTION kakunin.bind_agent_serial(text) FROM PUBLIC;
COMMENT ON FUNCTION kakunin.bind_agent_serial(text) IS
    'Gateway flow: binds the agent the CA''s verify endpoint names for a serial (X-Kakunin-Cert-Serial), with its status and scope. kakunin_gateway only; needs kakunin.verify_url; if the endpoint cannot answer, nothing is bound.';
COMMENT ON FUNCTION kakunin.verify_endpoint_stats() IS
    'Requests this backend has made to the verify endpoint (cache hits make none), and the endpoint URL.';

-- Audit log. Appends go through RLS (the seed's policy); integration,
-- checkpoints, verification and proofs reveal no entry content and are open to
-- all; an evidence export contains entries, so it is kakunin_admin's.
REVOKE EXECUTE ON FUNCTION kakunin.export_evidence(timestamptz, timestamptz) FROM PUBLIC;
-- Explicit integration holds the sequencer lock until the caller's transaction
-- ends: only kakunin_admin may do that (appends and the worker integrate
-- without exposing the lock to other roles' SQL).
REVOKE EXECUTE ON FUNCTION kakunin.audit_integrate() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.audit_checkpoint() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.audit_integrate() TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.audit_checkpoint() TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.export_evidence(timestamptz, timestamptz) TO kakunin_admin;
REVOKE EXECUTE ON FUNCTION kakunin.audit_guard() FROM PUBLIC;
GRANT SELECT ON kakunin.audit_tree TO PUBLIC;
COMMENT ON FUNCTION kakunin.audit(text, jsonb) IS
    'Appends an audit entry (actor: the bound agent, or the session user) and returns its id; the sequencer assigns its seq in commit order.';
COMMENT ON FUNCTION kakunin.audit_integrate() IS
    'Integrates committed audit entries (and this transaction''s) into the Merkle tree (gapless seq, leaf hashes, nodes); returns how many. Waits at most 5 s for another sequencer (55P03). kakunin_admin only; appends and the background worker integrate on their own.';
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
