#!/usr/bin/env bash
# The pgTAP suite: installs this build, starts a throwaway cluster (port 55439)
# with PgBouncer in front (56439, transaction mode, one server connection)
# and a fake CA verify endpoint (57439, tests/fake_ca.py) — each port 100 higher
# and its own folders for PG=18 (PG=15 is the default),
# loads fixtures with freshly signed proofs and runs pg_prove on the given
# files (default: all of tests/pgtap). Called by scripts/test.sh; handy alone
# while working on one file: bash scripts/pgtap.sh tests/pgtap/11_webhooks.sql
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh

export PG
DIR=/tmp/kakunin-test-$PG
DATA=$DIR/data
SOCK=$DIR/sock
PORT=$((55439 + PORT_BASE))
BOUNCER_PORT=$((56439 + PORT_BASE))
DB=kakunin_test
BOUNCER=$DIR/bouncer
FAKE_CA_PORT=$((57439 + PORT_BASE))

cleanup() {
  [ -n "${FAKE_CA_PID:-}" ] && kill "$FAKE_CA_PID" 2>/dev/null || true
  [ -f "$BOUNCER/pgbouncer.pid" ] && kill "$(cat "$BOUNCER/pgbouncer.pid")" 2>/dev/null || true
  cluster_stop "$DATA" || true
}
trap cleanup EXIT

install_extension
cluster_start "$DATA" "$PORT" "$SOCK" "max_worker_processes=16" "max_parallel_workers=8" \
  "wal_level=replica" "max_wal_senders=4"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$RUN_USER")
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
# Fixtures first (setup.sql reads them); proofs inside are fresh for five minutes.
cargo run --quiet -p kakunin-testkit --bin kakunin-fixtures -- "$DB" > "$DIR/fixtures.sql"
"${PSQL[@]}" -d "$DB" -f "$DIR/fixtures.sql"
"${PSQL[@]}" -d "$DB" -f tests/pgtap/setup.sql >/dev/null

mkdir -p "$BOUNCER"
cat > "$BOUNCER/pgbouncer.ini" <<INI
[databases]
$DB = host=$SOCK port=$PORT dbname=$DB
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $BOUNCER/users.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 20
pidfile = $BOUNCER/pgbouncer.pid
logfile = $BOUNCER/pgbouncer.log
INI
printf '"gateway_app" ""\n' > "$BOUNCER/users.txt"
chown -R "$RUN_USER" "$BOUNCER"
if [ -f "$BOUNCER/pgbouncer.pid" ]; then
  kill "$(cat "$BOUNCER/pgbouncer.pid")" 2>/dev/null && sleep 0.5 || true
fi
as_run_user pgbouncer -d "$BOUNCER/pgbouncer.ini"

# The fake CA verify endpoint (a real HTTP server on 127.0.0.1).
python3 tests/fake_ca.py "$FAKE_CA_PORT" &
FAKE_CA_PID=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$FAKE_CA_PORT") 2>/dev/null && break
  sleep 0.1
done

cargo build --quiet -p verify-evidence
# Arguments: pgTAP files (*.sql) for pg_prove and TAP scripts (*.t) for prove;
# none: every one of both.
sql=() taps=()
for arg in "$@"; do
  case $arg in *.t) taps+=("$arg") ;; *) sql+=("$arg") ;; esac
done
if [ $# -eq 0 ]; then
  sql=(tests/pgtap/[0-9][0-9]_*.sql)
  taps=(tests/evidence.t tests/audit_resilience.t tests/upgrade.t tests/audit_worker.t
        tests/messages.t tests/dump_restore.t tests/shared_memory.t)
fi
if [ ${#sql[@]} -gt 0 ]; then
  PGOPTIONS="-c kakunin_test.bouncer_port=$BOUNCER_PORT -c kakunin_test.socket=$SOCK -c kakunin_test.fake_ca=http://127.0.0.1:$FAKE_CA_PORT" \
    pg_prove -h "$SOCK" -p "$PORT" -U "$RUN_USER" -d "$DB" "${sql[@]}"
fi
# What crosses a process boundary (the offline verifier, a standby, restarts,
# upgrades, dump and restore), each with the arguments it needs.
for tap in "${taps[@]}"; do
  case $tap in
    tests/evidence.t) args=("$SOCK" "$PORT" "$DB" "$RUN_USER") ;;
    tests/audit_resilience.t) args=("$DATA" "$SOCK" "$PORT" "$DB" "$RUN_USER") ;;
    tests/audit_worker.t) args=("$((PORT + 5))") ;;
    tests/messages.t) args=("$((PORT + 6))") ;;
    tests/shared_memory.t) args=("$((PORT + 7))") ;;
    *) args=("$SOCK" "$PORT" "$RUN_USER") ;;
  esac
  prove --exec bash "$tap" :: "${args[@]}"
done
