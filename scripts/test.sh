#!/usr/bin/env bash
# Sets up, builds and runs every test: the release build (g++), then the
# same suite built with clang under AddressSanitizer and
# UndefinedBehaviorSanitizer (which also checks the lock annotations with
# -Wthread-safety). Set CV_SKIP_SANITIZE=1 to run the release suite only.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
jobs="$(nproc)"

echo "== release build (g++)"
scripts/build.sh release
(cd build && ctest --output-on-failure -j "$jobs")

if [ "${CV_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== sanitizer build (clang, ASan + UBSan, -Wthread-safety)"
  scripts/build.sh sanitize
  (cd build-sanitize && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j "$jobs")
fi
echo "== all tests passed"
