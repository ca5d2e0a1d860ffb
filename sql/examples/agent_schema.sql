-- The example schema policy authors start from (used by the demo, the pgTAP
-- suite and the benchmark): three tables whose row-level security policies ask
-- kakunin_pg which agent is calling, whether its certificate is active, and
-- what its financial scope permits.

CREATE TABLE behavior_events (
    id         bigserial PRIMARY KEY,
    agent_id   text NOT NULL,
    event_type text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trades (
    id         bigserial PRIMARY KEY,
    agent_id   text NOT NULL,
    instrument text NOT NULL,
    venue      text NOT NULL,
    quantity   numeric NOT NULL,
    price      numeric NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trades_agent_id_idx ON trades (agent_id);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    agent_id   text NOT NULL,
    action     text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE behavior_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE trades ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
-- FORCE: the table owner is not trusted either; it too sees only what the
-- binding admits.
ALTER TABLE behavior_events FORCE ROW LEVEL SECURITY;
ALTER TABLE trades FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;

-- An agent sees and writes its own events while its certificate is active.
CREATE POLICY events_own ON behavior_events
    USING (agent_id = kakunin_agent_id() AND kakunin_cert_status() = 'active')
    WITH CHECK (agent_id = kakunin_agent_id() AND kakunin_cert_status() = 'active');

-- Trades: own rows, active certificate, and only instruments in scope.
CREATE POLICY trades_own_in_scope ON trades
    USING (agent_id = kakunin_agent_id()
           AND kakunin_cert_status() = 'active'
           AND instrument = ANY (kakunin_permitted_instruments()))
    WITH CHECK (agent_id = kakunin_agent_id()
           AND kakunin_cert_status() = 'active'
           AND instrument = ANY (kakunin_permitted_instruments())
           AND venue = ANY (kakunin_permitted_venues()));

-- The audit log: an agent appends as itself and reads its own entries.
CREATE POLICY audit_append ON audit_log FOR INSERT
    WITH CHECK (agent_id = kakunin_active_agent_id());
CREATE POLICY audit_read ON audit_log FOR SELECT
    USING (agent_id = kakunin_active_agent_id());
