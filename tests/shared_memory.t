#!/usr/bin/env bash
# TAP (issue 11): with the library preloaded, accepted proofs of possession
# are remembered in shared memory, so a proof bind writes nothing: it works in
# a READ ONLY transaction, in PostgREST's GET transaction and on a streaming
# hot standby, and a replay is refused across the backends of one server,
# however full its memory is; the verify endpoint's answers are one cache per
# server, asked for once however many backends bind the serial at once. Its
# own primary, standby and fake CA (a real HTTP server), preloaded.
# Usage (from scripts/pgtap.sh): tests/shared_memory.t PORT
set -uo pipefail
PORT=$1
source scripts/pg.sh
WORK=$(mktemp -d)
chown "$RUN_USER" "$WORK"
SOCK=$WORK/sock
PRIMARY=$WORK/primary
REPLICA=$WORK/replica
REPLICA_PORT=$((PORT + 1))
CA_PORT=$((PORT + 2))
DB=shm
CAPACITY=16
cleanup() {
  [ -n "${CA_PID:-}" ] && kill "$CA_PID" 2>/dev/null
  cluster_stop "$REPLICA" 2>/dev/null
  cluster_stop "$PRIMARY" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
echo "1..18"
source tests/tap.sh

cluster_start "$PRIMARY" "$PORT" "$SOCK" "shared_preload_libraries=kakunin_pg" \
  "kakunin.proof_replay_capacity=$CAPACITY" "wal_level=replica" "max_wal_senders=4" \
  "kakunin.proof_audience=primary-1"
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$RUN_USER")
"${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB" >/dev/null
"${PSQL[@]}" -d "$DB" >/dev/null <<SQL
CREATE EXTENSION kakunin_pg;
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shm_agent') THEN CREATE ROLE shm_agent LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shm_other') THEN CREATE ROLE shm_other LOGIN; END IF;
END \$\$;
SELECT kakunin.add_trust_anchor(\$pem\$$(cat tests/fixtures/pki/root-ca.pem)\$pem\$, 'root');
SQL
CERT=$(cat tests/fixtures/pki/agent-b.pem)
AGENT=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -d "$DB")
# proofs AUD COUNT OFFSET PREFIX: "<n>\t<jws>" lines, of agent-b (or PROOF_AGENT).
proofs() { cargo run --quiet -p kakunin-testkit --bin kakunin-proofs -- "${PROOF_AGENT:-agent-b}" "$@"; }
proof_n() { sed -n "${1}p" | cut -f2; }
# bind PORT PROOF [BEGIN options]: agent_id bound in a transaction, as
# shm_agent, with certificate $CERT (agent-b unless BIND_CERT says otherwise).
bind() {
  "${AGENT[@]}" -U "${BIND_USER:-shm_agent}" -p "$1" -v cert="${BIND_CERT:-$CERT}" -v proof="$2" <<SQL
BEGIN ${3:-};
SELECT kakunin.bind_agent(:'cert', :'proof')->>'agent_id' || ' ' || kakunin_cert_status();
COMMIT;
SQL
}
bind_other() { BIND_USER=shm_other bind "$@"; }
ca_requests() { python3 -c 'import json, sys, urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))["requests"])' "http://127.0.0.1:$CA_PORT/stats"; }
expect() { # expect WANT COMMAND...: the command's output contains WANT
  out=$("${@:2}" 2>&1)
  case $out in *"$1"*) return 0 ;; *) echo "wanted: $1"; echo "got: $out"; return 1 ;; esac
}

# Proofs for this server: aud names it (kakunin.proof_audience) and the database.
# Dated 59 s ahead (inside the allowed skew), since proofs issued less than
# 60 s after the server started are refused (below).
sleep 2  # proofs dated 59 s ahead must be issued at least 1 s after the start
PROOFS=$(proofs "primary-1/$DB" 40 59 p)
check "right after a start, a proof issued before start + 60 s is refused (it may predate the start)" \
  expect "is less than 60 s after this server started" bind "$PORT" "$(proofs "primary-1/$DB" 1 0 early | proof_n 1)"
check "a proof binds in a READ ONLY transaction (nothing to write)" \
  expect "agent-b" bind "$PORT" "$(echo "$PROOFS" | proof_n 1)" "READ ONLY"
check "the same proof in another backend is refused (replay across backends)" \
  expect "was already used (replay)" bind "$PORT" "$(echo "$PROOFS" | proof_n 1)"
