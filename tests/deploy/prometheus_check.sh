#!/usr/bin/env bash
# The observability files checked against the real thing (issue 6):
#
#  1. promtool: `check config` on every shipped Prometheus configuration,
#     `check rules` on deploy/prometheus/alerts.yml, `test rules` on its unit
#     tests (deploy/prometheus/alerts_test.yml).
#  2. Starts the quickstart (scripts/demo.sh: a scheduler, two simulated
#     agents, usage being charged) with its metrics on free loopback ports,
#     plus a little traffic of its own (calls that succeed and calls that
#     fail, so that error series have data), and `promtool check metrics` on
#     every /metrics endpoint.
#  3. Starts Prometheus on loopback with deploy/prometheus/prometheus.yml,
#     its targets replaced by the test's ports and a 1 s scrape interval (the
#     rule files kept), and waits until every target is up and scraped.
#  4. Through Prometheus's HTTP API: every alert rule is loaded and evaluates
#     without error and its expression answers; every target of every panel
#     of every dashboard in deploy/grafana/dashboards/ answers with data, with
#     Grafana's variables replaced (tests/deploy/query_check.py).
#  5. Stops Prometheus, the traffic and the demo, and removes what it made.
#
#   CV_BUILD_DIR=build tests/deploy/prometheus_check.sh
#
# Exits 0 when it passes, 1 when it fails, 77 (skipped) when prometheus,
# promtool (Debian package prometheus) or python3 is missing.
set -Eeuo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/testing/demo_processes.sh
source "$repo/tests/testing/demo_processes.sh"
build_dir="${CV_BUILD_DIR:-$repo/build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
here="$repo/tests/deploy"
prom_dir="$repo/deploy/prometheus"

say() { printf 'prometheus_check: %s\n' "$*"; }

for tool in prometheus promtool python3; do
  if ! command -v "$tool" >/dev/null; then
    say "SKIP: $tool is missing (scripts/setup.sh installs the Debian package prometheus)"
    exit 77
  fi
done
for b in scheduler/voucher-scheduler agent/voucher-agent client/voucherctl; do
  if [ ! -x "$build_dir/$b" ]; then
    say "FAIL: $build_dir/$b is missing (set CV_BUILD_DIR)" >&2
    exit 1
  fi
done

failures=0
fail() {
  printf 'prometheus_check: FAIL: %s\n' "$*" >&2
  failures=$((failures + 1))
}

# --- 1. promtool on the shipped files ---------------------------------------------

# promtool_ok DESCRIPTION COMMAND...: runs a promtool command, showing its
# output only when it fails.
promtool_ok() {
  local what=$1 out
  shift
  if out="$("$@" 2>&1)"; then
    say "ok: $what"
  else
    fail "$what"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
  fi
}
promtool_ok "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config "$prom_dir/prometheus.yml"
# The compose and Kubernetes variants name the rule file where their
# containers mount it: check the configuration itself. Debian builds
# Prometheus without Kubernetes discovery, so its promtool cannot read the
# Kubernetes one; that check is skipped with such a promtool.
for f in "$repo/deploy/compose/prometheus.yml" "$repo/deploy/kubernetes/prometheus.yml"; do
  if out="$(promtool check config --syntax-only "$f" 2>&1)"; then
    say "ok: promtool check config --syntax-only ${f#"$repo"/}"
  elif grep -q 'field kubernetes_sd_configs not found' <<<"$out"; then
    say "skipped: promtool check config ${f#"$repo"/} (this promtool has no Kubernetes discovery)"
  else
    fail "promtool check config --syntax-only ${f#"$repo"/}"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
  fi
done
promtool_ok "promtool check rules deploy/prometheus/alerts.yml" \
  promtool check rules "$prom_dir/alerts.yml"
# The unit tests name alerts.yml relative to their own directory.
test_rules() { (cd "$prom_dir" && promtool test rules alerts_test.yml); }
promtool_ok "promtool test rules deploy/prometheus/alerts_test.yml" test_rules

# --- 2. the demo ------------------------------------------------------------------

tmp="$(mktemp -d "${TMPDIR:-/tmp}/cv-prometheus-check.XXXXXX")"
data="$tmp/demo-data"
prom_pid="" traffic_pid=""

