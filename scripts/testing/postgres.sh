#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, from Debian's packages.
#
#   scripts/testing/postgres.sh start DIR   # prints the URL for the tests
#   scripts/testing/postgres.sh stop DIR    # stops it and removes DIR
#
# `start` runs initdb into DIR/data (as the `postgres` OS user when run as
# root, since the server refuses to run as root), listens on 127.0.0.1 only,
# on a free port, with fsync on, and lets the role `cv` (allowed to create
# databases) in without a password from loopback. Tests create a database
# each and drop it at the end.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
command="$1"
dir="$2"

bin="${CV_POSTGRES_BIN:-}"
if [ -z "$bin" ]; then
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/initdb" ] && bin="$candidate"
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "postgres.sh: no initdb found (install the Debian package postgresql)" >&2
  exit 1
fi

# Runs a PostgreSQL program as the owner of the cluster.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$command" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --no-locale \
      --auth-local=trust --auth-host=reject >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    # Only the superuser over the cluster's own socket, and `cv` over
    # loopback TCP.
    as_owner tee "$dir/data/pg_hba.conf" >/dev/null <<HBA
local all postgres trust
host  all cv       127.0.0.1/32 trust
HBA
    # The port is free when looked up, and may not be when the server binds
    # it: try a few.
    for attempt in 1 2 3 4 5; do
      port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
      if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=on -c synchronous_commit=on -c max_connections=200" \
        start >/dev/null; then
        break
      fi
      if [ "$attempt" -eq 5 ]; then
        cat "$dir/server.log" >&2
        exit 1
      fi
    done
    as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -q \
      -v ON_ERROR_STOP=1 -c "CREATE ROLE cv LOGIN CREATEDB" >/dev/null
    url="postgresql://cv@127.0.0.1:$port/postgres"
    echo "$url" >"$dir/url"
    echo "$url"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    rm -rf "$dir"
    ;;
  *)
    usage
    ;;
esac
