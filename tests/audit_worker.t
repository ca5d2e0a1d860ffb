#!/usr/bin/env bash
# TAP: with kakunin_pg in shared_preload_libraries and
# kakunin.audit_worker_database set, the background worker waits until the
# extension exists, then places committed entries and signs the due checkpoint
# while nobody appends or reads through kakunin, in commit order rather than
# arrival order. Its own throwaway cluster.
# Usage (from scripts/pgtap.sh): tests/audit_worker.t PORT
set -uo pipefail
PORT=$1
source scripts/pg.sh
WORK=$(mktemp -d)
chown "$RUN_USER" "$WORK"
DATA=$WORK/data SOCK=$WORK/sock DB=worker_test
trap 'cluster_stop "$DATA" 2>/dev/null; rm -rf "$WORK"' EXIT
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$RUN_USER")
echo "1..13"
source tests/tap.sh
eventually() { # eventually EXPECTED SQL: polls for up to 30 s
  for _ in $(seq 150); do
    got=$("${PSQL[@]}" -d "$DB" -c "$2" 2>&1)
    [ "$got" = "$1" ] && return 0
    sleep 0.2
  done
  echo "expected '$1', still '$got'"
  return 1
}

cluster_start "$DATA" "$PORT" "$SOCK"
"${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB"
cluster_start "$DATA" "$PORT" "$SOCK" "shared_preload_libraries=kakunin_pg" \
  "kakunin.audit_worker_database=$DB" "kakunin.audit_worker_naptime=200ms" "kakunin.audit_checkpoint_interval=1s"
worker_pid() { "${PSQL[@]}" -d "$DB" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'kakunin audit sequencer'"; }
check "the worker runs, connected to $DB" \
  eventually "1" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kakunin audit sequencer' AND datname = '$DB'"
first=$(worker_pid)
sleep 1
waits() { [ "$(worker_pid)" = "$first" ] || { echo "worker restarted: $first -> $(worker_pid)"; return 1; }; }
check "without the extension it waits instead of failing" waits

"${PSQL[@]}" -d "$DB" -c "SET client_min_messages = warning" -c "CREATE EXTENSION kakunin_pg"
# Plain INSERTs only: nothing here calls a kakunin function that integrates.
"${PSQL[@]}" -d "$DB" -c "INSERT INTO kakunin.audit_log (actor_id, action, payload)
  SELECT 'agent-' || g, 'worker.test', jsonb_build_object('n', g) FROM generate_series(1, 100) g"
check "committed entries are placed with nobody appending or reading" \
  eventually "100 0" "SELECT count(*) || ' ' || count(*) FILTER (WHERE seq IS NULL) FROM kakunin.audit_log"
check "a checkpoint covering them is signed automatically" \
  eventually "100" "SELECT max(tree_size) FROM kakunin.audit_checkpoints"
check "the log the worker built verifies" \
  eventually "true" "SELECT kakunin.verify_audit_log()->>'ok'"

# X arrives first (through kakunin.audit, which leaves integration to the
# worker, so X's open transaction holds no sequencer lock) but commits only
# once the worker has placed Y, which arrived second: positions follow commit
# order.
"${PSQL[@]}" -d "$DB" -c "SET statement_timeout = '30s'" -c "BEGIN" \
  -c "SELECT kakunin.audit('arrived.first')" \
  -c "DO \$\$ BEGIN
        WHILE NOT EXISTS (SELECT FROM kakunin.audit_log WHERE action = 'arrived.second' AND seq IS NOT NULL) LOOP
          PERFORM pg_sleep(0.05);
        END LOOP;
      END \$\$" -c "COMMIT" >/dev/null &
eventually "1" "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'DO %arrived.second%'" >/dev/null
"${PSQL[@]}" -d "$DB" -c "INSERT INTO kakunin.audit_log (actor_id, action) VALUES ('agent-y', 'arrived.second')"
wait
check "positions follow commit order, not arrival order; an open appender blocks no one" \
  eventually "x arrived first, y placed first" \
  "SELECT CASE WHEN x.id < y.id THEN 'x arrived first' ELSE 'y arrived first' END || ', '
       || CASE WHEN y.seq < x.seq THEN 'y placed first' ELSE 'x placed first (or unplaced)' END
   FROM kakunin.audit_log x, kakunin.audit_log y
   WHERE x.action = 'arrived.first' AND y.action = 'arrived.second' AND x.seq IS NOT NULL"

# A non-superuser database owner puts look-alike operators first on the
# database's search_path; after a restart the worker connects with it.
"${PSQL[@]}" -d postgres -c "CREATE ROLE db_owner LOGIN" -c "ALTER DATABASE $DB OWNER TO db_owner"
"${PSQL[@]}" -d "$DB" -U db_owner -c "CREATE SCHEMA evil" -c "CREATE TABLE evil.hits (who text)" \
  -c "GRANT USAGE ON SCHEMA evil TO PUBLIC" -c "GRANT INSERT ON evil.hits TO PUBLIC" \
  -c "CREATE FUNCTION evil.trap() RETURNS bool LANGUAGE plpgsql AS \$\$ BEGIN
        INSERT INTO evil.hits VALUES (current_user);
        IF current_user <> 'db_owner' THEN EXECUTE 'ALTER ROLE db_owner SUPERUSER'; END IF;
        RETURN true; END \$\$" \
  -c "CREATE FUNCTION evil.plus(a bigint, b integer) RETURNS bigint LANGUAGE sql AS
        \$\$ SELECT a OPERATOR(pg_catalog.+) b WHERE evil.trap() \$\$" \
  -c "CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = evil.plus)" \
  -c "CREATE FUNCTION evil.lt(a bigint, b bigint) RETURNS bool LANGUAGE sql AS
        \$\$ SELECT a OPERATOR(pg_catalog.<) b WHERE evil.trap() \$\$" \
  -c "CREATE OPERATOR evil.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.lt)" \
  -c "ALTER DATABASE $DB SET search_path = evil, pg_catalog" >/dev/null
