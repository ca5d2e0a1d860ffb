-- Benchmark data (psql variables: cert = the bench agent's PEM, db = database).
-- trades_a..trades_d hold the same 1,000,000 rows (100 agents, 50 instruments)
-- under the four policy forms the harness compares.
SET client_min_messages = warning;
CREATE EXTENSION kakunin_pg;
CREATE ROLE bench_user LOGIN IN ROLE kakunin_gateway;

\i sql/examples/seed_helpers.sql

-- The certificate for the psql scripts (rls_query.sql, the EXPLAIN at the end).
-- The pgbench scripts send it as a literal instead (@CERT@, filled in by
-- bench.sh), as a gateway or an agent does: PostgreSQL evaluates a call of
-- this function, parsing and planning its body, at every statement naming it.
SELECT format('CREATE FUNCTION bench_cert() RETURNS text IMMUTABLE LANGUAGE sql AS %L',
              format('SELECT %L::text', :'cert')) \gexec

CREATE TABLE trades_a (id bigint PRIMARY KEY, agent_id text NOT NULL, instrument text NOT NULL, quantity int NOT NULL);
INSERT INTO trades_a
SELECT g, format('agent-%s', lpad((g % 100)::text, 3, '0')),
       format('I%s', lpad(((g / 100) % 50)::text, 2, '0')), 1
FROM generate_series(1, 1000000) g;
CREATE TABLE trades_b AS SELECT * FROM trades_a;
CREATE TABLE trades_c AS SELECT * FROM trades_a;
CREATE TABLE trades_d AS SELECT * FROM trades_a;
ALTER TABLE trades_b ADD PRIMARY KEY (id);
ALTER TABLE trades_c ADD PRIMARY KEY (id);
ALTER TABLE trades_d ADD PRIMARY KEY (id);

-- (a) native helpers called plainly, as the seed writes policies
CREATE POLICY p ON trades_a USING (agent_id = kakunin_agent_id() AND kakunin_cert_status() = 'active'
    AND instrument = ANY (kakunin_permitted_instruments()));
-- (b) the same wrapped in (select ...), Supabase's advice
CREATE POLICY p ON trades_b USING (agent_id = (SELECT kakunin_agent_id()) AND (SELECT kakunin_cert_status()) = 'active'
    AND instrument = ANY ((SELECT kakunin_permitted_instruments())::text[]));
-- (c) the bound values as literals: the floor
CREATE POLICY p ON trades_c USING (agent_id = 'agent-042' AND 'active' = 'active'
    AND instrument = ANY ('{I00,I01,I02,I03,I04,I05,I06,I07,I08,I09}'::text[]));
-- (d) the seed's SQL helpers called plainly
CREATE POLICY p ON trades_d USING (agent_id = seed_agent_id() AND seed_cert_status() = 'active'
    AND instrument = ANY (seed_permitted_instruments()));
ALTER TABLE trades_a ENABLE ROW LEVEL SECURITY;
ALTER TABLE trades_b ENABLE ROW LEVEL SECURITY;
ALTER TABLE trades_c ENABLE ROW LEVEL SECURITY;
ALTER TABLE trades_d ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON trades_a, trades_b, trades_c, trades_d TO bench_user;
VACUUM ANALYZE trades_a, trades_b, trades_c, trades_d;

-- Proofs of possession for the proof-path bind benchmarks (loaded by
-- bench.sh): proof k of pgbench stream s (a client of one run) is row
-- s * 1,000,000 + k, which the scripts count themselves (\set k :k + 1), so
-- fetching one writes nothing and works in READ ONLY transactions too.
CREATE TABLE bench_proofs (n bigint PRIMARY KEY, jws text NOT NULL);
CREATE ROLE bench_agent LOGIN;
GRANT SELECT ON bench_proofs, trades_a TO bench_agent;

-- The role agent SQL runs as (execute_as_agent), which the gateway may become.
CREATE ROLE bench_reader NOLOGIN;
GRANT SELECT ON trades_a TO bench_reader;
GRANT bench_reader TO bench_user;

SELECT kakunin.add_trust_anchor(:'root', 'bench root') \g /dev/null
