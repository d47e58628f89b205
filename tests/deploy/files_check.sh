#!/usr/bin/env bash
# Static checks of the deployment files that need no running service:
#  - the example configurations parse as their messages (protoc --encode):
#    deploy/systemd/scheduler.textproto and scheduler-postgres.textproto
#    (SchedulerConfig),
#    deploy/systemd/agent.textproto and the agent ConfigMap of
#    deploy/kubernetes/agent.yaml (AgentConfig);
#  - `systemd-analyze verify` on the units (when systemd-analyze is there),
#    with ExecStart pointed at the built binaries;
#  - every flag the compose file, the units and the Kubernetes manifests pass
#    to voucher-scheduler / voucher-agent is one the binary knows (--help);
#  - the dashboards are valid JSON; deploy/compose/bootstrap.sh is valid sh.
#
#   CV_BUILD_DIR=build tests/deploy/files_check.sh
#
# Exits 0 when it passes, 1 when it fails, 77 (skipped) without protoc.
set -Eeuo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build_dir="${CV_BUILD_DIR:-$repo/build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
deploy="$repo/deploy"

say() { printf 'files_check: %s\n' "$*"; }
failures=0
fail() {
  printf 'files_check: FAIL: %s\n' "$*" >&2
  failures=$((failures + 1))
}

if ! command -v protoc >/dev/null; then
  say "SKIP: protoc is missing (scripts/setup.sh installs protobuf-compiler)"
  exit 77
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/cv-files-check.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# encodes MESSAGE FILE: FILE parses as the textproto of MESSAGE.
encodes() {
  local err
  if err="$(protoc -I "$repo/proto" --encode="computevoucher.v1.$1" \
    "$repo/proto/computevoucher/v1/config.proto" <"$2" 2>&1 >/dev/null)"; then
    say "ok: ${2#"$repo"/} is a $1"
  else
    fail "${2#"$repo"/} is not a valid $1: $err"
  fi
}
encodes SchedulerConfig "$deploy/systemd/scheduler.textproto"
encodes SchedulerConfig "$deploy/systemd/scheduler-postgres.textproto"
encodes AgentConfig "$deploy/systemd/agent.textproto"
sed -n '/agent.textproto: |/,/^---/p' "$deploy/kubernetes/agent.yaml" | sed '1d;$d;s/^    //' \
  >"$tmp/k8s-agent.textproto"
encodes AgentConfig "$tmp/k8s-agent.textproto"

if command -v systemd-analyze >/dev/null; then
  for unit in voucher-scheduler voucher-agent; do
    sed -e "s|/usr/bin/voucher-scheduler|$build_dir/scheduler/voucher-scheduler|" \
      -e "s|/usr/bin/voucher-agent|$build_dir/agent/voucher-agent|" \
      "$deploy/systemd/$unit.service" >"$tmp/$unit.service"
  done
  if out="$(systemd-analyze verify "$tmp/voucher-scheduler.service" \
    "$tmp/voucher-agent.service" 2>&1)" && [ -z "$out" ]; then
    say "ok: systemd-analyze verify on the units"
  else
    fail "systemd-analyze verify on the units:"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
  fi
else
  say "skipped: systemd-analyze verify (systemd-analyze is missing)"
fi

# known_flags BINARY: the flags BINARY defines, spelled with dashes.
known_flags() {
  { "$1" --help 2>&1 || true; } | sed -n 's/^  --\([a-z0-9-]*\)\( .*\)\{0,1\}$/\1/p' | sort -u
}
# check_flags NAME BINARY FILE...: every --flag in FILEs is one of BINARY's.
check_flags() {
  local name=$1 bin=$2 flag
  shift 2
  if [ ! -x "$bin" ]; then
    fail "$bin is missing (set CV_BUILD_DIR)"
    return
  fi
  known_flags "$bin" >"$tmp/known"
  local before=$failures
  while read -r flag; do
    if ! grep -qx -- "$flag" "$tmp/known"; then
      fail "$name: --$flag is not a flag of $bin"
    fi
  done < <(grep -ho -- '--[a-z][a-z0-9-]*' "$@" | sed 's/^--//' | sort -u)
  [ "$failures" -ne "$before" ] || say "ok: the flags given to $name exist"
}
# The argument lists of each binary, cut out of the files that start it.
{
  sed -n '/^  scheduler:/,/^  [a-z]/p' "$deploy/compose/docker-compose.yml" | grep -- '- --'
  for f in "$deploy"/kubernetes/scheduler*.yaml; do
    sed -n '/name: scheduler$/,/ports:/p' "$f" | grep -- '- --'
  done
  grep '^ExecStart=' "$deploy/systemd/voucher-scheduler.service"
  sed -n '/^FROM runtime AS scheduler/,/^FROM/p' "$deploy/compose/Dockerfile" | sed -n '/^CMD/,/]/p'
} >"$tmp/sched.args"
{
  sed -n '/^  agent-/,/volumes:/p' "$deploy/compose/docker-compose.yml" | grep -- '- --'
  sed -n '/name: agent$/,/env:/p' "$deploy/kubernetes/agent.yaml" | grep -- '- --'
  grep '^ExecStart=' "$deploy/systemd/voucher-agent.service"
} >"$tmp/agent.args"
check_flags voucher-scheduler "$build_dir/scheduler/voucher-scheduler" "$tmp/sched.args"
check_flags voucher-agent "$build_dir/agent/voucher-agent" "$tmp/agent.args"

for f in "$deploy"/grafana/dashboards/*.json; do
  if command -v python3 >/dev/null; then
    python3 -m json.tool "$f" >/dev/null || fail "${f#"$repo"/}: not valid JSON"
  fi
done
sh -n "$deploy/compose/bootstrap.sh" || fail "deploy/compose/bootstrap.sh: sh -n"

if [ "$failures" -ne 0 ]; then
  say "FAILED ($failures)"
  exit 1
fi
say "PASS"
