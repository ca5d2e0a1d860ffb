-- The seed's SQL helpers and policies (the CA's Supabase integration guide,
-- steps 2 and 3, and its multi-agent audit_log policy), copied verbatim: a
-- database built this way is what kakunin.adopt_sql_helpers() migrates.
-- Migration: add Kakunin RLS helper functions
-- Reason: expose transaction-scoped cert metadata to RLS policies
-- Read the verified agent ID from transaction context
CREATE OR REPLACE FUNCTION kakunin_agent_id() RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT current_setting('kakunin.agent_id', true) $$;
-- Read the verified cert status from transaction context
CREATE OR REPLACE FUNCTION kakunin_cert_status() RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT current_setting('kakunin.cert_status', true) $$;
-- Read permitted instruments (comma-separated) from transaction context
CREATE OR REPLACE FUNCTION kakunin_permitted_instruments() RETURNS text[]
LANGUAGE sql STABLE
AS $$ SELECT string_to_array(
current_setting('kakunin.permitted_instruments', true), ','
) $$;
-- 3. Apply RLS policies to your tables
-- Example: behavior_events table — agents can only see their own events
ALTER TABLE behavior_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY "agents_read_own_events"
ON behavior_events FOR SELECT
USING (
agent_id = kakunin_agent_id()
AND kakunin_cert_status() = 'active'
);
CREATE POLICY "agents_insert_own_events"
ON behavior_events FOR INSERT
WITH CHECK (
agent_id = kakunin_agent_id()
AND kakunin_cert_status() = 'active'
);
-- Example: trades table — enforce permitted instruments from cert scope
ALTER TABLE trades ENABLE ROW LEVEL SECURITY;
CREATE POLICY "agents_trade_within_scope"
ON trades FOR INSERT
WITH CHECK (
agent_id = kakunin_agent_id()
AND kakunin_cert_status() = 'active'
AND instrument = ANY(kakunin_permitted_instruments())
);
-- Multi-agent tables (the guide assumes row-level security on audit_log; enabled here)
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY "agents_insert_audit"
ON audit_log FOR INSERT
WITH CHECK (
actor_id = kakunin_agent_id()
AND kakunin_cert_status() = 'active'
);
