-- The seed's original policy helpers: plain custom settings read with
-- current_setting, the scope split from a comma-separated string. Kept as the
-- baseline the tests attack (any role can set app.*) and the benchmark beats.
CREATE FUNCTION seed_agent_id() RETURNS text LANGUAGE sql STABLE
AS $$ SELECT current_setting('app.agent_id', true) $$;
CREATE FUNCTION seed_cert_status() RETURNS text LANGUAGE sql STABLE
AS $$ SELECT current_setting('app.cert_status', true) $$;
CREATE FUNCTION seed_permitted_instruments() RETURNS text[] LANGUAGE sql STABLE
AS $$ SELECT string_to_array(current_setting('app.permitted_instruments', true), ',') $$;
