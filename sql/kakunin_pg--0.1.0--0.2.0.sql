-- kakunin_pg 0.1.0 -> 0.2.0 (ALTER EXTENSION kakunin_pg UPDATE).
-- Audit entries and checkpoints written by 0.1.0 keep verifying: the
-- canonical bytes of an entry are unchanged (version 1).
\echo Use "ALTER EXTENSION kakunin_pg UPDATE TO '0.2.0'" to load this file. \quit

-- Every append evaluates the request_id default: a C function now, not PL/pgSQL.
CREATE OR REPLACE FUNCTION kakunin.current_request_id() RETURNS text
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'kakunin_current_request_id';

-- seq's unique index is partial, so an append (seq still NULL) writes no entry into it.
ALTER TABLE kakunin.audit_log DROP CONSTRAINT audit_log_seq_key;
CREATE UNIQUE INDEX audit_log_seq_key ON kakunin.audit_log (seq) WHERE seq IS NOT NULL;

-- kakunin.audit() passes its arguments to the INSERT as they came (no JSON
-- round trip through the wrapper): a plain C function now.
CREATE OR REPLACE FUNCTION kakunin.audit(action text, payload jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'kakunin_audit';
