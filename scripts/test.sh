#!/usr/bin/env bash
# Runs every test: formatting and lints, plain Rust unit tests, the #[pg_test]s
# inside a real backend, and the pgTAP suite (with a real PgBouncer) against a
# throwaway cluster running the extension built from this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash scripts/setup.sh
source scripts/pg.sh

DATA=/tmp/kakunin-test/data
SOCK=/tmp/kakunin-test/sock
PORT=55439
BOUNCER_PORT=56439
DB=kakunin_test
step() { printf '\n=== %s\n' "$*"; }

cleanup() {
  [ -f /tmp/kakunin-test/bouncer/pgbouncer.pid ] && kill "$(cat /tmp/kakunin-test/bouncer/pgbouncer.pid)" 2>/dev/null || true
  cluster_stop "$DATA" || true
}
trap cleanup EXIT

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "unit tests (plain Rust)"
cargo test --quiet -p kakunin-core -p kakunin-testkit

step "#[pg_test] tests inside PostgreSQL"
mkdir -p /tmp/kakunin-pgrx && chown "$RUN_USER" /tmp/kakunin-pgrx
cargo pgrx test pg15 --runas "$RUN_USER" --pgdata /tmp/kakunin-pgrx

step "pgTAP suite"
# `cargo pgrx test` left its test build installed; install the real one.
install_extension
cluster_start "$DATA" "$PORT" "$SOCK" "max_worker_processes=16" "max_parallel_workers=8"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$RUN_USER")
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
# Fixtures first (setup.sql reads them); proofs inside are fresh for five minutes.
cargo run --quiet -p kakunin-testkit --bin kakunin-fixtures -- "$DB" | "${PSQL[@]}" -d "$DB"
"${PSQL[@]}" -d "$DB" -f tests/pgtap/setup.sql >/dev/null

# PgBouncer in transaction mode with one server connection, in front of the cluster.
mkdir -p /tmp/kakunin-test/bouncer && chown "$RUN_USER" /tmp/kakunin-test/bouncer
cat > /tmp/kakunin-test/bouncer/pgbouncer.ini <<INI
[databases]
$DB = host=$SOCK port=$PORT dbname=$DB
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = /tmp/kakunin-test/bouncer/users.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 20
pidfile = /tmp/kakunin-test/bouncer/pgbouncer.pid
logfile = /tmp/kakunin-test/bouncer/pgbouncer.log
INI
printf '"gateway_app" ""\n' > /tmp/kakunin-test/bouncer/users.txt
chown -R "$RUN_USER" /tmp/kakunin-test/bouncer
[ -f /tmp/kakunin-test/bouncer/pgbouncer.pid ] && kill "$(cat /tmp/kakunin-test/bouncer/pgbouncer.pid)" 2>/dev/null && sleep 0.5
as_run_user pgbouncer -d /tmp/kakunin-test/bouncer/pgbouncer.ini

PGOPTIONS="-c kakunin_test.bouncer_port=$BOUNCER_PORT -c kakunin_test.socket=$SOCK" \
  pg_prove -h "$SOCK" -p "$PORT" -U "$RUN_USER" -d "$DB" tests/pgtap/[0-9][0-9]_*.sql
