#!/usr/bin/env bash
# Runs every test: formatting and lints, plain Rust unit tests, the #[pg_test]s
# inside a real backend, and the pgTAP suite (with a real PgBouncer) against a
# throwaway cluster running the extension built from this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/pg.sh

step() { printf '\n=== %s\n' "$*"; }

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Shell scripts: shellcheck, warnings and errors fail the run.
shellcheck -x -S warning scripts/*.sh tests/*.t
# Every statement the extension runs goes through src/pg/spi.rs, which pins
# search_path (issue 14): no other module may call pgrx's SPI directly.
if grep -rn --include='*.rs' -E '\bSpi::|pgrx::spi::Spi\b' src | grep -v -e '^src/pg/spi.rs:' -e '^src/pg_tests.rs:'; then
  echo "SPI outside src/pg/spi.rs (use its pinned wrappers)" >&2
  exit 1
fi
# Dependencies point one way, with no import circle (issue 16).
python3 scripts/layers.py

# Shipped install and upgrade scripts are never edited (a new version ships a
# new upgrade script); sql/released/SHA256SUMS lists every one.
(cd sql/released && sha256sum --quiet -c SHA256SUMS) || {
  echo "a released SQL script changed: ship the change as a new upgrade script instead" >&2
  exit 1
}

step "unit tests (plain Rust)"
cargo test --quiet -p kakunin-core -p kakunin-testkit

# Every PostgreSQL version we support, each on its own ports and folders.
for PG in 15 18; do
  export PG
  step "#[pg_test] tests inside PostgreSQL $PG"
  mkdir -p "/tmp/kakunin-pgrx-$PG" && chown "$RUN_USER" "/tmp/kakunin-pgrx-$PG"
  cargo pgrx test "pg$PG" --runas "$RUN_USER" --pgdata "/tmp/kakunin-pgrx-$PG"

  step "pgTAP and TAP suites on PostgreSQL $PG"
  # `cargo pgrx test` left its test build installed; scripts/pgtap.sh installs the real one.
  bash scripts/pgtap.sh

  step "example projects (examples/*/supabase) on PostgreSQL $PG"
  bash scripts/examples.sh
done
