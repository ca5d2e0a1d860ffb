-- Revocation (src/revocation/): trust anchors, the status registry
-- (certificate and agent rows), the webhook secret and seen event ids, loaded
-- CRLs; and the grants and documentation of every revocation function.

CREATE TABLE kakunin.trust_anchors (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    fingerprint text NOT NULL UNIQUE,
    subject     text NOT NULL,
    certificate bytea NOT NULL,
    not_after   timestamptz NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    added_by    text NOT NULL DEFAULT CURRENT_USER,
    test_anchor boolean NOT NULL DEFAULT false
);
COMMENT ON COLUMN kakunin.trust_anchors.test_anchor IS
    'A test CA''s certificate (kakunin.enable_test_ca): trusted only while kakunin.allow_test_ca is on; kakunin.advisor() reports one (kakunin_test_trust_anchor).';
COMMENT ON TABLE kakunin.trust_anchors IS
    'CA certificates an agent certificate must chain to. Change it with kakunin.add_trust_anchor / kakunin.remove_trust_anchor.';

CREATE TRIGGER invalidate_caches
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kakunin.trust_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION kakunin.invalidate_caches();

-- One row per certificate and source; a certificate's status is the most
-- severe of its rows (src/revocation/registry.rs states the rules).
CREATE TABLE kakunin.certificate_status (
    serial     text NOT NULL CHECK (serial ~ '^[0-9a-f]+$'),
    status     text NOT NULL CHECK (status IN ('active', 'suspended', 'retired', 'revoked')),
    reason     text,
    changed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    changed_by text NOT NULL DEFAULT CURRENT_USER,
    issuer     text NOT NULL DEFAULT '' CHECK (issuer ~ '^([0-9a-f]{2})*$'),
    source     text NOT NULL DEFAULT 'admin' CHECK (source IN ('admin', 'webhook', 'crl')),
    stated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT certificate_status_pkey PRIMARY KEY (serial, issuer, source)
);
COMMENT ON TABLE kakunin.certificate_status IS
    'Local revocation registry, one row per certificate and source (admin, webhook, crl): a certificate''s status is the most severe of its rows and its agent''s. A CA revocation is final; an older statement never replaces a newer one. Write it with kakunin.set_certificate_status, kakunin.handle_webhook, kakunin.load_crl.';
COMMENT ON COLUMN kakunin.certificate_status.issuer IS
    'Hex of the issuer Name (DER) the statement is about; empty: the serial under every trusted issuer (an admin or webhook statement, which names no issuer).';
COMMENT ON COLUMN kakunin.certificate_status.stated_at IS
    'When the source made the statement (a webhook event''s own time, a CRL''s thisUpdate, the administrator''s clock); an older statement never replaces a newer one.';
CREATE TRIGGER invalidate_caches
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kakunin.certificate_status
    FOR EACH STATEMENT EXECUTE FUNCTION kakunin.invalidate_caches();

-- Agent-level status (webhook agent.retired without a serial, or an admin):
-- applies to every certificate and key of the agent.
CREATE TABLE kakunin.agent_status (
    agent_id   text NOT NULL,
    status     text NOT NULL CHECK (status IN ('active', 'suspended', 'retired', 'revoked')),
    reason     text,
    changed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    changed_by text NOT NULL,
    source     text NOT NULL DEFAULT 'admin' CHECK (source IN ('admin', 'webhook')),
    stated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT agent_status_pkey PRIMARY KEY (agent_id, source)
);
COMMENT ON TABLE kakunin.agent_status IS
    'Agent-level status, one row per agent and source (admin, webhook): applies to every certificate and key of the agent, combined as in kakunin.certificate_status.';
GRANT SELECT (agent_id, source, status) ON kakunin.agent_status TO PUBLIC;
CREATE TRIGGER invalidate_caches
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kakunin.agent_status
    FOR EACH STATEMENT EXECUTE FUNCTION kakunin.invalidate_caches();

