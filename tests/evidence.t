#!/usr/bin/env bash
# TAP: an evidence bundle exported by the database verifies offline with
# verify-evidence, and a bundle tampered with after export does not.
# Usage (from scripts/pgtap.sh): tests/evidence.t SOCKET PORT DATABASE USER
set -uo pipefail
SOCK=$1 PORT=$2 DB=$3 USER_=$4
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$USER_" -d "$DB")
VERIFY=target/debug/verify-evidence
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "1..4"
"${PSQL[@]}" -c "SELECT kakunin.audit('evidence.test', jsonb_build_object('n', g, 'price', 1.50)) FROM generate_series(1, 20) g" >/dev/null
"${PSQL[@]}" -c "SELECT kakunin.export_evidence('-infinity', 'infinity')" > "$WORK/bundle.json"
if out=$("$VERIFY" "$WORK/bundle.json" 2>&1) && [[ $out == OK:* ]]; then echo "ok 1 - an exported bundle verifies offline"; else echo "not ok 1 - an exported bundle verifies offline # $out"; fi
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
b = json.load(open(f"{w}/bundle.json"))
e = json.loads(json.dumps(b)); e["entries"][3]["payload"]["price"] = 9.99
json.dump(e, open(f"{w}/edited.json", "w"))
k = json.loads(json.dumps(b)); k["checkpoint"] = k["checkpoint"].replace("\n", "\n", 1).split("\n")
k["checkpoint"][1] = str(int(k["checkpoint"][1]) + 1); k["checkpoint"] = "\n".join(k["checkpoint"])
json.dump(k, open(f"{w}/resized.json", "w"))
r = json.loads(json.dumps(b)); r["entries"] = [x for x in r["entries"] if x["seq"] != 5]
r["entries"][4]["seq"] = 5
json.dump(r, open(f"{w}/renumbered.json", "w"))
PY
for t in "2 edited an entry's payload after export" "3 changed the signed tree size" "4 renumbered an entry"; do
  n=${t%% *}; name=${t#* }
  file=$([ "$n" = 2 ] && echo edited || { [ "$n" = 3 ] && echo resized || echo renumbered; })
  if out=$("$VERIFY" "$WORK/$file.json" 2>&1); then echo "not ok $n - refused: $name # accepted: $out"; else echo "ok $n - refused: $name"; fi
done
