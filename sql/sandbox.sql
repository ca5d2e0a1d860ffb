-- Agents that hold a connection (src/sandbox/): their SQL runs as a
-- restricted role under the identity bound in the transaction.

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
