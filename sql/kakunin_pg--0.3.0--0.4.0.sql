-- kakunin_pg 0.3.0 -> 0.4.0 (ALTER EXTENSION kakunin_pg UPDATE).
\echo Use "ALTER EXTENSION kakunin_pg UPDATE TO '0.4.0'" to load this file. \quit

-- Documentation that had gone stale (issue 16); nothing else changes.
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
