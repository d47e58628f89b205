#!/usr/bin/env bash
# Sets up, builds and runs every test: the release build (g++), then the
# same suite built with clang under AddressSanitizer and
# UndefinedBehaviorSanitizer (which also checks the lock annotations with
# -Wthread-safety), and runs its fuzz targets for CV_FUZZ_SECONDS each
# (default 30). Set CV_SKIP_SANITIZE=1 to run the release suite only, and
# CV_SKIP_PACKAGES=1 to leave out the Debian packages' install test (it
# installs and purges them on this machine, as root).
# A throwaway PostgreSQL server (scripts/testing/postgres.sh) runs for the
# whole run, so that the store tests cover the PostgreSQL store too, and a
# single-node Slurm cluster (scripts/testing/slurm.sh) for the agent's slurm
# runtime; failing to start either fails the run. After the release suite,
# scripts/testing/packages.sh builds the Debian packages, installs them,
# runs the installed scheduler, and removes and purges them again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
jobs="$(nproc)"

echo "== structure (layering, file and function sizes)"
python3 scripts/check_structure.py

pg_dir="$(mktemp -d)"
slurm_dir="$(mktemp -d)"
trap 'scripts/testing/postgres.sh stop "$pg_dir"; scripts/testing/slurm.sh stop "$slurm_dir"' EXIT
if ! CV_TEST_POSTGRES_URL="$(scripts/testing/postgres.sh start "$pg_dir")"; then
  echo "test.sh: could not start PostgreSQL for the store tests" >&2
  exit 1
fi
export CV_TEST_POSTGRES_URL
echo "== PostgreSQL for the store tests: $CV_TEST_POSTGRES_URL"
if ! CV_TEST_SLURM_CONF="$(scripts/testing/slurm.sh start "$slurm_dir")"; then
  echo "test.sh: could not start Slurm for the slurm runtime's tests" >&2
  exit 1
fi
export CV_TEST_SLURM_CONF
echo "== Slurm for the agent's tests: $CV_TEST_SLURM_CONF"

echo "== release build (g++)"
scripts/build.sh release
(cd build && ctest --output-on-failure -j "$jobs")
if [ "${CV_SKIP_PACKAGES:-0}" != "1" ]; then
  echo "== Debian packages: build, install, run, remove, purge"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo scripts/testing/packages.sh build
fi

if [ "${CV_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== sanitizer build (clang, ASan + UBSan, -Wthread-safety)"
  scripts/build.sh sanitize
  (cd build-sanitize && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j "$jobs")
  echo "== fuzzing (libFuzzer, ${CV_FUZZ_SECONDS:-30} s per target)"
  scripts/fuzz.sh "${CV_FUZZ_SECONDS:-30}"
fi
echo "== all tests passed"
