-- The policy helpers (src/helpers.rs), in the schema CREATE EXTENSION was
-- given. Plain C functions: a policy calls them once per row.
CREATE FUNCTION kakunin_agent_id() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_agent_id';
CREATE FUNCTION kakunin_active_agent_id() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_active_agent_id';
CREATE FUNCTION kakunin_cert_status() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_cert_status';
CREATE FUNCTION kakunin_tenant_id() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_tenant_id';
CREATE FUNCTION kakunin_cert_serial() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_cert_serial';
CREATE FUNCTION kakunin_permitted_instruments() RETURNS text[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_permitted_instruments';
CREATE FUNCTION kakunin_permitted_venues() RETURNS text[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_permitted_venues';
