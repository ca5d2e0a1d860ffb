-- PostgREST (src/postgrest.rs): the db-pre-request hook binds from the
-- request's headers; the request id feeds kakunin.audit_log.request_id.

-- x-request-id of the PostgREST request, if any; never fails.
CREATE FUNCTION kakunin.current_request_id() RETURNS text
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_current_request_id';
COMMENT ON FUNCTION kakunin.current_request_id() IS
    'The x-request-id header of the current PostgREST request, or NULL (audit_log.request_id default).';
COMMENT ON FUNCTION kakunin.pre_request() IS
    'PostgREST db-pre-request hook: binds from request.headers (x-kakunin-certificate + x-kakunin-proof, else x-api-key); a bad header raises, no header binds nothing. A certificate binds without proof only if the session user (PostgREST''s authenticator) is a kakunin_gateway member and nothing is bound yet in the transaction; replacing a binding needs the current role to be a gateway.';
