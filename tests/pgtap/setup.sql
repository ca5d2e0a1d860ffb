-- Prepares the pgTAP database (run once by scripts/test.sh, after the fixtures
-- are loaded): the extensions, the example schema, test roles, a trust anchor
-- and rows for two agents.
CREATE EXTENSION pgtap;
CREATE EXTENSION dblink;
CREATE EXTENSION kakunin_pg;

DO $$
BEGIN
    -- Roles are cluster-wide; a previous run may have left them.
    PERFORM 1 FROM pg_roles WHERE rolname = 'app_user';
    IF NOT FOUND THEN
        CREATE ROLE app_user LOGIN;              -- an agent connecting directly
        CREATE ROLE gateway_app LOGIN;           -- an mTLS-terminating gateway
        CREATE ROLE admin_user LOGIN;            -- manages anchors and status
        CREATE ROLE authenticated NOLOGIN;       -- the role policies are written for
        CREATE ROLE table_owner NOLOGIN;         -- owns the example tables
    END IF;
END $$;
GRANT kakunin_gateway TO gateway_app;
GRANT authenticated TO gateway_app;
GRANT kakunin_admin TO admin_user;

SET ROLE table_owner;
-- pgrx and pgTAP objects live in public; table_owner needs CREATE there.
RESET ROLE;
GRANT CREATE ON SCHEMA public TO table_owner;
SET ROLE table_owner;
\i sql/examples/agent_schema.sql
GRANT SELECT, INSERT, UPDATE, DELETE ON behavior_events, trades, audit_log
    TO app_user, gateway_app, authenticated;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app_user, gateway_app, authenticated;
RESET ROLE;

INSERT INTO trades (agent_id, instrument, venue, quantity, price) VALUES
    ('agent-a', 'AAPL', 'XNAS', 10, 190), ('agent-a', 'MSFT', 'XNAS', 5, 410),
    ('agent-a', 'TSLA', 'XNAS', 1, 250),   -- agent-a's own, but out of its scope
    ('agent-b', 'TSLA', 'XNYS', 7, 250), ('agent-b', 'AAPL', 'XNYS', 2, 190);
INSERT INTO behavior_events (agent_id, event_type) VALUES
    ('agent-a', 'login'), ('agent-a', 'quote'), ('agent-b', 'login');

SET ROLE admin_user;
SELECT kakunin.add_trust_anchor(pem, 'test root') FROM kakunin_test.certs WHERE name = 'root-ca';
RESET ROLE;
