#!/usr/bin/env bash
# Sets up, builds and runs the scheduler on its embedded store in
# ./demo-data (created on first run; a second run reuses it). Stop it with
# Ctrl-C: it shuts down gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh release voucher-scheduler
data="${CV_DEMO_DATA:-$PWD/demo-data}"
listen="${CV_DEMO_LISTEN:-127.0.0.1:7443}"
echo "demo: voucher-scheduler on $listen, data in $data"
echo "demo: verify the journal at any time with: build/scheduler/voucher-scheduler verify --data-dir $data"
exec build/scheduler/voucher-scheduler serve --data-dir "$data" --listen "$listen"
