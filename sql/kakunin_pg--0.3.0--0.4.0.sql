-- kakunin_pg 0.3.0 -> 0.4.0 (ALTER EXTENSION kakunin_pg UPDATE).
\echo Use "ALTER EXTENSION kakunin_pg UPDATE TO '0.4.0'" to load this file. \quit

-- Documentation that had gone stale (issue 16).
COMMENT ON ROLE kakunin_admin IS
    'kakunin_pg: members manage trust anchors, statuses, CRLs, the webhook secret and API keys, and integrate and export the audit log';
COMMENT ON SCHEMA kakunin IS 'kakunin_pg: agent identity, revocation data, API keys and the audit log';
COMMENT ON FUNCTION kakunin.invalidate_caches() IS
    'Trigger: tells every backend to drop its cached trust anchors, statuses, CRLs and API keys (internal).';
COMMENT ON FUNCTION @extschema@.kakunin_cert_status() IS
    'Policy helper: the status of the bound certificate or API key: active, suspended, retired, revoked, expired, or unknown (a stale CRL, or a verify endpoint that could not answer); re-read once per statement; NULL when nothing is bound.';
COMMENT ON FUNCTION kakunin.audit_guard() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on the audit tables (only the sequencer fills in positions), and payloads over 1 MiB or nested deeper than 64 levels (internal).';
COMMENT ON FUNCTION kakunin.audit(text, jsonb) IS
    'Appends an audit entry as the bound agent (in its tenant, while its status is active; kakunin_admin members may append as anyone) and returns its id; the sequencer assigns its seq in commit order.';
COMMENT ON FUNCTION kakunin.audit_integrate() IS
    'Integrates committed audit entries (and this transaction''s) into the Merkle tree (gapless seq, leaf hashes, nodes); returns how many. Waits at most 5 s for another sequencer (55P03). kakunin_admin only; otherwise the background worker integrates (appends never do).';
COMMENT ON COLUMN kakunin.api_key_events.occurrences IS
    'verify_failed: the failures this row stands for (one backend records a stored key and reason at most once a minute; failures that name no stored key are not recorded). 1 for other events.';
COMMENT ON FUNCTION kakunin.rotate_api_key(uuid, interval) IS
    'Creates a replacement key with the same owner, tenant, capabilities, claims, expiry and lineage; the old key works for the grace period only. Refused to a caller bound with an API key (a key cannot renew itself).';

-- Agents that hold a connection (issue 10).
-- A C function declared here: its role argument is of type name.
CREATE FUNCTION kakunin.execute_as_agent(role name, query text, read_only boolean DEFAULT true,
                                         max_rows integer DEFAULT 1000)
RETURNS jsonb
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'execute_as_agent_wrapper';
-- Open to every role: it needs a binding made earlier in the transaction and
-- runs only as a role the session user may become, never one that defeats
-- row-level security.
COMMENT ON FUNCTION kakunin.execute_as_agent(name, text, boolean, integer) IS
    'Runs query (one or more statements) as role, under the identity bound earlier in this transaction (28000 without one), atomically, read-only unless read_only is false, and returns the last statement''s rows: {"rows": [{column: value}], "row_count", "truncated"} (at most max_rows rows, 0-100000, and 8 MiB). Inside, no change of role or session authorization, transaction control, SET or set_config(), LOAD, COPY, LISTEN/NOTIFY or pg_notify(), PREPARE, cursors (none may be open when it starts, none left when it ends), DDL, session advisory locks, large objects or new binding (42501). role must be one the session user may become, and neither be nor reach (through any membership) a superuser, a role with BYPASSRLS, REPLICATION or CREATEROLE, an owner of a table whose row-level security is not FORCEd, kakunin_gateway, kakunin_admin or a predefined pg_* role (42501). Every call is an audit entry (agent.execute: role, query_sha256, read_only, row_count or sqlstate); a refused call''s entry survives the rollback.';
