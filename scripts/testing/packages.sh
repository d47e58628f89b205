#!/usr/bin/env bash
# The Debian packages end to end (cmake/packaging.cmake, deploy/README.md
# "Packages"): builds them from BUILD_DIR (cpack, into BUILD_DIR/packages),
# checks their files and conffiles, installs all three with apt-get, checks
# the binaries, users, state directories, units and configuration, runs the
# installed scheduler as its system user and calls it with the installed
# voucherctl, then removes and purges them, checking what each leaves:
# remove keeps the conffiles, purge deletes them, neither deletes the users
# or /var/lib/<name>.
#
#   scripts/testing/packages.sh BUILD_DIR     (as root; scripts/test.sh runs it)
#
# Leaves the machine as it found it: refuses to run where one of the packages
# is installed or one of their directories in /etc or /var/lib exists, and on
# exit purges the packages and deletes the state directories and the users it
# created. Exits 0 when every check passes, 1 otherwise.
set -euo pipefail

say() { printf 'packages.sh: %s\n' "$*"; }
die() {
  printf 'packages.sh: FAIL: %s\n' "$*" >&2
  exit 1
}
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "run it as root: it installs, runs and removes packages and users"
build="$(cd "$1" && pwd)"
[ -f "$build/CPackConfig.cmake" ] || die "$build has no CPackConfig.cmake: configure and build it first"
version="$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")"
unit_dir="$(sed -n 's/^CV_SYSTEMD_UNIT_DIR:PATH=//p' "$build/CMakeCache.txt")"
arch="$(dpkg --print-architecture)"
packages=(voucher-scheduler voucher-agent voucherctl)
servers=(voucher-scheduler voucher-agent)
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 "$@"; }
dpkg_status() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true; }

for p in "${packages[@]}"; do
  case "$(dpkg_status "$p")" in
    "" | not-installed) ;;
    *) die "$p is installed here ($(dpkg_status "$p")); purge it first: the test installs and purges its own" ;;
  esac
done
new_users=() new_groups=()
for s in "${servers[@]}"; do
  for d in "/etc/$s" "/var/lib/$s"; do
    [ ! -e "$d" ] || die "$d exists; the test would use or delete it: move it away first"
  done
  getent passwd "$s" >/dev/null || new_users+=("$s")
  getent group "$s" >/dev/null || new_groups+=("$s")
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/cv-packages.XXXXXX")"
chmod 0711 "$tmp" # the scheduler's user reaches its run directory in it
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  local p installed=()
  for p in "${packages[@]}"; do
    case "$(dpkg_status "$p")" in "" | not-installed) ;; *) installed+=("$p") ;; esac
  done
  if [ ${#installed[@]} -gt 0 ]; then apt_get purge "${installed[@]}" >/dev/null 2>&1 || true; fi
  for p in "${servers[@]}"; do rm -rf "/var/lib/$p"; done
  for p in "${new_users[@]}"; do userdel "$p" 2>/dev/null || true; done
  for p in "${new_groups[@]}"; do groupdel "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# run LOG COMMAND...: runs it, showing LOG's tail when it fails.
run() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "$* failed"; }
}

say "cpack -G DEB in $build (version $version)"
# Into the test's own folder: nothing root-owned is left in the build.
run "$tmp/cpack.log" cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/debs"
declare -A files=(
  [voucher-scheduler]="/usr/bin/voucher-scheduler $unit_dir/voucher-scheduler.service
    /etc/voucher-scheduler/scheduler.textproto
    /usr/share/doc/voucher-scheduler/examples/scheduler-postgres.textproto
    /usr/share/computevoucher/prometheus/alerts.yml
    /usr/share/computevoucher/grafana/dashboards/program-overview.json"
  [voucher-agent]="/usr/bin/voucher-agent $unit_dir/voucher-agent.service
    /etc/voucher-agent/agent.textproto"
  [voucherctl]="/usr/bin/voucherctl
    /usr/share/bash-completion/completions/voucherctl
    /usr/share/zsh/vendor-completions/_voucherctl"
)
declare -A conffiles=(
  [voucher-scheduler]=/etc/voucher-scheduler/scheduler.textproto
  [voucher-agent]=/etc/voucher-agent/agent.textproto
  [voucherctl]=""
)
debs=()
for p in "${packages[@]}"; do
  deb="$tmp/debs/${p}_${version}_${arch}.deb"
  [ -f "$deb" ] || die "cpack made no $deb"
  debs+=("$deb")
  [ "$(dpkg-deb -f "$deb" Package)" = "$p" ] || die "$deb: Package is not $p"
  [ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || die "$deb: Version is not $version"
  dpkg-deb --contents "$deb" | awk '{print substr($6, 2)}' >"$tmp/contents"
  for f in ${files[$p]}; do
    grep -qx -- "$f" "$tmp/contents" || die "$deb does not hold $f"
  done
  got="$(dpkg-deb --info "$deb" conffiles 2>/dev/null || true)"
  [ "$got" = "${conffiles[$p]}" ] || die "$deb: conffiles are '$got', not '${conffiles[$p]}'"
done
say "ok: the three packages hold their files and conffiles"

say "apt-get install ${debs[*]##*/}"
# Dependencies must be installed already (they are where it was built), so
# that purging the packages leaves nothing behind.
extra="$(apt_get install --simulate --no-install-recommends "${debs[@]}" 2>/dev/null |
  sed -n 's/^Inst \([^ ]*\).*/\1/p' | grep -vxE 'voucher-scheduler|voucher-agent|voucherctl' || true)"