# stop_pid PID: SIGTERM, then SIGKILL if it is still there after 10 s.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] && alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? f
  stop_pid "$traffic_pid"
  stop_pid "$prom_pid"
  stop_demo prometheus_check
  if [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; then
    for f in "$tmp/demo.out" "$tmp/prometheus.log" "$data"/*.log; do
      [ -f "$f" ] || continue
      echo "---- $f (last lines)" >&2
      tail -n 25 "$f" >&2
    done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Free loopback ports: the scheduler's API and metrics, a pair (N, N+1) for
# the agents' metrics, and Prometheus.
read -r listen_port sched_metrics_port agent_base prom_port < <(python3 "$repo/tests/testing/demo_ports.py")
endpoint="127.0.0.1:$listen_port"
sched_metrics="127.0.0.1:$sched_metrics_port"
agent_metrics=("127.0.0.1:$agent_base" "127.0.0.1:$((agent_base + 1))")
prom_url="http://127.0.0.1:$prom_port"

say "demo: scheduler $endpoint (metrics $sched_metrics), agent metrics ${agent_metrics[*]}"
if ! CV_DEMO_DATA="$data" CV_DEMO_LISTEN="$endpoint" CV_DEMO_METRICS_BASE="$agent_base" \
  CV_DEMO_SCHEDULER_METRICS="$sched_metrics" CV_DEMO_SKIP_BUILD=1 CV_BUILD_DIR="$build_dir" \
  "$repo/scripts/demo.sh" >"$tmp/demo.out" 2>&1; then
  fail "scripts/demo.sh failed"
  exit 1
fi
say "demo is running"

# Traffic of the test's own while Prometheus scrapes, as an enterprise: calls
# that succeed (its allocation of the demo) and, one in five, a call that
# fails (NOT_FOUND), so that the error panels have series with data.
alloc="$(sed -n 's/^allocation_hz-robotics=//p' "$data/demo.state" | tail -n 1)"
[ -n "$alloc" ] || fail "no allocation of hz-robotics in $data/demo.state"
(
  export XDG_CONFIG_HOME="$tmp/config" VOUCHERCTL_ENDPOINT="$endpoint"
  VOUCHERCTL_TOKEN="$(tr -d '[:space:]' <"$data/hz-robotics.token")"
  export VOUCHERCTL_TOKEN
  while :; do
    for _ in 1 2 3 4; do
      "$build_dir/client/voucherctl" allocations show "$alloc" >/dev/null 2>&1 || true
    done
    "$build_dir/client/voucherctl" allocations show AL-99999999 >/dev/null 2>&1 || true
    sleep 0.5
  done
) &
traffic_pid=$!

# promtool check metrics on each endpoint: it must report nothing.
check_metrics() {
  local name=$1 addr=$2 out
  if ! python3 -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
    "http://$addr/metrics" >"$tmp/metrics.txt" 2>"$tmp/metrics.err"; then
    fail "$name: cannot read http://$addr/metrics: $(tail -n 1 "$tmp/metrics.err")"
    return
  fi
  out="$(promtool check metrics <"$tmp/metrics.txt" 2>&1)" || true
  if [ -n "$out" ]; then
    fail "$name: promtool check metrics on http://$addr/metrics:"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
  else
    say "ok: promtool check metrics on $name (http://$addr/metrics)"
  fi
}
check_metrics voucher-scheduler "$sched_metrics"
check_metrics "voucher-agent hz-a" "${agent_metrics[0]}"
check_metrics "voucher-agent sz-b" "${agent_metrics[1]}"

# --- 3. Prometheus with the shipped configuration ------------------------------------

# The shipped file with the test's targets, 1 s intervals and the rule file
# by its absolute path; every replacement must hit exactly once.
python3 - "$prom_dir/prometheus.yml" "$tmp/prometheus.yml" "$prom_dir" \
  "$sched_metrics" "${agent_metrics[0]}" "${agent_metrics[1]}" <<'EOF'
import sys
src, dst, rules_dir, sched, agent_a, agent_b = sys.argv[1:]
text = open(src, encoding="utf-8").read()
for old, new in [
    ("scrape_interval: 15s", "scrape_interval: 1s"),
    ("scrape_timeout: 10s", "scrape_timeout: 1s"),
    ("evaluation_interval: 15s", "evaluation_interval: 1s"),
    ("  - alerts.yml\n", f"  - {rules_dir}/alerts.yml\n"),
    ('"127.0.0.1:9463"', f'"{sched}"'),
    ('"127.0.0.1:9464"', f'"{agent_a}"'),
    ('"127.0.0.1:9465"', f'"{agent_b}"'),
]:
    if text.count(old) != 1:
        sys.exit(f"prometheus.yml: expected {old!r} exactly once, found {text.count(old)}")
    text = text.replace(old, new)
open(dst, "w", encoding="utf-8").write(text)
EOF
promtool_ok "promtool check config on the test's copy" promtool check config "$tmp/prometheus.yml"

prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn \
  >"$tmp/prometheus.log" 2>&1 </dev/null &
prom_pid=$!
say "prometheus (pid $prom_pid) on $prom_url"

# Twenty scrapes of every target: every rate window of the check holds data.
if ! python3 "$here/query_check.py" wait "$prom_url" voucher-scheduler=1 voucher-agent=2 \
  --scrapes 20 --timeout 90; then
  fail "Prometheus did not scrape every target"
  exit 1
fi

# --- 4. every dashboard panel and alert rule ------------------------------------------

ds_uid="$(sed -n 's/^ *uid: *\([^ ]*\) *$/\1/p' \
  "$repo/deploy/grafana/provisioning/datasources/prometheus.yml" | head -n 1)"
[ -n "$ds_uid" ] || fail "no data source uid in deploy/grafana/provisioning/datasources/prometheus.yml"
if ! python3 "$here/query_check.py" check "$prom_url" "$prom_dir/alerts.yml" "$ds_uid" \
  "$repo"/deploy/grafana/dashboards/*.json; then
  failures=$((failures + 1))
fi

if [ "$failures" -ne 0 ]; then
  say "FAILED ($failures)"
  exit 1
fi
say "PASS"
