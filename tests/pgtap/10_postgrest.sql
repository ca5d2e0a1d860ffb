-- PostgREST's per-request transaction, reproduced exactly: request settings,
-- SET LOCAL ROLE, the db-pre-request hook, then the query. Each request runs
-- in a savepoint rolled back afterwards, as PostgREST's transaction ends.
BEGIN;
SELECT plan(13);
CALL kakunin_test.share_pgtap();
SELECT ok(pg_has_role('service_role', 'kakunin_admin', 'MEMBER'), 'Supabase''s service_role administers kakunin');

SET ROLE admin_user;
CREATE TEMP TABLE keys AS
    SELECT 'agent-a' AS owner, * FROM kakunin.create_api_key('agent-a', 'web', ARRAY['trades:read'], NULL, '{"instruments": ["AAPL", "MSFT"]}')
    UNION ALL
    SELECT 'agent-b', * FROM kakunin.create_api_key('agent-b', 'web', ARRAY['trades:read'], NULL, '{"instruments": ["TSLA"]}');
GRANT SELECT ON keys TO PUBLIC;
RESET ROLE;

-- request(headers, query): one PostgREST request as role authenticated, always
-- rolled back (PostgREST's transaction ends with the request).
CREATE FUNCTION pg_temp.request(headers jsonb, query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE result text;
BEGIN
    PERFORM set_config('request.headers', headers::text, true);
    PERFORM set_config('request.jwt.claims', '{"role": "authenticated"}', true);
    PERFORM set_config('request.method', 'GET', true);
    SET LOCAL ROLE authenticated;
    PERFORM kakunin.pre_request();
    EXECUTE query INTO result;
    RAISE EXCEPTION USING ERRCODE = 'KK000', MESSAGE = coalesce(result, '<null>');
EXCEPTION WHEN OTHERS THEN
    RETURN CASE WHEN SQLSTATE = 'KK000' THEN SQLERRM ELSE SQLSTATE || ': ' || SQLERRM END;
END $$;

SELECT is(pg_temp.request(jsonb_build_object('x-api-key', (SELECT api_key FROM keys WHERE owner = 'agent-a')),
    'SELECT string_agg(instrument, '','' ORDER BY instrument) FROM trades'), 'AAPL,MSFT', 'request with agent-a''s key sees agent-a''s rows');
SELECT is(pg_temp.request(jsonb_build_object('x-api-key', (SELECT api_key FROM keys WHERE owner = 'agent-b')),
    'SELECT string_agg(instrument, '','' ORDER BY instrument) FROM trades'), 'TSLA', 'request with agent-b''s key sees agent-b''s rows');
SELECT is(pg_temp.request('{}', 'SELECT count(*)::text FROM trades'), '0', 'no header: the request runs unbound and sees nothing');
SELECT is(pg_temp.request('{"accept": "*/*"}', 'SELECT coalesce(kakunin_agent_id(), ''<none>'')'), '<none>', 'unrelated headers bind nothing');
SELECT is(pg_temp.request('{"x-api-key": "kkn_bad"}', 'SELECT 1::text'), '28000: API key refused: malformed',
    'a bad key fails the request (PostgREST answers 403)');
SELECT is(pg_temp.request(jsonb_build_object('x-kakunin-certificate', kakunin_test.url_escape(kakunin_test.cert('agent-b')),
                                             'x-kakunin-proof', kakunin_test.proof('agent-b/4')),
    'SELECT kakunin_agent_id() || '':'' || kakunin_cert_status()'), 'agent-b:active',
    'an escaped certificate with a proof binds (nginx $ssl_client_escaped_cert)');
SELECT is(pg_temp.request(jsonb_build_object('x-kakunin-certificate', kakunin_test.url_escape(kakunin_test.cert('agent-b')),
                                             'x-kakunin-proof', kakunin_test.proof('agent-b/5'),
                                             'x-api-key', (SELECT api_key FROM keys WHERE owner = 'agent-a')),
    'SELECT kakunin_agent_id()'), 'agent-b', 'the certificate takes precedence over an API key');
SELECT is(pg_temp.request('{"x-kakunin-certificate": "%zz"}', 'SELECT 1::text'),
    '28000: certificate is neither PEM nor base64-encoded DER', 'a garbled certificate header fails the request');
SELECT is(kakunin_agent_id(), NULL, 'nothing outlives a request');

-- Through a login role that is a gateway (PostgREST's authenticator behind an
-- mTLS-terminating proxy that overwrites the header) the certificate alone binds.
SELECT dblink_connect('postgrest', kakunin_test.connstr('gateway_app')) \g /dev/null
SELECT dblink_exec('postgrest', 'BEGIN') \g /dev/null
SELECT * FROM dblink('postgrest', format('SELECT set_config(''request.headers'', %L, true)',
    jsonb_build_object('x-kakunin-certificate', kakunin_test.url_escape(kakunin_test.cert('agent-b')))::text)) AS t(v text) \g /dev/null
SELECT dblink_exec('postgrest', 'SET LOCAL ROLE authenticated') \g /dev/null
SELECT is((SELECT v FROM dblink('postgrest', 'SELECT kakunin.pre_request()::text || kakunin_agent_id()') AS t(v text)),
    'agent-b', 'the authenticator is a gateway: the escaped certificate binds without a proof');
SELECT dblink_exec('postgrest', 'ROLLBACK') \g /dev/null
SELECT dblink_disconnect('postgrest') \g /dev/null
-- A login role that is not a gateway must send a proof.
SELECT dblink_connect('direct', kakunin_test.connstr('app_user')) \g /dev/null
SELECT dblink_exec('direct', 'BEGIN') \g /dev/null
SELECT * FROM dblink('direct', format('SELECT set_config(''request.headers'', %L, true)',
    jsonb_build_object('x-kakunin-certificate', kakunin_test.url_escape(kakunin_test.cert('agent-b')))::text)) AS t(v text) \g /dev/null
SELECT matches(kakunin_test.error_of($$SELECT * FROM dblink('direct', 'SELECT kakunin.pre_request()::text') AS t(v text)$$),
    'proof of possession required', 'without a proof, from a login role that is not a gateway, the certificate is refused');
SELECT dblink_disconnect('direct') \g /dev/null
SELECT is(pg_temp.request(jsonb_build_object('x-api-key', (SELECT api_key FROM keys WHERE owner = 'agent-a')),
    'SELECT kakunin.authorize(''trades:read'')::text'), 'true', 'authorize() answers inside the request');
SELECT * FROM finish();
ROLLBACK;
