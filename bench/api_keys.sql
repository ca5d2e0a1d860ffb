-- API key benchmark set-up (run by bench.sh as the superuser): the pure-SQL
-- baseline of the same scheme, and a per-call timer.
-- The same scheme in plain SQL: parse, one lookup, sha256(), plain '='.
CREATE FUNCTION sql_verify_api_key(api_key text) RETURNS jsonb LANGUAGE sql STABLE
SECURITY DEFINER SET search_path = public, pg_catalog AS $$
    SELECT CASE
        WHEN api_key !~ '^kkn_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$' THEN '{"valid": false, "reason": "malformed"}'
        WHEN k.key_id IS NULL THEN '{"valid": false, "reason": "unknown"}'
        WHEN k.revoked_at IS NOT NULL THEN '{"valid": false, "reason": "revoked"}'
        WHEN k.expires_at <= now() THEN '{"valid": false, "reason": "expired"}'
        ELSE jsonb_build_object('valid', true, 'key_id', k.key_id, 'owner_id', k.owner_id,
             'tenant_id', k.tenant_id, 'capabilities', k.capabilities, 'claims', k.claims,
             'expires_at', k.expires_at)
    END
    FROM (SELECT 1) one
    LEFT JOIN kakunin.api_keys k
      ON k.key_id = substr(api_key, 5, 32)::uuid
     AND k.secret_hash = sha256(decode(translate(substr(api_key, 38), '-_', '+/') || '=', 'base64'))
$$;

-- Median microseconds of `calls` calls of verify(key), each timed on its own.
CREATE FUNCTION bench_verify_median(verify regprocedure, key text, calls int) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    samples float8[] := '{}';
    sql text := format('SELECT %s($1)', verify::oid::regproc);
BEGIN
    FOR i IN 1 .. calls LOOP
        t0 := clock_timestamp();
        EXECUTE sql USING key;
        samples := samples || extract(epoch FROM clock_timestamp() - t0) * 1e6;
    END LOOP;
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM unnest(samples) s);
END $$;

-- n more keys with random secrets (their plaintext is never needed).
CREATE FUNCTION bench_add_keys(n int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO kakunin.api_keys (key_id, owner_id, name, secret_hash, capabilities, created_by)
    SELECT gen_random_uuid(), 'owner-' || (g % 1000), 'filler', sha256(decode(md5(random()::text) || md5(random()::text), 'hex')),
           ARRAY['read'], 'bench'
    FROM generate_series(1, n) g
$$;
