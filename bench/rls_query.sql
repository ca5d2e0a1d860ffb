-- One timed run of the four policy forms, as bench_user (not a superuser).
-- psql variables: form (a, b, c or d), runs.
BEGIN;
CALL kakunin.bind_agent_session(bench_cert());
SELECT set_config('app.agent_id', 'agent-042', true), set_config('app.cert_status', 'active', true),
       set_config('app.permitted_instruments', 'I00,I01,I02,I03,I04,I05,I06,I07,I08,I09', true) \g /dev/null
