#!/usr/bin/env bash
# The scheduler load benchmark on both stores in one run: the embedded
# SQLite store, then PostgreSQL 15 on loopback (a throwaway server from
# Debian's packages, fsync and synchronous_commit on, removed afterwards).
# Then, on the database the PostgreSQL run filled, two replicas: how long
# the first takes to replay the journal when it starts (a cold start), how
# long the second takes to catch up as a standby, and how long after the
# first is killed (SIGKILL) the second serves.
#   scripts/bench_stores.sh [scheduler_load flags...]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh release scheduler_load voucher-scheduler >/dev/null
work="$(mktemp -d)"
chmod 755 "$work"  # the server runs as the postgres user when we are root
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null || true; scripts/testing/postgres.sh stop "$work/pg"; rm -rf "$work"' EXIT
url="$(scripts/testing/postgres.sh start "$work/pg")"
psql "$url" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE scheduler_load"
db="${url%/*}/scheduler_load"
build/tests/scheduler_load --postgres "$db" "$@"

lease_s=5
# Starts replica $1 on the database; its log is $work/$1.log.
replica() {
  build/scheduler/voucher-scheduler --store "$db" --data-dir "$work/$1" \
    --listen 127.0.0.1:0 --port-file "$work/$1.port" --lease-s "$lease_s" \
    >"$work/$1.log" 2>&1 &
  pids+=($!)
}
# Waits (up to 10 minutes) until the log of replica $1 has $2.
await() {
  for _ in $(seq 6000); do
    grep -q "$2" "$work/$1.log" && return 0
    sleep 0.1
  done
  cat "$work/$1.log" >&2
  return 1
}
now_ms() { date +%s%3N; }

echo
echo "=== replicas on what the PostgreSQL run left (lease ${lease_s} s) ==="
psql "$db" -At -c "SELECT 'stored: ' || COALESCE(MAX(command_end), 0) || ' commands, ' || COALESCE(MAX(entry_end), 0) || ' journal entries, ' || COALESCE(MAX(usage_end), 0) || ' usage records in ' || count(*) || ' batches, ' || pg_size_pretty(pg_database_size(current_database())) FROM batches"
replica a
await a "leading as"
grep "leading as" "$work/a.log"
replica b
await b "standby: caught up"
grep "standby: caught up" "$work/b.log"
kill -9 "${pids[0]}"
killed="$(now_ms)"
await b "leading as"
served="$(now_ms)"
grep "leading as" "$work/b.log"
echo "the standby served $((served - killed)) ms after the leader was killed"
