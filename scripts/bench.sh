#!/usr/bin/env bash
# Benchmark harness: prints, in one run, our figures beside the baselines they
# must beat, as ratios (see bench/report.py). Builds the extension in release
# mode and uses its own throwaway cluster. `bench.sh SECTION` runs one section
# (rls, bind, agents, revocation, api_keys, shared, audit); the default runs all of them.
# PG=18 make bench runs it against PostgreSQL 18 (default: 15).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/pg.sh
DIR=/tmp/kakunin-bench-$PG
DATA=$DIR/data
SOCK=$DIR/sock
PORT=$((55450 + PORT_BASE))
DB=kakunin_bench
OUT=$DIR/results
RUNS=9
SECTION=${1:-all}
# The server settings of every run (sections that preload the library add theirs).
SERVER=("$DATA" "$PORT" "$SOCK" "shared_buffers=512MB" "max_parallel_workers_per_gather=2" "jit=off")
PGB=("$PG_BIN/pgbench" -n -c 2 -j 2 -T 10 -h "$SOCK" -p "$PORT" "$DB")
want() { [ "$SECTION" = all ] || [ "$SECTION" = "$1" ]; }

echo "[bench] release build and install"
cargo pgrx install --release --pg-config "$PG_CONFIG" --no-default-features --features "pg$PG" >/dev/null 2>&1
cargo build --quiet -p kakunin-testkit
cluster_stop "$DATA" || true
rm -rf "$DIR" && mkdir -p "$OUT"
trap 'cluster_stop "$DATA" || true' EXIT
cluster_start "${SERVER[@]}"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT")
"${PSQL[@]}" -U "$RUN_USER" -d postgres -c "CREATE DATABASE $DB"
echo "[bench] loading 4 x 1,000,000 rows"
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -v cert="$(cat tests/fixtures/pki/agent-bench.pem)" \
  -v root="$(cat tests/fixtures/pki/root-ca.pem)" -f bench/setup.sql
