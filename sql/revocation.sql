-- Revocation channels (src/webhooks.rs, src/crl.rs, src/verify_endpoint.rs):
-- agent-level status, the webhook secret and seen event ids, loaded CRLs.

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
