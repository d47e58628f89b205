# shellcheck shell=bash disable=SC2154
# Shell helpers for tests that run scripts/demo.sh: sourced, not run.
# Expects $repo (the repository root) and $data (the demo directory).

# alive PID: a live (not zombie) process.
alive() {
  local stat state
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  state="${stat##*) }"
  state="${state%% *}"
  [ "$state" != Z ] && [ "$state" != X ]
}

# demo_pids: live processes whose command line names the demo directory.
demo_pids() {
  local dir pid cmdline
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    cmdline="$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline")" || continue
    if [[ "$cmdline" == *"$data/"* ]] && alive "$pid"; then echo "$pid"; fi
  done
}

# stop_demo TAG: whatever happened, leave nothing running: the demo's own
# stop, then any process still naming the demo directory, by its pid.
stop_demo() {
  local pid
  CV_DEMO_DATA="$data" "$repo/scripts/demo.sh" stop >/dev/null 2>&1 || true
  for pid in $(demo_pids); do
    echo "$1: killing leftover pid $pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# demo_env: exports the demo's settings for a test: free loopback ports for
# the scheduler, its metrics and the agents' pair (N, N+1), $data, the
# build directory ($build_dir) and no build. Sets $endpoint.
demo_env() {
  local listen_port scheduler_metrics_port metrics_base
  read -r listen_port scheduler_metrics_port metrics_base _ < <(python3 "$repo/tests/testing/demo_ports.py")
  export CV_DEMO_DATA="$data"
  export CV_DEMO_LISTEN="127.0.0.1:$listen_port"
  export CV_DEMO_METRICS_BASE="$metrics_base"
  export CV_DEMO_SCHEDULER_METRICS="127.0.0.1:$scheduler_metrics_port"
  export CV_DEMO_SKIP_BUILD=1
  export CV_BUILD_DIR="$build_dir"
  endpoint="127.0.0.1:$listen_port"
}