# The pgbench scripts, with the certificate (@CERT@) as a SQL literal, which is
# how a gateway or an agent sends it; they run from $OUT.
for f in bench/*.pgbench; do
  python3 - "$f" "$OUT/$(basename "$f")" tests/fixtures/pki/agent-bench.pem <<'PY'
import sys
src, dst, pem = sys.argv[1:]
literal = "'" + open(pem).read().strip().replace("'", "''") + "'"
open(dst, "w").write(open(src).read().replace("@CERT@", literal))
PY
done
# load_proofs COUNT PER_STREAM [IAT_OFFSET JTI_PREFIX]: COUNT fresh proofs of the
# bench agent, as rows stream * 1,000,000 + k of bench_proofs (see bench/setup.sql).
load_proofs() {
  "${PSQL[@]}" -U "$RUN_USER" -d "$DB" -c "TRUNCATE bench_proofs" \
    -c "CREATE TEMP TABLE staged (i bigint, jws text)" \
    -c "\\copy staged FROM PROGRAM 'cargo run --quiet -p kakunin-testkit --bin kakunin-proofs -- agent-bench $DB $1 ${*:3}'" \
    -c "INSERT INTO bench_proofs SELECT (i - 1) / $2 * 1000000 + (i - 1) % $2 + 1, jws FROM staged" \
    -c "ANALYZE bench_proofs" >/dev/null
}

want rls && for mode in serial parallel; do
  workers=0; [ "$mode" = parallel ] && workers=2
  echo "[bench] RLS forms, $mode plan"
  {
    cat bench/rls_query.sql
    echo "SET LOCAL max_parallel_workers_per_gather = $workers;"
    echo '\timing on'
    for _ in $(seq 0 "$RUNS"); do
      for form in a b c d; do
        echo "\\echo form $form"
        echo "SELECT count(*) FROM trades_$form;"
      done
    done
    echo 'COMMIT;'
  } | "${PSQL[@]}" -At -U bench_user -d "$DB" > "$OUT/rls_$mode.txt"
done

if want bind; then
echo "[bench] bind cost (pgbench, 2 clients, 3 rounds of 10 s per script)"
# 6 streams (3 rounds x 2 clients) of 25,000 fresh proofs.
load_proofs 150000 25000
: > "$OUT/bind_seed.txt"; : > "$OUT/bind_gateway.txt"; : > "$OUT/bind_proof.txt"
for round in 0 1 2; do
  "${PGB[@]}" -U bench_user -f "$OUT/bind_seed.pgbench" >> "$OUT/bind_seed.txt" 2>&1
  "${PGB[@]}" -U bench_user -f "$OUT/bind_gateway.pgbench" >> "$OUT/bind_gateway.txt" 2>&1
  "${PGB[@]}" -U bench_agent -D k=0 -D round=$round -f "$OUT/bind_proof.pgbench" >> "$OUT/bind_proof.txt" 2>&1
done

fi

if want agents; then
echo "[bench] agent SQL: one-row SELECT through execute_as_agent vs after SET LOCAL ROLE (3 rounds of 10 s)"
: > "$OUT/agent_plain.txt"; : > "$OUT/agent_sandbox.txt"; : > "$OUT/agent_plain_10.txt"; : > "$OUT/agent_sandbox_10.txt"
for _ in 1 2 3; do
  for kind in plain sandbox plain_10 sandbox_10; do
    "${PGB[@]}" -U bench_user -f "$OUT/agent_$kind.pgbench" >> "$OUT/agent_$kind.txt" 2>&1
  done
done

fi

if want revocation; then
echo "[bench] revocation: bind with the online check (cached) and webhook application"
python3 tests/fake_ca.py 57450 &
FAKE_CA_PID=$!
trap 'kill $FAKE_CA_PID 2>/dev/null; cluster_stop "$DATA" || true' EXIT
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -v fake_ca="http://127.0.0.1:57450/v1/active/agent-042/verify/" \
  -f bench/revocation.sql >/dev/null
: > "$OUT/bind_online.txt"; : > "$OUT/bind_offline.txt"
for _ in 1 2 3; do
  "${PGB[@]}" -U bench_user -f "$OUT/bind_gateway.pgbench" >> "$OUT/bind_offline.txt" 2>&1
  "${PGB[@]}" -U bench_online -f "$OUT/bind_gateway.pgbench" >> "$OUT/bind_online.txt" 2>&1
done
"${PSQL[@]}" -At -U "$RUN_USER" -d "$DB" -c "SELECT round(bench_webhook_median(2000)::numeric, 1)" > "$OUT/webhook_us.txt"

fi

if want api_keys; then
echo "[bench] API keys: verification at 1,000 and 1,000,000 keys"
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -f bench/api_keys.sql
KEY=$("${PSQL[@]}" -At -U "$RUN_USER" -d "$DB" -c \
  "SELECT api_key FROM kakunin.create_api_key('owner-1', 'bench', ARRAY['read'], NULL, '{}')")
UNKNOWN="kkn_$(printf '0%.0s' $(seq 32))_${KEY:37}"
WRONG="${KEY:0:39}$([ "${KEY:39:1}" = A ] && echo B || echo A)${KEY:40}"
median() { # median FUNCTION KEY: microseconds per call, 20,000 calls, as a non-superuser
  "${PSQL[@]}" -At -U bench_user -d "$DB" -c "SELECT round(bench_verify_median('$1(text)', '$2', 20000)::numeric, 2)"
}
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -c "SELECT bench_add_keys(999)" -c "VACUUM ANALYZE kakunin.api_keys"
echo "keys_1k_valid $(median kakunin.verify_api_key "$KEY")" > "$OUT/api_keys.txt"
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -c "SELECT bench_add_keys(999000)" -c "VACUUM ANALYZE kakunin.api_keys"
{
  echo "keys_1m_valid $(median kakunin.verify_api_key "$KEY")"
  echo "keys_1m_unknown $(median kakunin.verify_api_key "$UNKNOWN")"
  echo "keys_1m_wrong $(median kakunin.verify_api_key "$WRONG")"
  echo "keys_1m_sql_valid $(median sql_verify_api_key "$KEY")"
} >> "$OUT/api_keys.txt"
PGBP=("$PG_BIN/pgbench" -n -M prepared -c 2 -j 2 -T 10 -h "$SOCK" -p "$PORT" -U bench_user -D "key=$KEY" "$DB")
echo 'SELECT kakunin.verify_api_key(:key);' > "$OUT/verify_ours.pgbench"
echo 'SELECT sql_verify_api_key(:key);' > "$OUT/verify_sql.pgbench"
: > "$OUT/verify_ours.txt"; : > "$OUT/verify_sql.txt"
for _ in 1 2 3; do
  "${PGBP[@]}" -f "$OUT/verify_ours.pgbench" >> "$OUT/verify_ours.txt" 2>&1
  "${PGBP[@]}" -f "$OUT/verify_sql.pgbench" >> "$OUT/verify_sql.txt" 2>&1
done

fi

if want shared; then
echo "[bench] shared memory: the verify endpoint without it (20 s), then with the library preloaded"
python3 tests/fake_ca.py 57451 &
SHM_CA_PID=$!
trap 'kill $SHM_CA_PID ${FAKE_CA_PID:-} 2>/dev/null; cluster_stop "$DATA" || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/57451) 2>/dev/null && break; sleep 0.1; done
ca_requests() { python3 -c 'import json, urllib.request; print(json.load(urllib.request.urlopen("http://127.0.0.1:57451/stats"))["requests"])'; }
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -c "DROP ROLE IF EXISTS bench_serial" \
  -c "CREATE ROLE bench_serial LOGIN IN ROLE kakunin_gateway" \
  -c "ALTER ROLE bench_serial SET kakunin.verify_url = 'http://127.0.0.1:57451/v1/active/agent-042/verify/'" \
  -c "ALTER ROLE bench_serial SET kakunin.verify_timeout_ms = 10000" >/dev/null
PGB20=("$PG_BIN/pgbench" -n -c 20 -j 2 -h "$SOCK" -p "$PORT" -U bench_serial -f "$OUT/verify_serial.pgbench" "$DB")
before=$(ca_requests)
# A bind the CA does not answer in time fails and ends that pgbench client;
# the requests are what is counted.
"${PGB20[@]}" -T 20 > "$OUT/verify_serial_backend.txt" 2>&1 || true
echo "$(( $(ca_requests) - before )) 20" > "$OUT/verify_requests_backend.txt"
# Preloaded: replay memory sized for the proofs below (a proof is remembered 360 s).
cluster_start "${SERVER[@]}" \
  "shared_preload_libraries=kakunin_pg" "kakunin.proof_replay_capacity=2000000" "kakunin.verify_cache_capacity=100000" \
  "kakunin.proof_replay_per_key=2000000"
started=$(date +%s)
before=$(ca_requests)
"${PGB20[@]}" -T 60 > "$OUT/verify_serial_shared.txt" 2>&1 || true
echo "$(( $(ca_requests) - before )) 60" > "$OUT/verify_requests_shared.txt"
"${PSQL[@]}" -At -U "$RUN_USER" -d "$DB" -c "SELECT t, s->t->>'capacity', s->t->>'bytes'
  FROM kakunin.shared_memory() s, unnest(ARRAY['proof_replay', 'verify_cache']) t" > "$OUT/shmem_sizes.txt"
# Fresh proofs (a new jti each), issued at least 60 s after the start, as the
# replay rule wants (the 60 s run above took that long): 12 streams (3 rounds x
# read-write/READ ONLY x 2 clients) of 60,000, fetched without a write (see
# bench/setup.sql).
while [ $(( $(date +%s) - started )) -lt 61 ]; do sleep 1; done
load_proofs 720000 60000 0 shm
for kind in seed gateway proof proof_ro; do : > "$OUT/shm_bind_$kind.txt"; done
for round in 0 1 2; do
  "${PGB[@]}" -U bench_user -f "$OUT/bind_seed.pgbench" >> "$OUT/shm_bind_seed.txt" 2>&1
  "${PGB[@]}" -U bench_user -f "$OUT/bind_gateway.pgbench" >> "$OUT/shm_bind_gateway.txt" 2>&1
  "${PGB[@]}" -U bench_agent -D k=0 -D round=$round -D variant=0 -f "$OUT/bind_proof_shm.pgbench" >> "$OUT/shm_bind_proof.txt" 2>&1
  "${PGB[@]}" -U bench_agent -D k=0 -D round=$round -D variant=1 -f "$OUT/bind_proof_ro.pgbench" >> "$OUT/shm_bind_proof_ro.txt" 2>&1
done
# Back to the plain server for the sections after this one.
cluster_start "${SERVER[@]}"

fi

if want audit; then
echo "[bench] audit log: appends (1 and 8 clients), verification of 1,000,000 entries, proofs at 10,000,000"
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -f bench/audit.sql >/dev/null
echo "SELECT kakunin.audit('trade.placed', '{\"instrument\": \"AAPL\", \"qty\": 10}');" > "$OUT/append_ours.pgbench"
echo "INSERT INTO plain_log (action, payload) VALUES ('trade.placed', '{\"instrument\": \"AAPL\", \"qty\": 10}');" > "$OUT/append_plain.pgbench"
echo "INSERT INTO diy_log (action, payload) VALUES ('trade.placed', '{\"instrument\": \"AAPL\", \"qty\": 10}');" > "$OUT/append_diy.pgbench"
for clients in 1 8; do
  for kind in ours plain diy; do
    "$PG_BIN/pgbench" -n -c "$clients" -j 2 -T 10 -h "$SOCK" -p "$PORT" -U bench_auditor -f "$OUT/append_$kind.pgbench" "$DB" \
      > "$OUT/append_${kind}_$clients.txt" 2>&1
  done
done
# How long committed entries wait to be integrated: drain what the runs left.
"${PSQL[@]}" -At -U "$RUN_USER" -d "$DB" -c "SELECT count(*) FROM kakunin.audit_log WHERE seq IS NULL" > "$OUT/audit_pending.txt"
"${PSQL[@]}" -At -U "$RUN_USER" -d "$DB" -c "\timing on" -c "SELECT kakunin.audit_integrate()" | tail -1 >> "$OUT/audit_pending.txt"
# Verification over 1,000,000 entries.
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -c "INSERT INTO kakunin.audit_log (actor_id, action, payload)
  SELECT 'agent-' || (g % 100), 'trade.placed', jsonb_build_object('n', g, 'price', 1.50)
  FROM generate_series(1, 1000000 - (SELECT count(*) FROM kakunin.audit_log)) g" \
  -c "SELECT kakunin.audit_integrate()" -c "SELECT count(*) FROM kakunin.audit_checkpoint()" >/dev/null
"${PSQL[@]}" -At -U "$RUN_USER" -d "$DB" -c "\timing on" -c "SELECT kakunin.verify_audit_log()" > "$OUT/verify.txt"
# Inclusion proofs at 10,000,000 entries: the tree grows to 10M synthetic
# leaves (the sequencer's own code path, fed by a bulk insert).
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -c "INSERT INTO kakunin.audit_log (actor_id, action, payload)
  SELECT 'agent-' || (g % 100), 'bulk', '{}' FROM generate_series(1, 9000000) g" \
  -c "SELECT kakunin.audit_integrate()" >/dev/null
"${PSQL[@]}" -At -U "$RUN_USER" -d "$DB" -c "SELECT round(bench_proof_median(10000000, 1000)::numeric, 3),
  jsonb_array_length(kakunin.audit_inclusion_proof(4242424, 10000000)->'proof')" > "$OUT/proof.txt"
# The appends again with the background worker sequencing: a server restart
# with the library preloaded (the plain-table figures above are the baseline).
cluster_start "${SERVER[@]}" \
  "shared_preload_libraries=kakunin_pg" "kakunin.audit_worker_database=$DB"
for clients in 1 8; do
  "$PG_BIN/pgbench" -n -c "$clients" -j 2 -T 10 -h "$SOCK" -p "$PORT" -U bench_auditor -f "$OUT/append_ours.pgbench" "$DB" \
    > "$OUT/append_worker_$clients.txt" 2>&1
done
"${PSQL[@]}" -At -U "$RUN_USER" -d "$DB" -c "SELECT count(*) FROM kakunin.audit_log WHERE seq IS NULL" > "$OUT/audit_worker_pending.txt"

fi

python3 bench/report.py "$OUT"

echo
echo "== With an index on agent_id the planner uses it under the policy:"
"${PSQL[@]}" -U "$RUN_USER" -d "$DB" -c "CREATE INDEX ON trades_a (agent_id)" -c "ANALYZE trades_a"
printf '%s\n' "BEGIN;" "CALL kakunin.bind_agent_session(bench_cert());" \
  "EXPLAIN (COSTS OFF) SELECT count(*) FROM trades_a;" "COMMIT;" \
  | "${PSQL[@]}" -U bench_user -d "$DB"
