#!/usr/bin/env bash
# Installs the Debian packages computevoucher builds and tests with. Safe to
# run again: it only calls apt-get when something is missing.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang
  # libFuzzer for the fuzz targets (tests/fuzz/)
  libclang-rt-14-dev
  # gRPC, Protobuf, Abseil
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev zlib1g-dev
  # metrics
  prometheus-cpp-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # tcmalloc for the servers
  libgoogle-perftools-dev
  # embedded store, hashing and TLS
  libsqlite3-dev sqlite3 libssl-dev openssl
  # the PostgreSQL store: libpq, and a server for its tests
  # (scripts/testing/postgres.sh)
  libpq-dev postgresql
  # Prometheus and promtool, for the checks of deploy/ (tests/deploy/); python3
  # for the shell tests' helpers
  prometheus python3 python3-yaml
  # zsh, for the test of voucherctl's zsh completion
  zsh
  # the agent's runtimes: a real Slurm for the slurm runtime's tests and the
  # Slurm demo (scripts/testing/slurm.sh), bubblewrap for the process
  # runtime's sandbox
  slurmctld slurmd slurm-client bubblewrap
  # the Debian packages (cpack -G DEB, scripts/testing/packages.sh):
  # dpkg-shlibdeps computes their dependencies, and CPack needs file
  dpkg-dev file
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
