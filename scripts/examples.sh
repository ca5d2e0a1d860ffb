#!/usr/bin/env bash
# Runs every example project under examples/ the way the Supabase CLI lays them
# out (supabase/migrations/*.sql applied in name order, then pg_prove on
# supabase/tests/*.sql), each in a fresh database shaped like a Supabase one:
# its roles (anon, authenticated, service_role with BYPASSRLS, authenticator,
# all as Supabase creates them), a schema `extensions` on the search_path.
# Its own throwaway cluster (port 55449, +100 for PG=18), so Supabase's role
# attributes never meet the pgTAP suite's roles. Expects this build installed
# (scripts/pgtap.sh installs it); called by scripts/test.sh; alone:
#   bash scripts/examples.sh [examples/NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh

DIR=/tmp/kakunin-examples-$PG
DATA=$DIR/data
SOCK=$DIR/sock
PORT=$((55449 + PORT_BASE))
trap 'cluster_stop "$DATA" || true' EXIT
cluster_start "$DATA" "$PORT" "$SOCK"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$RUN_USER")

# Supabase's roles (cluster-wide; this cluster is only for the examples).
"${PSQL[@]}" -d postgres <<'SQL'
SET client_min_messages = warning;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
        CREATE ROLE authenticator LOGIN NOINHERIT;
        GRANT anon, authenticated, service_role TO authenticator;
    END IF;
END $$;
SQL

projects=("$@")
[ ${#projects[@]} -gt 0 ] || projects=(examples/*/)
for project in "${projects[@]}"; do
  project=${project%/}
  db=example_$(basename "$project")
  printf '%s (database %s)\n' "$project" "$db"
  "${PSQL[@]}" -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  "${PSQL[@]}" -d "$db" <<SQL
CREATE SCHEMA extensions;
GRANT USAGE ON SCHEMA public, extensions TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DATABASE $db SET search_path = "\$user", public, extensions;
SQL
  for migration in "$project"/supabase/migrations/*.sql; do
    "${PSQL[@]}" -d "$db" -f "$migration" >/dev/null
  done
  pg_prove -h "$SOCK" -p "$PORT" -U "$RUN_USER" -d "$db" "$project"/supabase/tests/*.sql
done
