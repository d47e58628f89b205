#include "common/mutexes.h"

#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace computevoucher {
namespace {

// Takes two locks in one order and then in the other, one after the
// other: never a deadlock, but an order deadlock detection reports.
void LockInBothOrders() {
  absl::Mutex a, b;
  {
    absl::MutexLock first(&a);
    absl::MutexLock second(&b);
  }
  {
    absl::MutexLock first(&b);
    absl::MutexLock second(&a);
  }
}

// The premise of UseReleaseMutexChecks: the Abseil this is built with
// checks the lock order in every program (Debian's does). Should this
// fail, the check is off already and the call is no longer needed.
TEST(MutexesDeathTest, AbseilChecksTheLockOrderUnlessTurnedOff) {
  EXPECT_DEATH(LockInBothOrders(), "deadlock");
}

#ifdef NDEBUG
TEST(MutexesDeathTest, AReleaseBuildDoesNotCheckTheLockOrder) {
  EXPECT_EXIT(
      {
        UseReleaseMutexChecks();
        LockInBothOrders();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}
#else
TEST(MutexesDeathTest, ADebugBuildKeepsCheckingTheLockOrder) {
  EXPECT_DEATH(
      {
        UseReleaseMutexChecks();
        LockInBothOrders();
      },
      "deadlock");
}
#endif

}  // namespace
}  // namespace computevoucher