[ -z "$extra" ] || die "installing the packages would also install: $extra; install them first"
run "$tmp/install.log" apt_get install --no-install-recommends "${debs[@]}"
for cmd in "voucher-scheduler --version" "voucher-agent --version" "voucherctl version"; do
  out="$(/usr/bin/$cmd 2>&1)" || die "/usr/bin/$cmd failed: $out"
  case "$out" in *" $version "*) ;; *) die "/usr/bin/$cmd says '$out', not version $version" ;; esac
done
for s in "${servers[@]}"; do
  IFS=: read -r _ _ uid _ _ home shell < <(getent passwd "$s") || die "no user $s"
  [ "$uid" -lt 1000 ] && [ "$home" = "/var/lib/$s" ] && [ "$shell" = /usr/sbin/nologin ] ||
    die "user $s: uid $uid, home $home, shell $shell (want a system user, /var/lib/$s, nologin)"
  [ "$(stat -c '%U:%G %a' "/var/lib/$s")" = "$s:$s 700" ] ||
    die "/var/lib/$s is $(stat -c '%U:%G %a' "/var/lib/$s"), not $s:$s 700"
  exe="$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit_dir/$s.service")"
  [ -x "$exe" ] || die "$unit_dir/$s.service starts '$exe', which the package did not install"
done
if command -v systemd-analyze >/dev/null; then
  # Only what it says of these units: the host's other units are not ours.
  out="$(systemd-analyze verify "$unit_dir/voucher-scheduler.service" "$unit_dir/voucher-agent.service" 2>&1 |
    grep voucher- || true)"
  [ -z "$out" ] || die "systemd-analyze verify on the installed units: $out"
fi
[ -f /etc/voucher-scheduler/scheduler.textproto ] && [ -f /etc/voucher-agent/agent.textproto ] ||
  die "the example configurations are not in /etc"
out="$(bash -c 'source /usr/share/bash-completion/completions/voucherctl &&
  COMP_WORDS=(voucherctl adm) COMP_CWORD=1 && _voucherctl && echo "${COMPREPLY[*]}"' 2>&1)"
[ "$out" = admin ] || die "the installed bash completion offers '$out' for 'voucherctl adm'"
say "ok: binaries print $version, users, state directories, units and configuration in place"

# The installed scheduler on its installed configuration and state
# directory, as its user, on loopback ports of its own.
install -d -o voucher-scheduler -g voucher-scheduler -m 0700 "$tmp/run"
setpriv --reuid voucher-scheduler --regid voucher-scheduler --init-groups -- \
  /usr/bin/voucher-scheduler serve --config /etc/voucher-scheduler/scheduler.textproto \
  --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --port-file "$tmp/run/port" \
  >"$tmp/scheduler.log" 2>&1 &
pid=$!
deadline=$((SECONDS + 60))
until [ -s "$tmp/run/port" ] && [ -s /var/lib/voucher-scheduler/admin.token ]; do
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/scheduler.log" >&2; die "the scheduler exited"; }
  [ $SECONDS -lt $deadline ] || { cat "$tmp/scheduler.log" >&2; die "the scheduler did not serve in 60 s"; }
  sleep 0.1
done
[ "$(stat -c %U /var/lib/voucher-scheduler/admin.token)" = voucher-scheduler ] ||
  die "admin.token is not voucher-scheduler's"
out="$(HOME="$tmp" XDG_CONFIG_HOME="$tmp" \
  VOUCHERCTL_TOKEN="$(cat /var/lib/voucher-scheduler/admin.token)" \
  /usr/bin/voucherctl --endpoint "127.0.0.1:$(cat "$tmp/run/port")" whoami 2>&1)" ||
  die "voucherctl whoami failed: $out"
grep -q '^Role: *admin$' <<<"$out" || die "voucherctl whoami: $out"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || { cat "$tmp/scheduler.log" >&2; die "the scheduler exited $status on SIGTERM"; }
say "ok: the scheduler served as voucher-scheduler; voucherctl whoami answered with its admin token"

say "apt-get remove"
run "$tmp/remove.log" apt_get remove "${packages[@]}"
for p in "${packages[@]}"; do
  for f in ${files[$p]}; do
    case " ${conffiles[$p]} " in
      *" $f "*) [ -f "$f" ] || die "remove deleted the conffile $f" ;;
      *) [ ! -e "$f" ] || die "remove left $f" ;;
    esac
  done
done
for s in "${servers[@]}"; do
  [ "$(dpkg_status "$s")" = config-files ] || die "$s after remove: '$(dpkg_status "$s")', not config-files"
done
say "ok: remove deleted the files and kept the conffiles"

say "apt-get purge"
run "$tmp/purge.log" apt_get purge "${packages[@]}"
for s in "${servers[@]}"; do
  case "$(dpkg_status "$s")" in "" | not-installed) ;; *) die "$s after purge: $(dpkg_status "$s")" ;; esac
  [ ! -e "/etc/$s" ] || die "purge left /etc/$s"
  [ ! -e "/var/lib/systemd/deb-systemd-helper-enabled/$s.service.dsh-also" ] ||
    die "purge left deb-systemd-helper's state of $s.service"
  [ -d "/var/lib/$s" ] && getent passwd "$s" >/dev/null ||
    die "purge deleted /var/lib/$s or the user $s (they are kept)"
done
[ -s /var/lib/voucher-scheduler/admin.token ] || die "purge deleted the scheduler's data"
say "ok: purge deleted the configuration, kept /var/lib/<name> and the users"
say "PASS"