check "a proof naming only the database is refused where kakunin.proof_audience is set" \
  expect "aud does not name the current database" bind "$PORT" "$(proofs "$DB" 1 59 dbonly | proof_n 1)"

# PostgREST's GET: a READ ONLY transaction, headers in request.headers, pre_request().
escaped=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))' <<<"$CERT")
get_request() {
  headers=$(python3 -c 'import json, sys; print(json.dumps({"x-kakunin-certificate": sys.argv[1], "x-kakunin-proof": sys.argv[2]}))' \
    "$escaped" "$(echo "$PROOFS" | proof_n 2)")
  "${AGENT[@]}" -U shm_agent -p "$PORT" -v headers="$headers" <<'SQL'
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
SELECT set_config('request.headers', :'headers', true) \g /dev/null
SELECT kakunin.pre_request() \g /dev/null
SELECT kakunin_agent_id();
COMMIT;
SQL
}
check "PostgREST's GET transaction (READ ONLY) binds with certificate and proof" expect "agent-b" get_request
nothing_written() {
  [ "$("${PSQL[@]}" -d "$DB" -c "SELECT count(*) FROM kakunin.proof_replay")" = 0 ]
}
check "no row was written to kakunin.proof_replay" nothing_written
used() {
  got=$("${PSQL[@]}" -d "$DB" -c "SELECT s->'preloaded', s->'proof_replay'->'capacity', s->'proof_replay'->'entries',
    s->'verify_cache'->'capacity', (s->'proof_replay'->>'bytes')::bigint > 0 FROM kakunin.shared_memory() s")
  [ "$got" = "true|$CAPACITY|2|10000|t" ] || { echo "kakunin.shared_memory(): $got"; return 1; }
}
check "kakunin.shared_memory() shows the two proofs remembered in a table of $CAPACITY" used

# The verify endpoint, one cache per server (the fake CA counts requests).
python3 tests/fake_ca.py "$CA_PORT" &
CA_PID=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$CA_PORT") 2>/dev/null && break; sleep 0.1; done
set_verify_url() {
  "${PSQL[@]}" -d "$DB" -c "ALTER DATABASE $DB SET kakunin.verify_url = 'http://127.0.0.1:$CA_PORT/v1/$1/verify/'" >/dev/null
}
set_verify_url active/agent-b
# Waiters wait within their own budget: generous, for a slow machine.
"${PSQL[@]}" -d "$DB" -c "ALTER DATABASE $DB SET kakunin.verify_timeout_ms = 10000" >/dev/null
shared_answer() {
  before=$(ca_requests)
  bind "$PORT" "$(echo "$PROOFS" | proof_n 3)" | grep -q "agent-b active" || { echo "first bind failed"; return 1; }
  bind "$PORT" "$(echo "$PROOFS" | proof_n 4)" | grep -q "agent-b active" || { echo "second bind failed"; return 1; }
  after=$(ca_requests)
  [ $((after - before)) = 1 ] || { echo "the CA received $((after - before)) requests for one serial"; return 1; }
}
check "a second backend binding the same serial is answered from the shared cache (1 request)" shared_answer
# A role whose verify_url names another CA gets that CA's answer, not the cached one.
"${PSQL[@]}" -d "$DB" -c "ALTER ROLE shm_other SET kakunin.verify_url = 'http://127.0.0.1:$CA_PORT/v1/revoked/agent-b/verify/'" >/dev/null
check "the shared cache is keyed by the whole URL: another CA's answer for the same serial is its own" \
  expect "agent-b revoked" bind_other "$PORT" "$(echo "$PROOFS" | proof_n 6)"
dropped() {
  serial=$(sed -n 's/^agent-b.pem //p' tests/fixtures/pki/serials.txt)
  "${PSQL[@]}" -d "$DB" -c "SELECT kakunin.set_certificate_status('$serial', 'suspended')" >/dev/null
  before=$(ca_requests)
  bind "$PORT" "$(echo "$PROOFS" | proof_n 5)" | grep -q "agent-b suspended" || { echo "bind after the change failed"; return 1; }
  after=$(ca_requests)
  [ $((after - before)) = 1 ] || { echo "after a registry change the CA received $((after - before)) requests, not 1"; return 1; }
  "${PSQL[@]}" -d "$DB" -c "SELECT kakunin.set_certificate_status('$serial', 'active')" >/dev/null
}
check "a registry change drops the shared answer at once (the next bind asks again)" dropped
# Eight backends bind one uncached serial at once against a CA that takes 0.5 s.
set_verify_url slow/agent-a
A_PROOFS=$(PROOF_AGENT=agent-a proofs "primary-1/$DB" 8 59 a)
single_flight() {
  before=$(ca_requests)
  for i in $(seq 8); do
    BIND_CERT=$(cat tests/fixtures/pki/agent-a-chain.pem) bind "$PORT" "$(echo "$A_PROOFS" | proof_n "$i")" > "$WORK/a$i.out" &
  done
  wait
  after=$(ca_requests)
  bound=$(cat "$WORK"/a*.out | grep -c "agent-a active")
  [ "$bound" = 8 ] || { echo "$bound of 8 binds succeeded:"; cat "$WORK"/a*.out; return 1; }
  [ $((after - before)) = 1 ] || { echo "the CA received $((after - before)) requests for one serial"; return 1; }
}
check "concurrent binds of one uncached serial wait for a single request (8 binds, 1 request)" single_flight
"${PSQL[@]}" -d "$DB" -c "ALTER DATABASE $DB RESET kakunin.verify_url" >/dev/null

# Fill the replay memory: 14 proofs were accepted above (1 READ ONLY, 1 GET,
# 4 with the verify endpoint, 8 at once); more bind until every slot holds a
# fresh proof, then the next is refused, and a proof it remembers is still
# refused (nothing fresh is ever evicted).
fill() {
  i=6 n=0
  while [ $i -lt 40 ]; do
    i=$((i + 1))
    out=$(bind "$PORT" "$(echo "$PROOFS" | proof_n "$i")" 2>&1) || break
    n=$((n + 1))
  done
  case $out in *"are all still fresh"*) ;; *) echo "proof $i: $out"; return 1 ;; esac
  [ $((14 + n)) = "$CAPACITY" ] || { echo "refused after $((14 + n)) proofs, not $CAPACITY"; return 1; }
}
check "proofs bind up to kakunin.proof_replay_capacity ($CAPACITY); then one more is refused while all are fresh (54000)" fill
check "a remembered proof is still refused with the memory full" \
  expect "was already used (replay)" bind "$PORT" "$(echo "$PROOFS" | proof_n 3)"

