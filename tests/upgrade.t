#!/usr/bin/env bash
# TAP: every shipped version upgrades to this one. For each install script in
# sql/released/, a database created at that version (with audit entries and a
# checkpoint made by it) is updated with ALTER EXTENSION … UPDATE and must end
# up with exactly the objects of a fresh install (tests/upgrade/catalog.sql),
# with its audit log still verifying. The released install script of the
# current version itself must give exactly the objects this tree installs
# (a re-layout of the code changed nothing in SQL).
# Usage (from scripts/pgtap.sh): tests/upgrade.t SOCKET PORT USER
set -uo pipefail
SOCK=$1 PORT=$2 RUN_USER=$3
source scripts/pg.sh
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$RUN_USER")
EXTDIR=$("$PG_CONFIG" --sharedir)/extension
CURRENT=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
WORK=$(mktemp -d)
# The current version's released script is installed in place of the built one
# for its check only; the built one is put back on exit.
cp "$EXTDIR/kakunin_pg--$CURRENT.sql" "$WORK/built.sql"
trap 'cp "$WORK/built.sql" "$EXTDIR/kakunin_pg--$CURRENT.sql"; rm -rf "$WORK"' EXIT
releases=(sql/released/kakunin_pg--*.sql)
echo "1..$((1 + 4 * ${#releases[@]}))"
source tests/tap.sh
fresh_db() { "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"; }

fresh_db upgrade_fresh >/dev/null
"${PSQL[@]}" -d upgrade_fresh -c "SET client_min_messages = warning" -c "CREATE EXTENSION kakunin_pg"
"${PSQL[@]}" -d upgrade_fresh -f tests/upgrade/catalog.sql > "$WORK/fresh.txt"
has_objects() { [ "$(wc -l < "$WORK/fresh.txt")" -gt 100 ] || { echo "only $(wc -l < "$WORK/fresh.txt") catalog lines"; return 1; }; }
check "a fresh $CURRENT install lists its objects" has_objects

for script in "${releases[@]}"; do
  version=${script##*--}; version=${version%.sql}
  cp "$script" "$EXTDIR/"
  db=upgrade_from_${version//./_}
  fresh_db "$db" >/dev/null
  created() {
    "${PSQL[@]}" -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION kakunin_pg VERSION '$version'" &&
    "${PSQL[@]}" -d "$db" -c "INSERT INTO kakunin.audit_log (actor_id, action, payload)
        SELECT 'agent-' || g, 'made.by.$version', jsonb_build_object('n', g, 'price', 1.50) FROM generate_series(1, 50) g" \
      -c "SELECT count(*) FROM kakunin.audit_checkpoint()" >/dev/null
  }
  check "$version installs and writes an audit log" created
  updated() {
    "${PSQL[@]}" -d "$db" -c "ALTER EXTENSION kakunin_pg UPDATE" &&
    [ "$("${PSQL[@]}" -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'kakunin_pg'")" = "$CURRENT" ]
  }
  check "$version updates to $CURRENT" updated
  if [ "$version" = "$CURRENT" ]; then cp "$WORK/built.sql" "$EXTDIR/kakunin_pg--$CURRENT.sql"; fi
  same_objects() {
    "${PSQL[@]}" -d "$db" -f tests/upgrade/catalog.sql > "$WORK/upgraded.txt" &&
    diff "$WORK/fresh.txt" "$WORK/upgraded.txt"
  }
  check "$version updated to $CURRENT has exactly a fresh install's objects" same_objects
  still_verifies() {
    "${PSQL[@]}" -d "$db" -c "INSERT INTO kakunin.audit_log (actor_id, action) VALUES ('agent-x', 'made.by.$CURRENT')" &&
    result=$("${PSQL[@]}" -d "$db" -c "SELECT v->>'ok' || ' ' || (v->>'entries') || ' ' || (v->>'checkpoints')
                                         FROM kakunin.verify_audit_log() v") &&
    [ "$result" = "true 51 1" ] || { echo "verify_audit_log: $result"; return 1; }
  }
  check "the audit log written by $version verifies after the update, with new entries" still_verifies
  "${PSQL[@]}" -d postgres -c "DROP DATABASE $db"
done
"${PSQL[@]}" -d postgres -c "DROP DATABASE upgrade_fresh"
