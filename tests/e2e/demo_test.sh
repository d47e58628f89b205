#!/usr/bin/env bash
# End-to-end test of the quickstart, scripts/demo.sh, with the real binaries:
# two runs on one fresh demo directory (the second must stop the services of
# the first, restart them on the same data and create nothing twice), then
# `scripts/demo.sh stop`, `voucher-scheduler verify`, and no demo process
# left behind. Loopback only; ports chosen free at run time.
#
#   CV_BUILD_DIR=build tests/e2e/demo_test.sh
#
# Exits 0 when it passes, 1 when it fails, 77 (skipped) without python3.
set -Eeuo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/testing/demo_processes.sh
source "$repo/tests/testing/demo_processes.sh"
build_dir="${CV_BUILD_DIR:-$repo/build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac

if ! command -v python3 >/dev/null; then
  echo "demo_test: SKIP: python3 is needed to find free ports"
  exit 77
fi
for b in scheduler/voucher-scheduler agent/voucher-agent client/voucherctl; do
  if [ ! -x "$build_dir/$b" ]; then
    echo "demo_test: FAIL: $build_dir/$b is missing (set CV_BUILD_DIR)" >&2
    exit 1
  fi
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/cv-demo-test.XXXXXX")"
data="$tmp/demo-data"
failures=0

fail() {
  echo "demo_test: FAIL: $*" >&2
  failures=$((failures + 1))
}

