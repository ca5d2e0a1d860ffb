-- From the seed's SQL helpers to kakunin_pg. The helpers read settings any
-- role can set with set_config(), so every policy above could be forged; the
-- native helpers read a binding only kakunin_pg can make.
--
-- The extension's helpers have the same names, so it goes into the schema
-- `extensions` (in public it would collide with them). adopt_sql_helpers then
-- rewrites every policy that calls public.kakunin_agent_id(),
-- public.kakunin_cert_status() or public.kakunin_permitted_instruments() to
-- call extensions.kakunin_…() and drops the old functions, in this migration's
-- transaction; it refuses and changes nothing if a view or anything else
-- still uses them. Run it first with dry_run => true (the default) to see the
-- rewrites.
CREATE EXTENSION IF NOT EXISTS kakunin_pg WITH SCHEMA extensions;
SELECT action, object FROM kakunin.adopt_sql_helpers('public', dry_run => false);
