#!/usr/bin/env bash
# TAP: everything kakunin_pg stores survives pg_dump -> restore into a fresh
# database (CREATE EXTENSION replayed by the dump): statuses and revocations,
# keys that still verify and revoked ones still refused, the webhook secret,
# and the audit log verifying with the same public key, old checkpoints
# consistent with new ones, appends continuing the same tree (issue 15).
# Usage (from scripts/pgtap.sh): tests/dump_restore.t SOCKET PORT USER
set -uo pipefail
SOCK=$1 PORT=$2 RUN_USER=$3
source scripts/pg.sh
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$RUN_USER")
WORK=$(mktemp -d)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
SRC=dump_src DST=dump_dst
echo "1..8"
source tests/tap.sh
q() { "${PSQL[@]}" -d "$1" -c "$2"; }
equals() { # equals EXPECTED DB SQL
  local got; got=$(q "$2" "$3" 2>&1)
  [ "$got" = "$1" ] || { echo "expected '$1', got '$got'"; return 1; }
}
pem() { sed ':a;N;$!ba;s/\n/\\n/g' "tests/fixtures/pki/$1.pem"; }

for db in "$SRC" "$DST"; do q postgres "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1; done
q postgres "CREATE DATABASE $SRC" >/dev/null
q "$SRC" "SET client_min_messages = warning; CREATE EXTENSION kakunin_pg" >/dev/null
ROOT=$(cat tests/fixtures/pki/root-ca.pem)
AGENT_B=$(cat tests/fixtures/pki/agent-b.pem)
"${PSQL[@]}" -d "$SRC" -v root="$ROOT" -v b="$AGENT_B" >/dev/null <<'SQL'
SELECT kakunin.add_trust_anchor(:'root', 'root');
SELECT kakunin.set_certificate_status(kakunin.validate_certificate(:'b')->>'serial', 'revoked', 'test');
SELECT kakunin.set_agent_status('agent-gone', 'retired');
SELECT kakunin.set_webhook_secret('whsec_dump_restore_0123');
CREATE TABLE keys AS SELECT 'live' AS k, * FROM kakunin.create_api_key('agent-k', 'live', ARRAY['r'])
    UNION ALL SELECT 'dead', * FROM kakunin.create_api_key('agent-k', 'dead', ARRAY['r']);
SELECT kakunin.revoke_api_key(key_id) FROM keys WHERE k = 'dead';
SELECT kakunin.audit('before.dump', jsonb_build_object('n', g)) FROM generate_series(1, 20) g;
SELECT kakunin.audit_checkpoint();
SQL
old_key=$(q "$SRC" "SELECT kakunin.audit_public_key()")
old_size=$(q "$SRC" "SELECT max(tree_size) FROM kakunin.audit_checkpoints")
old_root=$(q "$SRC" "SELECT encode(root_hash, 'hex') FROM kakunin.audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
live=$(q "$SRC" "SELECT api_key FROM keys WHERE k = 'live'")
dead=$(q "$SRC" "SELECT api_key FROM keys WHERE k = 'dead'")

dumped() {
  as_run_user "$PG_BIN/pg_dump" -h "$SOCK" -p "$PORT" -U "$RUN_USER" -Fc -f "$WORK/src.dump" "$SRC" &&
  q postgres "CREATE DATABASE $DST" >/dev/null &&
  as_run_user "$PG_BIN/pg_restore" -h "$SOCK" -p "$PORT" -U "$RUN_USER" --exit-on-error -d "$DST" "$WORK/src.dump"
}
chown "$RUN_USER" "$WORK"
check "pg_dump and pg_restore into a fresh database succeed" dumped
check "a revoked certificate is still revoked, an agent's status kept" \
  equals "revoked retired" "$DST" "SELECT (kakunin.validate_certificate(\$\$$AGENT_B\$\$)->>'status') || ' ' ||
                                   (SELECT status FROM kakunin.agent_status WHERE agent_id = 'agent-gone')"
check "a key still verifies, a revoked key is still refused" \
  equals "true revoked" "$DST" "SELECT (kakunin.verify_api_key('$live')->>'valid') || ' ' || (kakunin.verify_api_key('$dead')->>'reason')"
body='{"event":"certificate.suspended","data":{"serial_number":"0abc"}}'
t=$(date +%s)
sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac 'whsec_dump_restore_0123' -r | cut -d' ' -f1)
check "the webhook secret came along: a signed delivery is applied" \
  equals "applied" "$DST" "SELECT kakunin.handle_webhook('$body', 't=$t,v1=$sig')->>'status'"
check "the audit log verifies, with the same public key" \
  equals "true $old_size 1 $old_key" "$DST" "SELECT (v->>'ok') || ' ' || (v->>'entries') || ' ' || (v->>'checkpoints') || ' ' || kakunin.audit_public_key()
                                        FROM kakunin.verify_audit_log() v"
q "$DST" "SELECT kakunin.audit('after.restore'); SELECT kakunin.audit_checkpoint()" >/dev/null
check "appends continue the same tree" \
  equals "$old_size" "$DST" "SELECT seq FROM kakunin.audit_log WHERE action = 'after.restore'"
check "the new checkpoint is consistent with the old one" \
  equals "$old_root" "$DST" "SELECT kakunin.audit_consistency_proof($old_size, $((old_size + 1)))->>'old_root'"
check "and the whole log still verifies" \
  equals "true $((old_size + 1)) 2" "$DST" "SELECT (v->>'ok') || ' ' || (v->>'entries') || ' ' || (v->>'checkpoints') FROM kakunin.verify_audit_log() v"
for db in "$SRC" "$DST"; do q postgres "DROP DATABASE $db" >/dev/null; done
