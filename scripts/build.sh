#!/usr/bin/env bash
# Configures and builds computevoucher.
#   scripts/build.sh            release build (g++) in build/
#   scripts/build.sh sanitize   clang with ASan + UBSan and -Wthread-safety in build-sanitize/,
#                               with the libFuzzer targets (tests/fuzz/)
# Extra arguments after the kind are passed to ninja (e.g. a target name).
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${1:-release}"
shift || true
case "$kind" in
  release)
    dir=build
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    ;;
  sanitize)
    dir=build-sanitize
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCV_SANITIZE=ON \
      -DCV_BUILD_BENCH=OFF -DCV_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ >/dev/null
    ;;
  *)
    echo "usage: scripts/build.sh [release|sanitize] [ninja targets...]" >&2
    exit 2
    ;;
esac
ninja -C "$dir" "$@"
