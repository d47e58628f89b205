#!/usr/bin/env bash
# The quickstart: installs what is missing, builds, and runs the main job on
# the embedded store, then leaves the services running.
#
#   scripts/demo.sh          start (or restart) the demo and run it
#   scripts/demo.sh slurm    the same, with cluster sz-b on a local
#                            single-node Slurm (needs root): its agent runs
#                            the slurm runtime, and hz-robotics's H100s are a
#                            Slurm job it can run steps in
#   scripts/demo.sh stop     stop every demo service (and that Slurm)
#   scripts/demo.sh help     this text
#
# What a run does: starts voucher-scheduler; as the administrator creates a
# program modelled on Hangzhou's (250M CNY, 30% / 20% / 50% SME, 8M cap), two
# providers and two enterprises, agent tokens for two clusters; starts two
# simulated voucher-agents (hz-a: 8xH100 + 16x910B, sz-b: 8xH100), approves
# their clusters, issues a voucher to each enterprise and gives each an
# enterprise token; then, as each enterprise, quotes and allocates GPUs, lets
# usage flow until it is charged, and prints balances, allocations and
# today's statement.
#
# A second run finds the services of the first (pid files), stops them with
# SIGTERM, starts them again on the same data and creates nothing twice:
# every creation carries a fixed --request-id (the scheduler answers a repeated
# id with its first answer), and token files are kept (a secret is shown only
# once). Each run releases the allocation the previous run made and makes a
# new one, so that every run shows a quote, an allocation and usage being
# charged from zero, and repeated runs never use up the clusters' GPUs.
#
# Environment:
#   CV_DEMO_DATA          demo directory (default ./demo-data)
#   CV_DEMO_LISTEN        scheduler address (default 127.0.0.1:7443)
#   CV_DEMO_METRICS_BASE  first agent metrics port; the second agent uses the
#                         next one (default 9464)
#   CV_DEMO_SCHEDULER_METRICS  the scheduler's /metrics address
#                         (default 127.0.0.1:9463)
#   CV_DEMO_SKIP_BUILD=1  skip scripts/setup.sh and the build
#   CV_BUILD_DIR          where the binaries are (default ./build)
set -Eeuo pipefail
caller="$PWD"
cd "$(dirname "$0")/.."
repo="$PWD"

