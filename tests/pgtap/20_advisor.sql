-- Issue 12 (first slice): kakunin.advisor() finds what is unsafe or slow for
-- kakunin policies, in Supabase's linter shape. The README's example schema
-- (the suite's setup) raises no ERROR of its own; each lint fires on a
-- database built to trip it, and stops once the fix is applied.
BEGIN;
SELECT plan(19);
-- The details of one lint's findings, NULL when there is none.
CREATE FUNCTION pg_temp.findings(lint text) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(detail, ' | ' ORDER BY detail) FROM kakunin.advisor() WHERE name = lint
$$;

SELECT is(array_agg(a.n ORDER BY a.o),
    ARRAY['name', 'title', 'level', 'facing', 'categories', 'description', 'detail', 'remediation', 'metadata', 'cache_key'],
    'one row per finding, with splinter''s columns')
FROM pg_proc p, unnest(p.proargnames, p.proargmodes) WITH ORDINALITY AS a(n, m, o)
WHERE p.oid = 'kakunin.advisor()'::regprocedure AND a.m = 't';
SELECT matches(kakunin_test.error_of('SET LOCAL ROLE app_user; SELECT * FROM kakunin.advisor()'),
    '^42501: permission denied for function advisor', 'readable by kakunin_admin only');
SELECT is((SELECT array_agg(name || ': ' || detail ORDER BY name) FROM kakunin.advisor() WHERE level = 'ERROR'),
    ARRAY['kakunin_forgeable_helper: Policy seed_policy on public.seed_trades calls public.seed_agent_id(), public.seed_cert_status(), public.seed_permitted_instruments(), which read current_setting().'],
    'the README''s example schema raises no ERROR; the suite''s copy of the seed''s policy does');

-- Built to trip each lint.
CREATE TABLE public.x_open (id int, agent_id text);
CREATE POLICY x_no_status ON public.x_open USING (agent_id = kakunin_agent_id());
SELECT is(pg_temp.findings('kakunin_rls_disabled'), 'Table public.x_open has kakunin policies but row-level security disabled.',
    'kakunin_rls_disabled');
SELECT is(pg_temp.findings('kakunin_policy_without_status_check'),
    'Policy x_no_status on public.x_open calls kakunin_agent_id() without kakunin_cert_status() or kakunin_active_agent_id() (commands: ALL).',
    'kakunin_policy_without_status_check');
SELECT is((SELECT detail FROM kakunin.advisor() WHERE name = 'kakunin_unindexed_policy_filter'
           AND metadata->>'table' = 'public.x_open'), 'Table public.x_open has no index leading with agent_id.',
    'kakunin_unindexed_policy_filter');
ALTER TABLE public.x_open ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.x_open OWNER TO authenticated;
SELECT is(pg_temp.findings('kakunin_rls_disabled'), NULL, 'enabled: no longer disabled');
SELECT is(pg_temp.findings('kakunin_rls_not_forced'),
    'Table public.x_open is owned by authenticated, which agent-facing roles can reach, and its row-level security is not forced.',
    'kakunin_rls_not_forced: an owner agents can act as skips its own policies');
ALTER TABLE public.x_open FORCE ROW LEVEL SECURITY;
CREATE INDEX ON public.x_open (agent_id);
DROP POLICY x_no_status ON public.x_open;
CREATE POLICY x_status ON public.x_open USING (agent_id = kakunin_active_agent_id());
SELECT is((SELECT count(*) FROM kakunin.advisor() WHERE metadata->>'table' = 'public.x_open'), 0::bigint,
    'forced, indexed, status-checked: x_open has no finding left');

CREATE ROLE x_bypasser NOLOGIN BYPASSRLS;
GRANT x_bypasser TO authenticated;
SELECT is(pg_temp.findings('kakunin_privileged_role_reachable'), 'Role x_bypasser is BYPASSRLS and reachable from agent-facing roles.',
    'kakunin_privileged_role_reachable');
REVOKE x_bypasser FROM authenticated;
SELECT is(pg_temp.findings('kakunin_privileged_role_reachable'), NULL, 'and gone with the membership');

CREATE VIEW public.x_trades_view AS SELECT * FROM trades;
SELECT is(pg_temp.findings('kakunin_view_not_security_invoker'), 'View public.x_trades_view reads public.trades, which has kakunin policies.',
    'kakunin_view_not_security_invoker');
ALTER VIEW public.x_trades_view SET (security_invoker = true);
SELECT is(pg_temp.findings('kakunin_view_not_security_invoker'), NULL, 'security_invoker views are fine');

CREATE FUNCTION public.x_definer() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
SELECT is(pg_temp.findings('kakunin_security_definer_search_path'),
    'Function public.x_definer() (owner pgrunner) is SECURITY DEFINER, callable by agent-facing roles, with no SET search_path.',
    'kakunin_security_definer_search_path');
SELECT is(pg_temp.findings('kakunin_security_definer_bypasses_rls'),
    'Function public.x_definer() is SECURITY DEFINER, callable by agent-facing roles, and owned by pgrunner, which bypasses row-level security.',
    'kakunin_security_definer_bypasses_rls: its owner is a superuser');
ALTER FUNCTION public.x_definer() SET search_path = pg_catalog, pg_temp;
SELECT is(pg_temp.findings('kakunin_security_definer_search_path'), NULL, 'a fixed search_path clears it');
ALTER FUNCTION public.x_definer() OWNER TO table_owner;
SELECT is(pg_temp.findings('kakunin_security_definer_bypasses_rls'), NULL, 'and an owner subject to the policies clears the other');

CREATE TABLE public.x_locked (id int);
ALTER TABLE public.x_locked ENABLE ROW LEVEL SECURITY;
SELECT is(pg_temp.findings('kakunin_rls_no_policy'), 'Table public.x_locked has row-level security enabled and no policy.',
    'kakunin_rls_no_policy');
SELECT is((SELECT level || ' ' || facing || ' ' || array_to_string(categories, ',') FROM kakunin.advisor()
           WHERE name = 'kakunin_rls_no_policy'), 'INFO EXTERNAL SECURITY', 'levels and categories as splinter names them');

SELECT * FROM finish();
ROLLBACK;