-- The webhook signing secret. No role is granted anything on it: it is written
-- by kakunin.set_webhook_secret and read only inside kakunin.handle_webhook.
CREATE TABLE kakunin.webhook_secret (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    secret    bytea NOT NULL,
    set_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by    text NOT NULL
);
COMMENT ON TABLE kakunin.webhook_secret IS 'The webhook HMAC secret (internal; readable by no role).';

-- Event ids applied within the replay window (and a while after).
CREATE TABLE kakunin.webhook_events (
    event_id    text PRIMARY KEY,
    event_type  text NOT NULL,
    serial      text,
    agent_id    text,
    signed_at   timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    outcome     text NOT NULL
);
CREATE INDEX webhook_events_received_idx ON kakunin.webhook_events (received_at);
COMMENT ON TABLE kakunin.webhook_events IS
    'Webhook events received in the last ten minutes: an id seen here is a replay and is not applied again.';

-- The newest CRL loaded per issuer (kakunin.load_crl). A certificate whose
-- issuer's CRL is past nextUpdate binds as 'unknown'.
CREATE TABLE kakunin.crls (
    issuer_der  bytea PRIMARY KEY,
    issuer      text NOT NULL,
    crl_number  text,
    this_update timestamptz NOT NULL,
    next_update timestamptz,
    entries     integer NOT NULL,
    crl         bytea NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    loaded_by   text NOT NULL
);
COMMENT ON TABLE kakunin.crls IS
    'The newest verified CRL per issuer; its revoked serials are in kakunin.certificate_status.';
GRANT SELECT (issuer_der, issuer, crl_number, this_update, next_update, entries) ON kakunin.crls TO PUBLIC;
CREATE TRIGGER invalidate_caches
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kakunin.crls
    FOR EACH STATEMENT EXECUTE FUNCTION kakunin.invalidate_caches();

-- Binding reads anchors and statuses as the caller. Certificates and their
-- status are public information (as OCSP answers are); reasons and audit
-- columns are not.
GRANT SELECT ON kakunin.trust_anchors TO PUBLIC;
GRANT SELECT (serial, issuer, source, status) ON kakunin.certificate_status TO PUBLIC;

-- Administration: EXECUTE for kakunin_admin only (each function re-checks),
-- the writes themselves happen as the extension owner.
REVOKE EXECUTE ON FUNCTION kakunin.add_trust_anchor(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.remove_trust_anchor(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.set_certificate_status(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.add_trust_anchor(text, text) TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.remove_trust_anchor(text) TO kakunin_admin;
GRANT EXECUTE ON FUNCTION kakunin.set_certificate_status(text, text, text) TO kakunin_admin;
GRANT SELECT ON kakunin.trust_anchors, kakunin.certificate_status TO kakunin_admin;
COMMENT ON FUNCTION kakunin.add_trust_anchor(text, text) IS
    'Trusts a CA certificate (PEM or base64 DER) under a unique name. kakunin_admin only.';
COMMENT ON FUNCTION kakunin.remove_trust_anchor(text) IS
    'Stops trusting the named anchor; true if it existed. kakunin_admin only.';
COMMENT ON FUNCTION kakunin.set_certificate_status(text, text, text) IS
    'Records the administrator''s statement about a serial (any issuer): suspended, retired or revoked (with a reason), or active to clear the administrator''s own statement; a CA''s statements stand (the most severe wins). Effective for the next statement of every session; an audit entry records it. kakunin_admin only.';

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
COMMENT ON FUNCTION kakunin.verify_endpoint_stats() IS
    'Requests this backend has made to the verify endpoint (cache hits make none), and the endpoint URL.';

SELECT pg_catalog.pg_extension_config_dump('kakunin.trust_anchors', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.certificate_status', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.agent_status', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.webhook_secret', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.webhook_events', '');
SELECT pg_catalog.pg_extension_config_dump('kakunin.crls', '');