cluster_start "$DATA" "$PORT" "$SOCK" "shared_preload_libraries=kakunin_pg" \
  "kakunin.audit_worker_database=$DB" "kakunin.audit_worker_naptime=200ms" "kakunin.audit_checkpoint_interval=1s"
"${PSQL[@]}" -d "$DB" -c "INSERT INTO kakunin.audit_log (actor_id, action) SELECT 'agent-h', 'hostile.path' FROM generate_series(1, 10)"
check "the worker places entries under a hostile database search_path" \
  eventually "0" "SELECT count(*) FROM kakunin.audit_log WHERE seq IS NULL"
sleep 1.5  # past kakunin.audit_checkpoint_interval: the worker checks whether a checkpoint is due
check "and none of the owner's operators ran: it is no superuser" \
  eventually "0 false" "SELECT (SELECT count(*) FROM evil.hits) || ' ' || (SELECT rolsuper FROM pg_roles WHERE rolname = 'db_owner')"
control() { # the same SQL the checkpoint check used to run, unqualified, does reach the trap
  "${PSQL[@]}" -d "$DB" -U db_owner -c "SELECT max(seq) + 1 FROM kakunin.audit_log" >/dev/null &&
  [ "$("${PSQL[@]}" -d "$DB" -c "SELECT count(*) FROM evil.hits")" -gt 0 ]
}
check "control: unqualified SQL under that path runs the owner's operator" control

# Terminated (as DROP DATABASE … WITH (FORCE) or pg_terminate_backend do), the
# worker is started again by PostgreSQL; meanwhile the lag is visible.
before=$(worker_pid)
"${PSQL[@]}" -d "$DB" -c "SELECT pg_terminate_backend($before)" >/dev/null
check "while the worker is away, audit_lag() says so" \
  eventually "false" "SELECT kakunin.audit_lag()->>'worker_running'"
"${PSQL[@]}" -d "$DB" -c "SELECT kakunin.audit('while.away')" >/dev/null
check "an entry appended while it was away is placed once it is back" \
  eventually "1" "SELECT count(*) FROM kakunin.audit_log WHERE action = 'while.away' AND seq IS NOT NULL"
check "PostgreSQL starts the worker again after it was terminated" \
  eventually "true" "SELECT (count(*) = 1)::text FROM pg_stat_activity WHERE backend_type = 'kakunin audit sequencer' AND pid <> $before"

# Eight clients appending while admins checkpoint and the worker integrates:
# no transaction fails (a busy sequencer is skipped or waited for, never an error).
printf "SELECT kakunin.audit('bench', '{}');\n" > "$WORK/append.sql"
printf "SELECT count(*) FROM kakunin.audit_checkpoint();\n" > "$WORK/checkpoint.sql"
chmod 644 "$WORK"/*.sql
concurrent() {
  local out
  out=$(as_run_user "$PG_BIN/pgbench" -n -h "$SOCK" -p "$PORT" -U "$RUN_USER" -c 8 -j 2 -T 4 \
        -f "$WORK/append.sql@9" -f "$WORK/checkpoint.sql@1" "$DB" 2>&1) || { echo "$out"; return 1; }
  grep -q "number of failed transactions: 0" <<<"$out" || grep -q "^number of transactions actually processed" <<<"$out" || { echo "$out"; return 1; }
  ! grep -qi "error" <<<"$out" || { echo "$out"; return 1; }
}
check "8 concurrent appenders with checkpoints and the worker: no transaction fails" concurrent
