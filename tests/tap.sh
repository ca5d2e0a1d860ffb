# shellcheck shell=bash
# Shared by the TAP scripts (sourced, not run): `check DESCRIPTION COMMAND...`
# runs COMMAND and prints "ok N - DESCRIPTION", or "not ok N - DESCRIPTION"
# followed by its output as TAP comments.
n=0
check() {
  n=$((n + 1))
  if out=$("${@:2}" 2>&1); then echo "ok $n - $1"; else echo "not ok $n - $1"; echo "$out" | sed 's/^/# /'; fi
}
