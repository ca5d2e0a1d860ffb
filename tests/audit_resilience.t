#!/usr/bin/env bash
# TAP: the audit log survives a kill -9 of a backend mid-append and an
# immediate shutdown under load with every committed entry present and a log
# that verifies; a streaming hot standby reads and verifies it without writing.
# Usage (from scripts/pgtap.sh): tests/audit_resilience.t DATA SOCKET PORT DATABASE USER
set -uo pipefail
DATA=$1 SOCK=$2 PORT=$3 DB=$4 RUN_USER=$5
source scripts/pg.sh
PSQL=(psql -X -q -At -h "$SOCK" -p "$PORT" -U "$RUN_USER" -d "$DB")
WORK=$(mktemp -d)
chown "$RUN_USER" "$WORK"
REPLICA=$WORK/replica
REPLICA_PORT=$((PORT + 3000))
cleanup() {
  cluster_stop "$REPLICA" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
echo "1..8"
source tests/tap.sh

# Appenders run as the superuser (allowed to append as anyone) and record each
# committed append's id in a side table in the same transaction, so "committed"
# is checkable after the crash.
"${PSQL[@]}" -c "CREATE TABLE IF NOT EXISTS committed_appends (id bigint PRIMARY KEY)" >/dev/null
cat > "$WORK/append.sql" <<'SQL'
BEGIN;
INSERT INTO committed_appends SELECT kakunin.audit('load.test', jsonb_build_object('at', clock_timestamp()));
COMMIT;
SQL

load() { # load SECONDS: 4 appending clients
  pgbench -n -c 4 -j 2 -T "$1" -h "$SOCK" -p "$PORT" -U "$RUN_USER" -f "$WORK/append.sql" "$DB" >/dev/null 2>&1
}
all_committed_present() {
  missing=$("${PSQL[@]}" -c "SELECT count(*) FROM committed_appends c LEFT JOIN kakunin.audit_log a USING (id) WHERE a.id IS NULL")
  [ "$missing" = 0 ] || { echo "$missing committed appends are missing"; return 1; }
}
verifies() {
  result=$("${PSQL[@]}" -c "SELECT kakunin.verify_audit_log()->>'ok'")
  [ "$result" = true ] || { "${PSQL[@]}" -c "SELECT kakunin.verify_audit_log()"; return 1; }
}
wait_up() {
  for _ in $(seq 100); do "${PSQL[@]}" -c "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# 1. kill -9 of a backend in the middle of appending.
load 6 &
sleep 2
# A client may be between statements (BEGIN, COMMIT) when sampled: look again.
victim=
for _ in $(seq 50); do
  victim=$("${PSQL[@]}" -c "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%kakunin.audit%' AND pid <> pg_backend_pid() LIMIT 1")
  [ -n "$victim" ] && break
  sleep 0.1
done
[ -n "$victim" ] && kill -9 "$victim"
wait
killed() { [ -n "$victim" ] || { echo "no appending backend was found to kill"; return 1; }; }
check "an appending backend was killed with SIGKILL" killed
check "the server recovers after kill -9 of an appending backend" wait_up
check "every committed entry is present after kill -9" all_committed_present
check "the log verifies after kill -9" verifies

# 2. An immediate shutdown under load.
load 6 &
sleep 2
as_run_user "$PG_BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null
wait
as_run_user "$PG_BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w restart >/dev/null 2>&1  # reuses postmaster.opts
check "every committed entry is present after an immediate shutdown" all_committed_present
check "the log verifies after an immediate shutdown" verifies

# 3. A streaming hot standby reads and verifies, attempting no writes.
"${PSQL[@]}" -c "SELECT kakunin.audit_checkpoint()" >/dev/null
as_run_user "$PG_BIN/pg_basebackup" -h "$SOCK" -p "$PORT" -U "$RUN_USER" -D "$REPLICA" -R -X stream >/dev/null 2>&1
# A hot standby needs these at least as high as on the primary.
same=""
for setting in max_connections max_worker_processes max_wal_senders max_prepared_transactions max_locks_per_transaction; do
  same="$same -c $setting=$("${PSQL[@]}" -c "SHOW $setting")"
done
as_run_user "$PG_BIN/pg_ctl" -D "$REPLICA" -l "$WORK/replica.log" \
  -o "-p $REPLICA_PORT -k $SOCK -c listen_addresses='' -c hot_standby=on $same" -w start >/dev/null
REPLICA_PSQL=(psql -X -q -At -h "$SOCK" -p "$REPLICA_PORT" -U "$RUN_USER" -d "$DB")
on_standby() {
  [ "$("${REPLICA_PSQL[@]}" -c "SELECT pg_is_in_recovery()")" = t ] || return 1
  r=$("${REPLICA_PSQL[@]}" -c "SELECT kakunin.verify_audit_log()->>'ok'")
  [ "$r" = true ] || { echo "verify on the standby: $r"; return 1; }
}
check "a hot standby verifies the log (read-only, no writes attempted)" on_standby
proof_on_standby() {
  "${REPLICA_PSQL[@]}" -c "SELECT kakunin.audit_inclusion_proof(0)->>'root_hash'" | grep -Eq '^[0-9a-f]{64}$'
}
check "a hot standby serves inclusion proofs" proof_on_standby
