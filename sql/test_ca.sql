-- The test kit (src/authoring/test_ca.rs): a per-database test CA for policy
-- authors' tests. Superusers only, and only while kakunin.allow_test_ca is on.

-- The test CA's private key. Its certificate is the trust anchor it names
-- (trust_anchors.test_anchor); removing that anchor removes the key. Not
-- registered with pg_extension_config_dump: the key of a test CA stays in the
-- database it was made in (a restored copy keeps the anchor, which trusts
-- nothing without kakunin.allow_test_ca, and kakunin.disable_test_ca removes it).
CREATE TABLE kakunin.test_ca (
    anchor_name      text PRIMARY KEY REFERENCES kakunin.trust_anchors (name) ON DELETE CASCADE,
    private_key      bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    one_per_database boolean NOT NULL DEFAULT true UNIQUE CHECK (one_per_database)
);
REVOKE ALL ON kakunin.test_ca FROM PUBLIC;
-- The advisor (kakunin_admin) reports a test CA; the key stays out of reach.
GRANT SELECT (anchor_name, created_at) ON kakunin.test_ca TO kakunin_admin;
COMMENT ON TABLE kakunin.test_ca IS
    'The test CA of this database (kakunin.enable_test_ca): its PKCS#8 P-256 private key (RFC 5208) and the trust anchor holding its certificate. At most one row; superusers and the extension owner only.';

REVOKE EXECUTE ON FUNCTION kakunin.enable_test_ca() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.issue_test_certificate(text, text, jsonb, interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kakunin.disable_test_ca() FROM PUBLIC;
COMMENT ON FUNCTION kakunin.enable_test_ca() IS
    'Creates this database''s test CA (a P-256 key kept in kakunin.test_ca), trusts it as a test anchor (kakunin.trust_anchors.test_anchor) and returns its certificate (PEM, marked by the extension 2.25.298900544965398659084009494318438196115, which kakunin.add_trust_anchor refuses); a second call returns the same certificate. Superuser only (42501), and only while kakunin.allow_test_ca is on (55000). Test anchors are trusted only while that setting is on.';
COMMENT ON FUNCTION kakunin.issue_test_certificate(text, text, jsonb, interval) IS
    'Issues an agent certificate in kakunin_pg''s profile (SAN URIs urn:kakunin:agent:<agent_id> and urn:kakunin:tenant:<tenant_id>, the financial scope extension holding scope) signed by the test CA, valid from now (backdated one minute) for valid_for (a month counts 30 days; it must end before the CA expires, 22023); returns the PEM chain (leaf, then the CA) for kakunin.bind_agent, which a superuser or kakunin_gateway member may call without a proof. Superuser only (42501), only while kakunin.allow_test_ca is on and after kakunin.enable_test_ca (55000). Audited (kakunin.test_ca.certificate_issued).';
COMMENT ON FUNCTION kakunin.disable_test_ca() IS
    'Removes the test CA, its key and every test anchor; true if there was one. Superuser only (42501); allowed whatever kakunin.allow_test_ca says.';
