#!/usr/bin/env bash
# The scheduler load benchmark on both stores in one run: the embedded
# SQLite store, then PostgreSQL 15 on loopback (a throwaway server from
# Debian's packages, fsync and synchronous_commit on, removed afterwards).
# Then the time a replica takes to load that database's journal when it
# takes over (the part of a failover that grows with the journal).
#   scripts/bench_stores.sh [scheduler_load flags...]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh release scheduler_load voucher-scheduler >/dev/null
work="$(mktemp -d)"
chmod 755 "$work"  # the server runs as the postgres user when we are root
trap 'kill "${replica:-0}" 2>/dev/null || true; scripts/testing/postgres.sh stop "$work/pg"; rm -rf "$work"' EXIT
url="$(scripts/testing/postgres.sh start "$work/pg")"
psql "$url" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE scheduler_load"
db="${url%/*}/scheduler_load"
build/tests/scheduler_load --postgres "$db" "$@"

echo
echo "=== takeover: a replica loads what the PostgreSQL run left ==="
build/scheduler/voucher-scheduler --store "$db" --data-dir "$work/replica" \
  --listen 127.0.0.1:0 --port-file "$work/port" >"$work/replica.log" 2>&1 &
replica=$!
for _ in $(seq 600); do
  [ -s "$work/port" ] && break
  kill -0 "$replica" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$replica" 2>/dev/null || true
wait "$replica" || true
grep "state loaded" "$work/replica.log" || { cat "$work/replica.log"; exit 1; }
psql "$db" -At -c "SELECT 'stored: ' || (SELECT count(*) FROM commands) || ' commands, ' || (SELECT count(*) FROM journal) || ' journal entries, ' || (SELECT count(*) FROM usage) || ' usage records, ' || pg_size_pretty(pg_database_size(current_database()))"
