#!/usr/bin/env bash
# The archive suite's own PostgreSQL server, from Debian's postgresql package.
#   pg.sh start STATE   initdb in a new temporary directory, start the server
#                       on a private unix socket there (no TCP), and write its
#                       maintenance URL to STATE/url
#   pg.sh stop STATE    stop it and remove its directory (a no-op if none)
# Run as root, the server runs as the postgres user (it refuses root).
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop STATE_DIR} state=${2:?usage: pg.sh start|stop STATE_DIR}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "pg.sh: no PostgreSQL server binaries (Debian package postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop() {
  [ -f "$state/dir" ] || return 0
  local dir; dir=$(cat "$state/dir")
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir" "$state/dir" "$state/url"
}

case $cmd in
start)
  stop # a server left by an interrupted run
  mkdir -p "$state"
  dir=$(mktemp -d /tmp/meterkey-pg-XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  echo "$dir" >"$state/dir"
  as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; stop; exit 1; }
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -p 5432 -c listen_addresses='' -c max_connections=60" start >/dev/null \
    || { cat "$dir/server.log" >&2; stop; exit 1; }
  echo "postgresql:///postgres?host=$dir&port=5432&user=postgres" >"$state/url"
  echo "pg.sh: test server running, socket in $dir"
  ;;
stop) stop ;;
*) echo "usage: pg.sh start|stop STATE_DIR" >&2; exit 2 ;;
esac
