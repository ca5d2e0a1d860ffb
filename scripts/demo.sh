#!/usr/bin/env bash
# The demo: installs prerequisites, builds and installs kakunin_pg, starts a
# throwaway PostgreSQL 15 as an unprivileged user, and walks through agent
# isolation. Leaves the cluster running; `make stop-demo` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=/tmp/kakunin-demo
PORT=55432
SOCK=$DEMO/sock
DB=kakunin_demo

if [ "${1:-}" = stop ]; then
  source scripts/pg.sh
  cluster_stop "$DEMO/data" && echo "demo cluster stopped"
  exit 0
fi

bash scripts/setup.sh
source scripts/pg.sh
echo "[demo] building and installing kakunin_pg (first time: a few minutes)"
install_extension
echo "[demo] minting a demo PKI with openssl (the README recipe)"
bash tests/fixtures/mint.sh "$DEMO/pki" >/dev/null
echo "[demo] starting a fresh PostgreSQL 15 on port $PORT (socket $SOCK) as user $RUN_USER"
cluster_stop "$DEMO/data" && rm -rf "$DEMO/data"
cluster_start "$DEMO/data" "$PORT" "$SOCK"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$RUN_USER")
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"

pem() { cat "$DEMO/pki/$1.pem"; }
"${PSQL[@]}" -d "$DB" \
  -v root="$(pem root-ca)" -v agent_a="$(pem agent-a; pem intermediate-ca)" -v agent_b="$(pem agent-b)" \
  -v rogue="$(pem rogue-agent)" -f scripts/demo.sql

cat <<MSG

The demo cluster is still running. Connect with:
    psql -h $SOCK -p $PORT -U $RUN_USER $DB
Stop it with:
    make stop-demo
MSG
