-- Revocation benchmark set-up (run by bench.sh as the superuser, variable
-- fake_ca = the fake CA's verify URL): a role whose sessions check online, and
-- the webhook timer.
\i tests/hmac_sha256.sql
CREATE ROLE bench_online LOGIN IN ROLE kakunin_gateway;
GRANT SELECT ON trades_a TO bench_online;
ALTER ROLE bench_online SET kakunin.verify_url = :'fake_ca';
SELECT kakunin.set_webhook_secret('whsec_bench_0123456789');

-- Median microseconds of `n` signed deliveries (alternately revoking and
-- reinstating one serial), each timed on its own; signing is done beforehand.
CREATE FUNCTION bench_webhook_median(n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    samples float8[] := '{}';
    d record;
BEGIN
    CREATE TEMP TABLE deliveries AS
    SELECT i, b, format('t=%s,v1=%s', extract(epoch FROM now())::bigint,
                        encode(hmac_sha256(extract(epoch FROM now())::bigint || '.' || b, 'whsec_bench_0123456789'), 'hex')) AS h
    FROM (SELECT i, jsonb_build_object('id', 'bench-' || i || '-' || txid_current(),
                 'type', CASE WHEN i % 2 = 0 THEN 'certificate.revoked' ELSE 'certificate.reinstated' END,
                 'data', jsonb_build_object('serial_number', 'abcdef', 'reason', 'bench'))::text AS b
          FROM generate_series(1, n) i) x;
    FOR d IN SELECT * FROM deliveries ORDER BY i LOOP
        t0 := clock_timestamp();
        PERFORM kakunin.handle_webhook(d.b, d.h);
        samples := samples || extract(epoch FROM clock_timestamp() - t0) * 1e6;
    END LOOP;
    DROP TABLE deliveries;
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM unnest(samples) s);
END $$;