# A streaming hot standby, preloaded, with its own name.
"${PSQL[@]}" -d "$DB" -c "CHECKPOINT" >/dev/null
as_run_user "$PG_BIN/pg_basebackup" -h "$SOCK" -p "$PORT" -U "$RUN_USER" -D "$REPLICA" -R -X stream >/dev/null 2>&1
as_run_user "$PG_BIN/pg_ctl" -D "$REPLICA" -l "$WORK/replica.log" \
  -o "-p $REPLICA_PORT -k $SOCK -c listen_addresses='' -c hot_standby=on -c shared_preload_libraries=kakunin_pg -c kakunin.proof_audience=replica-1 -c kakunin.proof_replay_per_key=2" \
  -w start >/dev/null
sleep 2
REPLICA_PROOFS=$(proofs "replica-1/$DB" 3 59 r)
standby() { [ "$("${PSQL[@]}" -p "$REPLICA_PORT" -d "$DB" -c "SELECT pg_is_in_recovery()")" = t ]; }
check "the standby is in recovery" standby
check "a proof binds on the hot standby" expect "agent-b" bind "$REPLICA_PORT" "$(echo "$REPLICA_PROOFS" | proof_n 1)"
check "and its replay on the same standby is refused" \
  expect "was already used (replay)" bind "$REPLICA_PORT" "$(echo "$REPLICA_PROOFS" | proof_n 1)"
per_key() {
  bind "$REPLICA_PORT" "$(echo "$REPLICA_PROOFS" | proof_n 2)" | grep -q agent-b || { echo "the second proof was refused"; return 1; }
  expect "already has 2 proofs remembered in the last 360 s (kakunin.proof_replay_per_key)" \
    bind "$REPLICA_PORT" "$(echo "$REPLICA_PROOFS" | proof_n 3)"
}
check "one key may have kakunin.proof_replay_per_key (2 here) proofs remembered; the next is refused (54000)" per_key
check "a proof made for the primary is refused on the standby (kakunin.proof_audience)" \
  expect "aud does not name the current database" bind "$REPLICA_PORT" "$(echo "$PROOFS" | proof_n 1)"