# Relative paths in the environment are relative to where this was run from.
data="${CV_DEMO_DATA:-$repo/demo-data}"
case "$data" in /*) ;; *) data="$caller/$data" ;; esac
listen="${CV_DEMO_LISTEN:-127.0.0.1:7443}"
metrics_base="${CV_DEMO_METRICS_BASE:-9464}"
scheduler_metrics="${CV_DEMO_SCHEDULER_METRICS:-127.0.0.1:9463}"
build_dir="${CV_BUILD_DIR:-$repo/build}"
case "$build_dir" in /*) ;; *) build_dir="$caller/$build_dir" ;; esac

scheduler_bin="$build_dir/scheduler/voucher-scheduler"
agent_bin="$build_dir/agent/voucher-agent"
voucherctl_bin="$build_dir/client/voucherctl"
sched_dir="$data/scheduler"

# The demo's world. Clusters: id, provider index, region, inventory, prices.
clusters=(hz-a sz-b)
declare -A cluster_provider=([hz-a]=1 [sz-b]=2)
declare -A cluster_region=([hz-a]=cn-hangzhou [sz-b]=cn-shenzhen)
declare -A cluster_inventory=([hz-a]="8xH100:other,16x910B:domestic" [sz-b]="8xH100:other")
declare -A cluster_prices=([hz-a]="H100=20.00,910B=12.00" [sz-b]="H100=18.00")
# Enterprises, by the short name of their token file. Credit codes are valid
# GB 32100-2015 codes (the same as tests/testing/world.cc).
enterprises=(hz-robotics fz-dexhand)
declare -A ent_name=([hz-robotics]=杭州具身智能机器人有限公司 [fz-dexhand]=福州灵巧手算法有限公司)
declare -A ent_code=([hz-robotics]=914403001922038216 [fz-dexhand]=91350100M000100Y43)
declare -A ent_category=([hz-robotics]=整机 [fz-dexhand]=软件算法)
declare -A ent_voucher_amount=([hz-robotics]=1M [fz-dexhand]=500k)
# What each enterprise allocates: --model, --gpus, --hours.
declare -A ent_alloc=([hz-robotics]="H100 2 1" [fz-dexhand]="910B 4 1")

# The settings this run was given, to repeat in the commands it suggests.
again=""
[ -z "${CV_DEMO_DATA:-}" ] || again+="CV_DEMO_DATA=$(printf '%q' "$data") "
[ -z "${CV_DEMO_LISTEN:-}" ] || again+="CV_DEMO_LISTEN=$(printf '%q' "$listen") "
[ -z "${CV_DEMO_METRICS_BASE:-}" ] || again+="CV_DEMO_METRICS_BASE=$(printf '%q' "$metrics_base") "
[ -z "${CV_DEMO_SCHEDULER_METRICS:-}" ] || again+="CV_DEMO_SCHEDULER_METRICS=$(printf '%q' "$scheduler_metrics") "
[ -z "${CV_BUILD_DIR:-}" ] || again+="CV_BUILD_DIR=$(printf '%q' "$build_dir") "

step="starting"
say() { printf 'demo: %s\n' "$*"; }
die() {
  printf 'demo: error: %s\n' "$*" >&2
  exit 1
}

# On any failure: which step, where, and where the logs are.
err_line="" err_command=""
on_exit() {
  local rc=$?
  [ "$rc" -ne 0 ] && [ -n "$step" ] || return 0
  {
    printf '\ndemo: FAILED while %s (exit status %s' "$step" "$rc"
    [ -z "$err_line" ] || printf '; scripts/demo.sh line %s: %s' "$err_line" "$err_command"
    printf ')\ndemo: logs: %s/scheduler.log' "$data"
    local c
    for c in "${clusters[@]}"; do printf ', %s/%s.log' "$data" "$c"; done
    printf '\ndemo: services already started are left running; stop them with: %sscripts/demo.sh stop\n' "$again"
  } >&2
}
trap 'err_line=$LINENO err_command=$BASH_COMMAND' ERR
trap on_exit EXIT

usage() { sed -n '2,/^set -Eeuo/{/^set -Eeuo/d;s/^# \{0,1\}//;p}' "$0"; }

# --- processes ---------------------------------------------------------------

# is_demo_process PID PATTERN: PID is alive (not a zombie) and its command
# line contains PATTERN, so a recycled pid is never mistaken for ours.
is_demo_process() {
  local pid=$1 pattern=$2 stat state cmdline
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  state="${stat##*) }"
  state="${state%% *}"
  [ "$state" != Z ] && [ "$state" != X ] || return 1
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmdline" == *"$pattern"* ]]
}

# stop_service NAME PIDFILE PATTERN: SIGTERM, wait for it to exit, and
# SIGKILL only if it does not within 30 s.
stop_service() {
  local name=$1 pidfile=$2 pattern=$3 pid i
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if ! is_demo_process "$pid" "$pattern"; then
    say "$name (pid ${pid:-?}) was no longer running"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    is_demo_process "$pid" "$pattern" || break
    sleep 0.1
  done
  if is_demo_process "$pid" "$pattern"; then
    say "$name (pid $pid) did not stop within 30 s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
  say "stopped $name (pid $pid)"
}

stop_all() {
  local c
  # Agents first, so that they hand their last usage to the scheduler.
  for c in "${clusters[@]}"; do
    stop_service "voucher-agent $c" "$data/$c.pid" "--spool-dir $data/$c.spool"
  done
  stop_service voucher-scheduler "$data/scheduler.pid" "--data-dir $sched_dir"
  if [ -f "$data/slurm/slurm.conf" ]; then
    scripts/testing/slurm.sh stop "$data/slurm"
    say "stopped the demo's Slurm"
  fi
}

# start_service NAME PIDFILE LOG COMMAND...: runs COMMAND in its own session
# (so that closing the terminal or Ctrl-C does not reach it), appending to
# LOG, with its pid in PIDFILE.
start_service() {
  local name=$1 pidfile=$2 log=$3
  shift 3
  printf '\n==== %s: %s starting\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" >>"$log"
  rm -f "$pidfile"
  # shellcheck disable=SC2016  # expanded by the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$log" 2>&1 &
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$pidfile" ] && return 0
    sleep 0.05
  done
  die "$name did not start; see $log"
}

# fail_service NAME LOG MESSAGE: the error, with the end of the log.
fail_service() {
  {
    printf 'demo: error: %s: %s\n' "$1" "$3"
    printf 'demo: the last lines of %s:\n' "$2"
    tail -n 15 "$2" | sed 's/^/    /'
    if tail -n 15 "$2" | grep -q 'cannot listen\|Address already in use\|address in use'; then
      printf 'demo: is something else listening on that port? Choose others with CV_DEMO_LISTEN=HOST:PORT (scheduler) or CV_DEMO_METRICS_BASE=PORT (agents).\n'
    fi
  } >&2
  return 1
}

# --- voucherctl -----------------------------------------------------------------

# vc TOKENFILE ARGS...: voucherctl against the demo scheduler with the token
# in TOKENFILE, ignoring any voucherctl config file of the user's.
vc() {
  local token_file=$1 token
  shift
  token="$(tr -d '[:space:]' <"$token_file")"
  XDG_CONFIG_HOME="$data/.config" VOUCHERCTL_ENDPOINT="$endpoint" \
    VOUCHERCTL_TOKEN="$token" "$voucherctl_bin" "$@"
}
admin() { vc "$sched_dir/admin.token" "$@"; }

# json_field NAME: the first "NAME": value of the pretty-printed JSON on
# stdin (voucherctl -o json prints one field per line), without quotes.
json_field() {
  sed -n -e "s/^ *\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" -e t \
    -e "s/^ *\"$1\": \([^\",]*\),\{0,1\}\$/\1/p" | head -n 1
}

# state_get KEY / state_set KEY VALUE: what earlier runs decided, kept in
# DATA/demo.state so that repeated requests are identical.
state_get() {
  [ -f "$data/demo.state" ] || return 0
  sed -n "s/^$1=//p" "$data/demo.state" | tail -n 1
}
state_set() {
  local tmp="$data/demo.state.tmp"
  { grep -v "^$1=" "$data/demo.state" 2>/dev/null || true; printf '%s=%s\n' "$1" "$2"; } >"$tmp"
  mv "$tmp" "$data/demo.state"
}

# write_secret FILE SECRET: a token file, mode 0600 from the start.
write_secret() {
  (umask 077 && printf '%s\n' "$2" >"$1.tmp")
  mv "$1.tmp" "$1"
}

# token_create ARGS...: voucherctl admin token create -o json, without its
# reminder to store the secret (this script does) but with any error.
token_create() {
  local err="$data/.token-create.err" rc=0
  admin admin token create "$@" -o json 2>"$err" || rc=$?
  grep -v '^Store the secret now' "$err" >&2 || true
  rm -f "$err"
  return "$rc"
}

# create_token FILE ID DESCRIPTION ARGS...: creates a token and saves its
# secret, unless FILE already holds one. The request id is fixed; should the
# file have been lost after a run created the token, the scheduler answers
# the repeated id without a secret, so a new token is made and the old one
# revoked.
create_token() {
  local file=$1 id=$2 description=$3 out secret old
  shift 3
  [ -s "$file" ] && return 0
  out="$(token_create "$@" --description "$description" --request-id "$id")"
  secret="$(json_field secret <<<"$out")"
  if [ -z "$secret" ]; then
    old="$(json_field token_id <<<"$out")"
    say "$file is missing and its token $old cannot be shown again: creating a new one and revoking $old"
    out="$(token_create "$@" --description "$description" \
      --request-id "$id-$(date -u +%Y%m%dT%H%M%S)")"
    secret="$(json_field secret <<<"$out")"
    [ -n "$secret" ] || die "the scheduler returned no secret for a new token ($id)"
    admin admin token revoke "$old" --request-id "$id-revoke-$old" >/dev/null
  fi
  write_secret "$file" "$secret"
}

# wait_until DESCRIPTION TIMEOUT_S COMMAND...: polls COMMAND every 0.25 s.
wait_until() {
  local what=$1 timeout_s=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout_s))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      printf 'demo: error: timed out after %ss waiting for %s\n' "$timeout_s" "$what" >&2
      return 1
    fi
    sleep 0.25
  done
}

# --- the run -------------------------------------------------------------------

check_binaries() {
  local b
  for b in "$scheduler_bin" "$agent_bin" "$voucherctl_bin"; do
    [ -x "$b" ] || die "$b is missing: build with scripts/build.sh release, or set CV_BUILD_DIR"
  done
}

scheduler_alive() { is_demo_process "$(cat "$data/scheduler.pid" 2>/dev/null)" "--data-dir $sched_dir"; }
# scheduler_answers: the scheduler serves the admin token. Not reachable
# yet (voucherctl's exit status 3) means try again; a refusal ends the run.
scheduler_answers() {
  local rc=0
  scheduler_alive || fail_service voucher-scheduler "$data/scheduler.log" "it exited" || exit 1
  [ -s "$data/scheduler.port" ] && [ -s "$sched_dir/admin.token" ] || return 1
  admin admin program list >/dev/null 2>"$data/.answers.err" || rc=$?
  case "$rc" in
    0) rm -f "$data/.answers.err" ;;
    3) return 1 ;;
    *)
      cat "$data/.answers.err" >&2
      rm -f "$data/.answers.err"
      die "voucher-scheduler on $endpoint refused the admin token in $sched_dir/admin.token"
      ;;
  esac
}

start_scheduler() {
  step="starting voucher-scheduler"
  rm -f "$data/scheduler.port"
  start_service voucher-scheduler "$data/scheduler.pid" "$data/scheduler.log" \
    "$scheduler_bin" serve --data-dir "$sched_dir" --listen "$listen" \
    --metrics-listen "$scheduler_metrics" --port-file "$data/scheduler.port"
  # The endpoint voucherctl and the agents use: the bound port (the listen
  # address may ask for port 0) on a loopback host when it listens on all.
  local host="${listen%:*}" i
  case "$host" in "" | 0.0.0.0 | "[::]") host=127.0.0.1 ;; esac
  for ((i = 0; i < 200; i++)); do
    [ -s "$data/scheduler.port" ] && break
    scheduler_alive || fail_service voucher-scheduler "$data/scheduler.log" "it exited" || exit 1
    sleep 0.1
  done
  [ -s "$data/scheduler.port" ] || fail_service voucher-scheduler "$data/scheduler.log" \
    "no port after 20 s"
  endpoint="$host:$(tr -d '[:space:]' <"$data/scheduler.port")"
  wait_until "voucher-scheduler to answer on $endpoint" 30 scheduler_answers
  say "voucher-scheduler is serving on $endpoint (pid $(cat "$data/scheduler.pid"))"
}

start_agent() {
  local c=$1 port=$2
  local -a runtime=()
  step="starting voucher-agent $c"
  if [ "$slurm_mode" = 1 ] && [ "$c" = sz-b ]; then
    # The Slurm runtime: sz-b's GPUs are those of the local Slurm's
    # partition, and hz-robotics's jobs run as nobody.
    runtime=(env "SLURM_CONF=$data/slurm/slurm.conf" "$agent_bin" --runtime slurm
      --slurm-partition gpu --slurm-accounts "${ent_id[hz-robotics]}=nobody"
      --slurm-login-host "$(hostname)" --slurm-batch-log-dir "$data/slurm-batch"
      --slurm-poll-interval-ms 1000)
  else
    runtime=("$agent_bin")
  fi
  start_service "voucher-agent $c" "$data/$c.pid" "$data/$c.log" \
    "${runtime[@]}" --scheduler "$endpoint" --token-file "$data/$c.token" \
    --spool-dir "$data/$c.spool" --region "${cluster_region[$c]}" \
    --inventory "${cluster_inventory[$c]}" --prices "${cluster_prices[$c]}" \
    --metrics-listen "127.0.0.1:$port" \
    --heartbeat-interval-ms 1000 --report-interval-ms 2000
  say "voucher-agent $c started (pid $(cat "$data/$c.pid")), metrics on http://127.0.0.1:$port/metrics"
}

clusters_registered() {
  local c list
  for c in "${clusters[@]}"; do
    is_demo_process "$(cat "$data/$c.pid" 2>/dev/null)" "--spool-dir $data/$c.spool" ||
      fail_service "voucher-agent $c" "$data/$c.log" "it exited" || exit 1
  done
  list="$(admin admin cluster list -o csv 2>/dev/null)" || return 1
  for c in "${clusters[@]}"; do
    grep -q "^$c," <<<"$list" || return 1
  done
}

# slurm_job_running ALLOCATION: its Slurm job is RUNNING.
slurm_job_running() {
  [ "$(SLURM_CONF="$data/slurm/slurm.conf" squeue --noheader --name "cv-$1" --format %T 2>/dev/null)" = RUNNING ]
}

# access_known ENTERPRISE ALLOCATION: the agent has reported how to reach it.
access_known() {
  vc "$data/$1.token" allocations show "$2" | grep -q '^Access: *[^ -]'
}

# allocation_used_enough ENTERPRISE ALLOCATION GPUS: at least 10 s of its GPUs'
# time is metered and something was charged.
allocation_used_enough() {
  local out used charged
  out="$(vc "$data/$1.token" allocations show "$2" -o json 2>/dev/null)" || return 1
  used="$(json_field used_gpu_ms <<<"$out")"
  charged="$(json_field charged_fen <<<"$out")"
  [ "${used:-0}" -ge $(($3 * 10000)) ] && [ "${charged:-0}" -gt 0 ]
}

run_demo() {
  step="checking the tools"
  if [ "${CV_DEMO_SKIP_BUILD:-0}" != 1 ]; then
    step="installing what is missing (scripts/setup.sh)"
    scripts/setup.sh
    step="building (scripts/build.sh)"
    say "building voucher-scheduler, voucher-agent and voucherctl"
    scripts/build.sh release voucher-scheduler voucher-agent voucherctl
  fi
  check_binaries
  command -v setsid >/dev/null || die "setsid is missing (Debian package util-linux)"
  [[ "$metrics_base" =~ ^[0-9]+$ ]] || die "CV_DEMO_METRICS_BASE: not a port number: $metrics_base"

  step="preparing $data"
  if [ ! -d "$data" ]; then
    mkdir -p "$data"
    chmod 700 "$data"
  fi
  if [ -e "$data/scheduler.db" ]; then
    say "note: $data/scheduler.db is a store of an earlier version of this script," \
      "which kept it in $data itself; the demo's store is now $sched_dir"
  fi
  if [ -f "$data/scheduler.pid" ] || compgen -G "$data/*.pid" >/dev/null; then
    say "stopping the services of a previous run"
    stop_all
  fi
  if [ ! -e "$sched_dir/scheduler.db" ]; then
    # A fresh store: whatever an earlier store handed out means nothing now.
    rm -rf "$data/demo.state" "$data"/*.token "$data"/*.spool
  fi
  mkdir -p "$sched_dir"

  start_scheduler

  # --- the program office ---
  step="creating the program, providers and enterprises (as admin)"
  local valid_from valid_until out
  valid_from="$(state_get valid_from)"
  valid_until="$(state_get valid_until)"
  if [ -z "$valid_from" ]; then
    # Asia/Shanghai days (UTC+8 all year; needs no time zone database). Kept
    # so that a later run repeats the very same request.
    valid_from="$(TZ=UTC-8 date -d yesterday +%F)"
    valid_until="$(TZ=UTC-8 date -d '+1 year' +%F)"
    state_set valid_from "$valid_from"
    state_set valid_until "$valid_until"
  fi
  out="$(admin admin program create --name "杭州市人形机器人算力券 (demo)" \
    --issuer "杭州市经济和信息化局" --budget 250M \
    --valid-from "$valid_from" --valid-until "$valid_until" \
    --domestic-ratio 30% --other-ratio 20% --sme-ratio 50% --cap 8M \
    --categories 整机,软件算法,零部件,科研平台 --request-id demo-program -o json)"
  local program
  program="$(json_field program_id <<<"$out")"
  say "program $program: 250M CNY budget, 30% domestic / 20% other / 50% SME, 8M cap, $valid_from to $valid_until"

  local -a provider_ids=("")
  local name code name_code
  for name_code in "杭州算力科技有限公司 91330100716105852F" "深圳智算云有限公司 9144030071526726XG"; do
    name="${name_code% *}"
    code="${name_code#* }"
    out="$(admin admin provider add --name "$name" --credit-code "$code" \
      --request-id "demo-provider-$code" -o json)"
    provider_ids+=("$(json_field provider_id <<<"$out")")
    say "provider ${provider_ids[-1]}: $name"
  done

  local e
  declare -gA ent_id=()
  for e in "${enterprises[@]}"; do
    local -a extra=()
    # The SME is related to the second provider: it may never run there.
    if [ "$e" = fz-dexhand ]; then extra=(--sme --related "${provider_ids[2]}"); fi
    out="$(admin admin enterprise add --name "${ent_name[$e]}" --credit-code "${ent_code[$e]}" \
      --category "${ent_category[$e]}" --district 余杭区 "${extra[@]}" \
      --request-id "demo-enterprise-${ent_code[$e]}" -o json)"
    ent_id[$e]="$(json_field enterprise_id <<<"$out")"
    say "enterprise ${ent_id[$e]}: ${ent_name[$e]} (${ent_category[$e]}${extra:+, SME, related to ${provider_ids[2]}})"
  done

  # --- the clusters ---
  if [ "$slurm_mode" = 1 ]; then
    step="starting a single-node Slurm (scripts/testing/slurm.sh)"
    [ "$(id -u)" -eq 0 ] || die "scripts/demo.sh slurm runs Slurm's daemons and jobs as other users: run it as root"
    # Slurm runs jobs as nobody from a spool under $data: let others
    # through (not list) the directory; the tokens in it stay mode 0600.
    chmod 711 "$data"
    scripts/testing/slurm.sh start "$data/slurm" 8 h100 >/dev/null
    say "Slurm is up: partition gpu, node cvnode1 with 8 h100 (SLURM_CONF=$data/slurm/slurm.conf)"
  fi
  step="creating agent tokens"
  local c port
  for c in "${clusters[@]}"; do
    create_token "$data/$c.token" "demo-token-$c" "demo agent of $c" \
      --role agent --cluster "$c" --provider "${provider_ids[${cluster_provider[$c]}]}"
  done
  port=$metrics_base
  for c in "${clusters[@]}"; do
    start_agent "$c" "$port"
    port=$((port + 1))
  done
  step="waiting for the clusters to register"
  wait_until "clusters ${clusters[*]} to register" 30 clusters_registered
  step="approving the clusters"
  for c in "${clusters[@]}"; do
    admin admin cluster approve "$c" --request-id "demo-approve-$c" >/dev/null
  done
  say "clusters ${clusters[*]} registered and approved"

  step="issuing vouchers and enterprise tokens"
  for e in "${enterprises[@]}"; do
    out="$(admin admin voucher issue --program "$program" --enterprise "${ent_id[$e]}" \
      --amount "${ent_voucher_amount[$e]}" --request-id "demo-voucher-$e" -o json)"
    say "voucher $(json_field voucher_id <<<"$out") of ${ent_voucher_amount[$e]} CNY for ${ent_id[$e]}"
    create_token "$data/$e.token" "demo-token-$e" "demo token of $e" \
      --role enterprise --enterprise "${ent_id[$e]}"
  done

  # --- the enterprises ---
  local run previous model gpus hours alloc
  run=$(($(state_get runs) + 1))
  state_set runs "$run"
  declare -gA ent_alloc_id=()
  for e in "${enterprises[@]}"; do
    read -r model gpus hours <<<"${ent_alloc[$e]}"
    previous="$(state_get "allocation_$e")"
    if [ -n "$previous" ]; then
      step="releasing $e's allocation $previous of the previous run"
      out="$(vc "$data/$e.token" allocations show "$previous" -o json)"
      case "$(json_field state <<<"$out")" in
        ALLOCATION_STATE_ENDED) ;;
        *)
          vc "$data/$e.token" allocations release "$previous" \
            --request-id "demo-release-$previous" >/dev/null
          say "released $previous, the allocation of the previous run"
          ;;
      esac
    fi
    step="quoting and allocating as $e (${ent_id[$e]})"
    printf '\n== %s (%s): voucherctl quote --model %s --gpus %s --hours %s\n' \
      "${ent_name[$e]}" "${ent_id[$e]}" "$model" "$gpus" "$hours"
    vc "$data/$e.token" quote --model "$model" --gpus "$gpus" --hours "$hours"
    printf '\n== voucherctl allocate --model %s --gpus %s --hours %s\n' "$model" "$gpus" "$hours"
    out="$(vc "$data/$e.token" allocate --model "$model" --gpus "$gpus" --hours "$hours" \
      --request-id "demo-allocate-$e-run$run" -o json)"
    alloc="$(json_field allocation_id <<<"$out")"
    [ -n "$alloc" ] || die "allocate answered without an allocation id: $out"
    state_set "allocation_$e" "$alloc"
    ent_alloc_id[$e]="$alloc"
    vc "$data/$e.token" allocations show "$alloc"
  done
  if [ "$slurm_mode" = 1 ]; then
    step="running a step in hz-robotics's Slurm job"
    local job=""
    wait_until "the Slurm job of ${ent_alloc_id[hz-robotics]} to run" 60 slurm_job_running "${ent_alloc_id[hz-robotics]}"
    job="$(SLURM_CONF="$data/slurm/slurm.conf" squeue --noheader --name "cv-${ent_alloc_id[hz-robotics]}" --format %i)"
    printf '\n== %s: how to reach the GPUs (voucherctl allocations show %s)\n' \
      "${ent_name[hz-robotics]}" "${ent_alloc_id[hz-robotics]}"
    wait_until "the access instructions of ${ent_alloc_id[hz-robotics]}" 30 access_known hz-robotics "${ent_alloc_id[hz-robotics]}"
    vc "$data/hz-robotics.token" allocations show "${ent_alloc_id[hz-robotics]}" | grep '^Access:'
    printf '\n== as the tenant (Slurm user nobody): srun --jobid=%s sh -c ...\n' "$job"
    SLURM_CONF="$data/slurm/slurm.conf" runuser -u nobody -- srun --chdir=/tmp --jobid="$job" \
      sh -c 'echo "a step on $(hostname) with GPUs $CUDA_VISIBLE_DEVICES"'
  fi

  step="waiting for usage to be metered and charged"
  printf '\n'
  say "letting usage flow (the agents report every 2 s) ..."
  for e in "${enterprises[@]}"; do
    read -r model gpus hours <<<"${ent_alloc[$e]}"
    wait_until "usage of ${ent_alloc_id[$e]} to be charged" 90 \
      allocation_used_enough "$e" "${ent_alloc_id[$e]}" "$gpus"
  done

  step="printing balances, allocations and the statement"
  local today
  today="$(TZ=UTC-8 date +%F)"
  for e in "${enterprises[@]}"; do
    printf '\n== %s (%s): voucherctl balance\n' "${ent_name[$e]}" "${ent_id[$e]}"
    vc "$data/$e.token" balance
    printf '\n== voucherctl allocations list\n'
    vc "$data/$e.token" allocations list
    printf '\n== voucherctl statement --from %s --to %s\n' "$today" "$today"
    vc "$data/$e.token" statement --from "$today" --to "$today"
  done
  printf '\n== admin: voucherctl admin provider list (subsidy payable to providers)\n'
  admin admin provider list

  month_end
  print_what_now
}

# The program office's month-end, on today's usage: the report finance
# asks for, a payment to the provider owed most of what it is owed, and
# the audit log of that provider.
month_end() {
  step="the program office's month-end"
  local provider payable
  # Columns: provider_id,name,credit_code,payable_cny,paid_cny (the demo's
  # names hold no commas).
  provider="$(admin admin provider list -o csv |
    awk -F, 'NR > 1 && (best == "" || $4 + 0 > most) { best = $1; most = $4 + 0 } END { print best }')"
  printf '\n== admin: voucherctl admin report usage --last 1d --by enterprise,class\n'
  admin admin report usage --last 1d --by enterprise,class
  payable="$(admin admin provider show "$provider" -o json | json_field payable_fen)"
  if [ "${payable:-0}" -gt 0 ]; then
    printf '\n== admin: voucherctl admin provider pay %s --amount %d.%02d --reference "DEMO %s"\n' \
      "$provider" $((payable / 100)) $((payable % 100)) "$(TZ=UTC-8 date +%F)"
    admin admin provider pay "$provider" --amount "$((payable / 100)).$(printf %02d $((payable % 100)))" \
      --reference "DEMO $(TZ=UTC-8 date +%F)"
  fi
  printf '\n== admin: voucherctl admin audit log --object %s (who did what to it)\n' "$provider"
  admin admin audit log --object "$provider"
}

print_what_now() {
  # Paths as typed from the repository's root when they are inside it.
  local rel="$data" bin="$build_dir" e c port
  case "$data" in "$repo"/*) rel="${data#"$repo"/}" ;; esac
  case "$build_dir" in "$repo"/*) bin="${build_dir#"$repo"/}" ;; esac
  cat <<EOF

==============================================================================
The demo is running: voucher-scheduler on $endpoint, agents for ${clusters[*]}.

As the program office (admin):
  export VOUCHERCTL_ENDPOINT=$endpoint
  export VOUCHERCTL_TOKEN=\$(cat $rel/scheduler/admin.token)
  $bin/client/voucherctl admin program list
  $bin/client/voucherctl admin cluster list
  $bin/client/voucherctl admin settlement --from $(TZ=UTC-8 date +%F) --to $(TZ=UTC-8 date +%F)
  $bin/client/voucherctl admin report usage --month $(TZ=UTC-8 date +%Y-%m) --by enterprise -o csv --encoding gb18030 > usage.csv
  $bin/client/voucherctl admin report caps
  $bin/client/voucherctl admin report expiring --days 30d
  $bin/client/voucherctl admin audit log --last 1d
EOF
  for e in "${enterprises[@]}"; do
    cat <<EOF

As ${ent_name[$e]} (${ent_id[$e]}):
  export VOUCHERCTL_ENDPOINT=$endpoint
  export VOUCHERCTL_TOKEN=\$(cat $rel/$e.token)
  $bin/client/voucherctl balance
  $bin/client/voucherctl allocations watch ${ent_alloc_id[$e]}
EOF
  done
  printf '\nLogs:     %s/scheduler.log' "$rel"
  for c in "${clusters[@]}"; do printf ', %s/%s.log' "$rel" "$c"; done
  printf '\nMetrics:  http://%s/metrics (voucher-scheduler)\n         ' \
    "$scheduler_metrics"
  port=$metrics_base
  for c in "${clusters[@]}"; do
    printf ' http://127.0.0.1:%s/metrics (%s)' "$port" "$c"
    port=$((port + 1))
  done
  cat <<EOF

Check the journal (also while it runs):
  $bin/scheduler/voucher-scheduler verify --data-dir $rel/scheduler
Run this again (stops the services, restarts them on the same data):
  ${again}scripts/demo.sh
Stop everything:
  ${again}scripts/demo.sh stop
==============================================================================
EOF
}

slurm_mode=0
case "${1:-run}" in
  run) run_demo ;;
  slurm)
    slurm_mode=1
    run_demo
    ;;
  stop)
    step="stopping the demo services"
    if [ -d "$data" ]; then stop_all; fi
    say "no demo service is running (data kept in $data)"
    ;;
  help | -h | --help) step="" && usage ;;
  *)
    step=""
    printf 'demo: unknown command "%s"\n\n' "$1" >&2
    usage >&2
    exit 2
    ;;
esac
