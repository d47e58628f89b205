#!/usr/bin/env bash
# Runs every libFuzzer target of the sanitizer build (tests/fuzz/) for a
# bounded time, starting from its seed corpus (tests/fuzz/corpus/NAME, the
# target's name without "_fuzzer"), and fails on the first crash, leak or
# abort. Prints each target's executions per second and coverage.
#
#   scripts/fuzz.sh [SECONDS]      (default 30 per target)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for fuzzer in build-sanitize/tests/*_fuzzer; do
  [ -x "$fuzzer" ] || continue
  name="$(basename "$fuzzer" _fuzzer)"
  corpus="$work/$name"
  mkdir -p "$corpus"
  cp tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
  log="$work/$name.log"
  if "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/$name-" "$corpus" >"$log" 2>&1; then
    stats="$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log" | tr '\n' ' ')"
    cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)"
    echo "fuzz: $name: ok; $cov; $stats"
  else
    echo "fuzz: $name: FAILED" >&2
    tail -40 "$log" >&2
    for crash in "$work/$name"-*; do
      [ -f "$crash" ] && echo "fuzz: input: $(od -An -c "$crash" | head -5)" >&2
    done
    status=1
  fi
done
exit "$status"
