-- kakunin_pg in a Supabase project: agents' trades, visible and writable only
-- to the agent whose certificate is bound in the transaction, while that
-- certificate is active, and only for the instruments its scope permits.
-- Needs a superuser (CREATE EXTENSION of an untrusted C extension), so it runs
-- on self-hosted Supabase or plain PostgreSQL with kakunin_pg installed.

CREATE EXTENSION IF NOT EXISTS kakunin_pg WITH SCHEMA extensions;

CREATE TABLE public.trades (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id   text NOT NULL,
    tenant_id  text NOT NULL,
    instrument text NOT NULL,
    quantity   numeric NOT NULL CHECK (quantity > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Every policy below filters on agent_id: index it.
CREATE INDEX trades_agent_id_idx ON public.trades (agent_id);

ALTER TABLE public.trades ENABLE ROW LEVEL SECURITY;
-- The owner is not exempt either.
ALTER TABLE public.trades FORCE ROW LEVEL SECURITY;

-- kakunin_active_agent_id() is NULL unless the bound credential is active
-- (a revoked, suspended or expired certificate matches no row).
CREATE POLICY trades_read_own ON public.trades FOR SELECT TO authenticated
    USING (agent_id = extensions.kakunin_active_agent_id()
           AND instrument = ANY (extensions.kakunin_permitted_instruments()));
CREATE POLICY trades_insert_own ON public.trades FOR INSERT TO authenticated
    WITH CHECK (agent_id = extensions.kakunin_active_agent_id()
                AND tenant_id = extensions.kakunin_tenant_id()
                AND instrument = ANY (extensions.kakunin_permitted_instruments()));

REVOKE ALL ON public.trades FROM anon, authenticated;
GRANT SELECT, INSERT ON public.trades TO authenticated;
