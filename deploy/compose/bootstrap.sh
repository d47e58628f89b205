#!/bin/sh
# One-shot bootstrap of the compose deployment, run in the scheduler image
# (it has voucherctl) with the scheduler's data volume mounted read-only for
# the first admin token:
#
#   voucher-bootstrap tokens    registers the providers of the two simulated
#                               clusters and writes an agent token for each
#                               to $TOKENS_DIR/CLUSTER.token (mode 0600)
#   voucher-bootstrap approve   waits for the clusters' agents to register
#                               and approves the clusters
#
# Safe to run again: providers and approvals carry fixed request ids (the
# scheduler answers a repeated id with its first answer), and a token file
# that exists is kept (a secret is shown only once). Should a token file be
# lost, this makes a new token; revoke the old one with
# `voucherctl admin token list` and `voucherctl admin token revoke ID`.
set -eu

endpoint="${VOUCHERCTL_ENDPOINT:-scheduler:7443}"
admin_token_file="${ADMIN_TOKEN_FILE:-/var/lib/voucher-scheduler/admin.token}"
tokens_dir="${TOKENS_DIR:-/tokens}"
# cluster:provider credit code:provider name, one a line.
clusters="${CLUSTERS:-hz-a:91330100716105852F:杭州算力科技有限公司
sz-b:9144030071526726XG:深圳智算云有限公司}"

say() { printf 'bootstrap: %s\n' "$*"; }
die() {
  printf 'bootstrap: error: %s\n' "$*" >&2
  exit 1
}

vc() {
  VOUCHERCTL_TOKEN="$(tr -d '[:space:]' <"$admin_token_file")" \
    voucherctl --endpoint "$endpoint" "$@"
}

# json_field NAME: the first "NAME": value of voucherctl -o json on stdin.
json_field() {
  sed -n "s/^ *\"$1\": \"\{0,1\}\([^\"]*\)\"\{0,1\},\{0,1\}\$/\1/p" | head -n 1
}

wait_for_scheduler() {
  i=0
  until [ -s "$admin_token_file" ] && vc admin program list >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 120 ] || die "no answer from voucher-scheduler on $endpoint with $admin_token_file after 60 s"
    sleep 0.5
  done
}

tokens() {
  umask 077
  mkdir -p "$tokens_dir"
  printf '%s\n' "$clusters" | while IFS=: read -r cluster code name; do
    [ -n "$cluster" ] || continue
    provider="$(vc admin provider add --name "$name" --credit-code "$code" \
      --request-id "compose-provider-$code" -o json | json_field provider_id)"
    [ -n "$provider" ] || die "no provider id for $name"
    if [ -s "$tokens_dir/$cluster.token" ]; then
      say "$tokens_dir/$cluster.token exists: kept"
      continue
    fi
    vc admin token create --role agent --cluster "$cluster" --provider "$provider" \
      --description "compose agent of $cluster" --secret-file "$tokens_dir/$cluster.token" >/dev/null
    say "agent token of cluster $cluster (provider $provider) written to $tokens_dir/$cluster.token"
  done
}

approve() {
  printf '%s\n' "$clusters" | while IFS=: read -r cluster _; do
    [ -n "$cluster" ] || continue
    i=0
    until vc admin cluster list -o csv 2>/dev/null | grep -q "^$cluster,"; do
      i=$((i + 1))
      [ "$i" -lt 240 ] || die "cluster $cluster did not register within 120 s: see its agent's log"
      sleep 0.5
    done
    vc admin cluster approve "$cluster" --request-id "compose-approve-$cluster" >/dev/null
    say "cluster $cluster approved"
  done
}

case "${1:-}" in
  tokens) wait_for_scheduler && tokens ;;
  approve) wait_for_scheduler && approve ;;
  *)
    echo "usage: voucher-bootstrap tokens|approve" >&2
    exit 2
    ;;
esac
