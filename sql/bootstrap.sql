-- kakunin_pg: roles, schema and tables. Runs before the generated functions.

-- Roles are cluster-wide and may already exist (another database, an earlier
-- install); they are created NOLOGIN and left in place by DROP EXTENSION.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'kakunin_gateway') THEN
        CREATE ROLE kakunin_gateway NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'kakunin_admin') THEN
        CREATE ROLE kakunin_admin NOLOGIN;
    END IF;
END
$roles$;
COMMENT ON ROLE kakunin_gateway IS
    'kakunin_pg: members may bind an agent certificate without proof of possession (they terminated mTLS themselves)';
COMMENT ON ROLE kakunin_admin IS
    'kakunin_pg: members manage trust anchors and certificate status';

-- Plain CREATE SCHEMA, not IF NOT EXISTS: a schema somebody created beforehand
-- could hold objects we would then trust.
CREATE SCHEMA kakunin;
COMMENT ON SCHEMA kakunin IS 'kakunin_pg: agent identity, trust anchors and certificate status';

CREATE TABLE kakunin.trust_anchors (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    fingerprint text NOT NULL UNIQUE,
    subject     text NOT NULL,
    certificate bytea NOT NULL,
    not_after   timestamptz NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    added_by    text NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE kakunin.trust_anchors IS
    'CA certificates an agent certificate must chain to. Change it with kakunin.add_trust_anchor / kakunin.remove_trust_anchor.';

-- Every change to the anchors or the registry queues a relcache invalidation,
-- broadcast to all backends at commit, which empties their caches of both.
CREATE FUNCTION kakunin.invalidate_caches() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'kakunin_invalidate_caches';
COMMENT ON FUNCTION kakunin.invalidate_caches() IS
    'Trigger: tells every backend to drop its cached trust anchors and certificate status (internal).';
CREATE TRIGGER invalidate_caches
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kakunin.trust_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION kakunin.invalidate_caches();

-- One row per certificate and source; a certificate's status is the most
-- severe of its rows (src/registry.rs states the rules).
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

-- Proof-of-possession token ids seen within their five-minute window.
CREATE TABLE kakunin.proof_replay (
    fingerprint text NOT NULL,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (fingerprint, jti)
);
CREATE INDEX ON kakunin.proof_replay (expires_at);
COMMENT ON TABLE kakunin.proof_replay IS
    'jti of each accepted proof of possession, per certificate, until its window closes (internal).';
