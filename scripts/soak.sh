#!/usr/bin/env bash
# The fault soak (tests/e2e/soak_test.cc), run by hand, not in CI: SIGKILL
# loops of the scheduler and of both agents under redemption and usage
# ingest for SECONDS (default 300), then every allocation metered once,
# conservation per voucher and `voucher-scheduler verify`. Prints the
# figures; exits non-zero on any failure.
#
#   scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release fault_soak voucher-scheduler voucher-agent >/dev/null
CV_SOAK_SECONDS="${1:-300}" CV_BUILD_DIR="$PWD/build" \
  build/tests/fault_soak --gtest_also_run_disabled_tests \
  --gtest_filter='FaultSoak.*'