cleanup() {
  local rc=$?
  stop_demo demo_test
  if [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; then
    for f in "$data"/*.log; do
      [ -f "$f" ] || continue
      echo "---- $f" >&2
      tail -n 30 "$f" >&2
    done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

demo_env
metrics_base="$CV_DEMO_METRICS_BASE"
echo "demo_test: data $data, scheduler $endpoint, metrics from $metrics_base"

vctl() {
  local token_file=$1
  shift
  XDG_CONFIG_HOME="$tmp/config" VOUCHERCTL_ENDPOINT="$endpoint" \
    VOUCHERCTL_TOKEN="$(cat "$token_file")" "$build_dir/client/voucherctl" "$@"
}

# rows CSV: the number of data rows of a voucherctl -o csv answer.
rows() { tail -n +2 | grep -c . || true; }

# check_run N OUTPUT_FILE: what every run must print and leave running.
check_run() {
  local n=$1 out=$2 pid c
  grep -q "The demo is running: voucher-scheduler on $endpoint" "$out" ||
    fail "run $n: no \"what now\" block"
  [ "$(grep -c '^Available: ' "$out")" -eq 2 ] || fail "run $n: expected two balances"
  grep -q '^== voucherctl statement --from ' "$out" || fail "run $n: no statement"
  grep -Eq '^total for E-000001: cost [0-9.]+ CNY, subsidy [0-9.]+ CNY' "$out" ||
    fail "run $n: no statement total for E-000001"
  grep -Eq '^total for E-000002: cost [0-9.]+ CNY, subsidy [0-9.]+ CNY' "$out" ||
    fail "run $n: no statement total for E-000002"
  # Usage was charged: each balance shows a non-zero "Charged".
  [ "$(grep -Ec '^Charged: +0*[1-9][0-9]*\.[0-9]{2} CNY|^Charged: +0\.(0[1-9]|[1-9][0-9]) CNY' "$out")" -eq 2 ] ||
    fail "run $n: a balance shows nothing charged"
  # Month-end: a usage report with its total, a payment, the audit log.
  grep -Eq '^TOTAL +[0-9]+ ' "$out" || fail "run $n: no usage report total"
  # (A second run pays only what was charged since the first.)
  [ "$n" -gt 1 ] || grep -q '^== admin: voucherctl admin provider pay PR-' "$out" ||
    fail "run $n: no payment recorded"
  grep -Eq ' settle_provider +PR-' "$out" ||
    fail "run $n: the audit log shows no payment"
  grep -q 'scripts/demo.sh stop' "$out" || fail "run $n: no stop instructions"
  grep -q "metrics" "$out" || fail "run $n: no metrics addresses"
  for c in scheduler hz-a sz-b; do
    pid="$(cat "$data/$c.pid" 2>/dev/null || true)"
    if [ -z "$pid" ] || ! alive "$pid"; then fail "run $n: $c is not running after the run"; fi
  done
  for f in scheduler/admin.token hz-a.token sz-b.token hz-robotics.token fz-dexhand.token; do
    if [ ! -s "$data/$f" ]; then
      fail "run $n: $data/$f is missing"
    elif [ "$(stat -c %a "$data/$f")" != 600 ]; then
      fail "run $n: $data/$f has mode $(stat -c %a "$data/$f"), want 600"
    fi
  done
  # The agents' /metrics answer on the ports asked for.
  for port in "$metrics_base" $((metrics_base + 1)); do
    python3 - "$port" <<'EOF' || fail "run $n: no agent /metrics on port $port"
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read()
sys.exit(0 if b"computevoucher_agent_" in body else 1)
EOF
  done
}

# --- first run ---
start=$SECONDS
rc=0
"$repo/scripts/demo.sh" >"$tmp/run1.out" 2>&1 || rc=$?
echo "demo_test: first run: exit $rc in $((SECONDS - start)) s"
if [ "$rc" -ne 0 ]; then
  cat "$tmp/run1.out" >&2
  fail "first run exited $rc"
  exit 1
fi
check_run 1 "$tmp/run1.out"
first_pids="$(cat "$data"/*.pid)"
token_sums="$(cd "$data" && sha256sum ./*.token scheduler/admin.token)"

# --- second run, on the same data with the services running ---
start=$SECONDS
rc=0
"$repo/scripts/demo.sh" >"$tmp/run2.out" 2>&1 || rc=$?
echo "demo_test: second run: exit $rc in $((SECONDS - start)) s"
if [ "$rc" -ne 0 ]; then
  cat "$tmp/run2.out" >&2
  fail "second run exited $rc"
  exit 1
fi
check_run 2 "$tmp/run2.out"
grep -q 'stopping the services of a previous run' "$tmp/run2.out" ||
  fail "second run: did not stop the first run's services"
for pid in $first_pids; do
  if alive "$pid"; then fail "second run: pid $pid of the first run is still running"; fi
done
[ "$token_sums" = "$(cd "$data" && sha256sum ./*.token scheduler/admin.token)" ] ||
  fail "second run: token files changed"

# Nothing was created twice.
admin_token="$data/scheduler/admin.token"
[ "$(vctl "$admin_token" admin program list -o csv | rows)" -eq 1 ] || fail "programs were created twice"
[ "$(vctl "$admin_token" admin provider list -o csv | rows)" -eq 2 ] || fail "providers were created twice"
[ "$(vctl "$admin_token" admin enterprise list -o csv | rows)" -eq 2 ] || fail "enterprises were created twice"
[ "$(vctl "$admin_token" admin voucher list -o csv | rows)" -eq 2 ] || fail "vouchers were issued twice"
[ "$(vctl "$admin_token" admin token list -o csv | rows)" -eq 5 ] ||
  fail "tokens were created twice: $(vctl "$admin_token" admin token list)"
[ "$(vctl "$admin_token" admin cluster list --state approved -o csv | rows)" -eq 2 ] ||
  fail "the two clusters are not both approved"
# Each run made one allocation per enterprise and released the previous one.
allocs="$(vctl "$data/hz-robotics.token" allocations list -o csv)"
[ "$(rows <<<"$allocs")" -eq 2 ] || fail "hz-robotics: want 2 allocations, got: $allocs"
[ "$(grep -c ',running,\|,assigned,' <<<"$allocs")" -eq 1 ] ||
  fail "hz-robotics: want exactly one active allocation, got: $allocs"
# The enterprise token reads its own balance.
vctl "$data/fz-dexhand.token" balance | grep -q '^Enterprise: *E-000002' ||
  fail "fz-dexhand's token does not read E-000002's balance"

# --- stop ---
rc=0
"$repo/scripts/demo.sh" stop >"$tmp/stop.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "scripts/demo.sh stop exited $rc: $(cat "$tmp/stop.out")"
[ "$(grep -c '^demo: stopped ' "$tmp/stop.out")" -eq 3 ] ||
  fail "stop did not stop three services: $(cat "$tmp/stop.out")"
left="$(demo_pids)"
[ -z "$left" ] || fail "processes left after stop: $left"
grep -q 'stopped' "$data/scheduler.log" || fail "the scheduler did not shut down gracefully"
rc=0
"$repo/scripts/demo.sh" stop >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "a second stop exited $rc"

rc=0
"$build_dir/scheduler/voucher-scheduler" verify --data-dir "$data/scheduler" >"$tmp/verify.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "verify exited $rc: $(cat "$tmp/verify.out")"

if [ "$failures" -ne 0 ]; then
  echo "demo_test: $failures check(s) failed; first run's output:" >&2
  cat "$tmp/run1.out" >&2
  exit 1
fi
echo "demo_test: PASS"
