-- Audit log benchmark set-up (run by bench.sh as the superuser): the plain
-- table and the usual do-it-yourself hash chain to compare appends against.
CREATE ROLE bench_auditor LOGIN IN ROLE kakunin_admin;

-- Baseline 1: the same rows in a plain table, no chain.
CREATE TABLE plain_log (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id text NOT NULL DEFAULT session_user, action text NOT NULL, payload jsonb NOT NULL);
-- Baseline 2: a PL/pgSQL trigger chaining sha256(prev_hash || row) under a table lock.
CREATE TABLE diy_log (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id text NOT NULL DEFAULT session_user, action text NOT NULL, payload jsonb NOT NULL,
    prev_hash bytea, hash bytea);
CREATE FUNCTION diy_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE diy_log IN SHARE ROW EXCLUSIVE MODE;
    SELECT hash INTO NEW.prev_hash FROM diy_log ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(NEW.prev_hash, '\x');
    NEW.hash := sha256(NEW.prev_hash || convert_to(row(NEW.ts, NEW.actor_id, NEW.action, NEW.payload)::text, 'UTF8'));
    RETURN NEW;
END $$;
CREATE TRIGGER chain BEFORE INSERT ON diy_log FOR EACH ROW EXECUTE FUNCTION diy_chain();
GRANT INSERT ON plain_log, diy_log TO bench_auditor;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO bench_auditor;
GRANT SELECT, UPDATE ON diy_log TO bench_auditor;  -- LOCK … SHARE ROW EXCLUSIVE needs UPDATE

-- Median milliseconds of `n` inclusion proofs for random positions in a tree
-- of `size` entries.
CREATE FUNCTION bench_proof_median(size bigint, n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    samples float8[] := '{}';
BEGIN
    FOR i IN 1 .. n LOOP
        t0 := clock_timestamp();
        PERFORM kakunin.audit_inclusion_proof((random() * (size - 1))::bigint, size);
        samples := samples || extract(epoch FROM clock_timestamp() - t0) * 1e3;
    END LOOP;
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM unnest(samples) s);
END $$;
