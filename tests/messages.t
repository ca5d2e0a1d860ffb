#!/usr/bin/env bash
# TAP: errors reach clients in the caller's terms, with no Rust backtrace, build
# path or type name, even when the server runs with RUST_BACKTRACE=1 in its
# environment (issue 15): message, DETAIL, HINT and CONTEXT at the default
# verbosity (VERBOSITY verbose adds PostgreSQL's usual LOCATION, source file and
# function, as for any extension). Its own throwaway cluster.
# Usage (from scripts/pgtap.sh): tests/messages.t PORT
set -uo pipefail
PORT=$1
source scripts/pg.sh
WORK=$(mktemp -d)
chown "$RUN_USER" "$WORK"
DATA=$WORK/data SOCK=$WORK/sock DB=messages_test
trap 'cluster_stop "$DATA" 2>/dev/null; rm -rf "$WORK"' EXIT
PSQL=(psql -X -q -At -h "$SOCK" -p "$PORT" -U "$RUN_USER")
echo "1..5"
source tests/tap.sh

mkdir -p "$SOCK" && chown "$RUN_USER" "$SOCK"
as_run_user "$PG_BIN/initdb" -D "$DATA" -U "$RUN_USER" --auth=trust -E UTF8 >/dev/null
sudo -u "$RUN_USER" env RUST_BACKTRACE=1 "$PG_BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" \
  -o "-p $PORT -k $SOCK -c listen_addresses=''" -w start >/dev/null
"${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB" >/dev/null
"${PSQL[@]}" -d "$DB" -c "SET client_min_messages = warning" -c "CREATE EXTENSION kakunin_pg" >/dev/null

server_env() { as_run_user grep -qz '^RUST_BACKTRACE=1$' "/proc/$(head -1 "$DATA/postmaster.pid")/environ"; }
check "the server runs with RUST_BACKTRACE=1" server_env

# An error raised by PostgreSQL inside the extension's own SPI statement (the
# audit INSERT's CHECK on action), and one raised by the extension itself.
clean() { # clean SQL EXPECTED-MESSAGE
  local out
  out=$("${PSQL[@]}" -d "$DB" -c "$1" 2>&1)
  echo "$out"
  grep -q "$2" <<<"$out" || { echo "expected: $2"; return 1; }
  ! grep -Eiq 'backtrace|\.rs:[0-9]|/src/|::|pgrx|kakunin_pg::' <<<"$out"
}
check "an SPI error inside the extension carries no backtrace, path or type name" \
  clean "SELECT kakunin.audit(repeat('x', 300))" 'violates check constraint "audit_log_action_check"'
check "nor does an error the extension raises" \
  clean "SELECT kakunin.audit_inclusion_proof(-1)" 'seq must be 0 or more (got -1)'

# A database that is not UTF8 is refused at CREATE EXTENSION, saying why
# (before, it installed, and text that was not UTF-8 reached the functions as a
# Rust decoding error), and nothing of the extension is left behind.
"${PSQL[@]}" -d postgres -c "CREATE DATABASE ascii_test ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
ascii() { "${PSQL[@]}" -d ascii_test -c "$1" 2>&1; }
refused() {
  local out
  out=$(ascii "CREATE EXTENSION kakunin_pg")
  echo "$out"
  grep -q 'ERROR:  kakunin_pg needs a database with UTF8 encoding; this one is SQL_ASCII' <<<"$out" \
    && grep -q "HINT:  Create the database with ENCODING 'UTF8'" <<<"$out"
}
check "CREATE EXTENSION in a SQL_ASCII database is refused with the reason and a hint" refused
nothing_left() {
  [ "$(ascii "SELECT count(*) FROM pg_namespace WHERE nspname = 'kakunin'")" = 0 ] \
    && [ "$(ascii "SELECT count(*) FROM pg_extension WHERE extname = 'kakunin_pg'")" = 0 ]
}
check "and nothing of the extension is left in that database" nothing_left
