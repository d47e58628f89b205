#!/usr/bin/env bash
# End-to-end test of `scripts/demo.sh slurm`: the quickstart with cluster
# sz-b on a local single-node Slurm (scripts/testing/slurm.sh), then
# `scripts/demo.sh stop` (which stops that Slurm too) and `verify`.
# Loopback only; ports chosen free at run time.
#
#   CV_BUILD_DIR=build tests/e2e/demo_slurm_test.sh
#
# Exits 0 when it passes, 1 when it fails, 77 (skipped) when not root or
# without Slurm's daemons.
set -Eeuo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/testing/demo_processes.sh
source "$repo/tests/testing/demo_processes.sh"
build_dir="${CV_BUILD_DIR:-$repo/build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac

if [ "$(id -u)" -ne 0 ]; then
  echo "demo_slurm_test: SKIP: Slurm's daemons and jobs as nobody need root"
  exit 77
fi
if ! command -v slurmctld >/dev/null || ! command -v python3 >/dev/null; then
  echo "demo_slurm_test: SKIP: needs slurmctld and python3"
  exit 77
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/cv-demo-slurm-test.XXXXXX")"
# Slurm's jobs run as nobody from a spool inside: let others through.
chmod 711 "$tmp"
data="$tmp/demo-data"
failures=0
fail() {
  echo "demo_slurm_test: FAIL: $*" >&2
  failures=$((failures + 1))
}
cleanup() {
  stop_demo demo_slurm_test
  "$repo/scripts/testing/slurm.sh" stop "$data/slurm" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

demo_env

rc=0
"$repo/scripts/demo.sh" slurm >"$tmp/run.out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
  cat "$tmp/run.out" "$data/sz-b.log" >&2 || true
  fail "scripts/demo.sh slurm exited $rc"
  exit 1
fi
grep -q '^Access: .*srun --jobid=[0-9]' "$tmp/run.out" ||
  fail "no access instructions naming the Slurm job"
grep -q '^a step on .* with GPUs 0,1$' "$tmp/run.out" ||
  fail "the tenant's step did not get the allocation's two GPUs"
grep -q 'submitted slurm job [0-9]* as nobody' "$data/sz-b.log" ||
  fail "the sz-b agent did not submit a holding job"
grep -Eq '^total for E-000001: cost [0-9.]+ CNY' "$tmp/run.out" ||
  fail "no statement for E-000001, whose GPUs are on Slurm"
# E-000001's H100s went to sz-b (cheaper) and were charged from Slurm.
grep -Eq '^AL-[0-9]+ +CV-[0-9-]+ +PR-000002 +sz-b +H100' "$tmp/run.out" ||
  fail "E-000001's statement has no usage on sz-b"

rc=0
"$repo/scripts/demo.sh" stop >"$tmp/stop.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "scripts/demo.sh stop exited $rc: $(cat "$tmp/stop.out")"
grep -q "stopped the demo's Slurm" "$tmp/stop.out" || fail "stop did not stop Slurm"
if pgrep -f "$data/slurm" >/dev/null; then
  fail "Slurm processes left: $(pgrep -af "$data/slurm")"
fi
left="$(demo_pids)"
[ -z "$left" ] || fail "processes left after stop: $left"
rc=0
"$build_dir/scheduler/voucher-scheduler" verify --data-dir "$data/scheduler" >"$tmp/verify.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "verify exited $rc: $(cat "$tmp/verify.out")"

if [ "$failures" -ne 0 ]; then
  cat "$tmp/run.out" >&2
  exit 1
fi
echo "demo_slurm_test: PASS"
