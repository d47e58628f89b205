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

// The premise of TurnOffMutexDeadlockDetection: the Abseil this is built
// with checks the lock order in every program (Debian's does). Should this
// fail, the check is off already and the call is no longer needed.
TEST(Mutexes, AbseilChecksTheLockOrderUnlessTurnedOff) {
  EXPECT_DEATH(LockInBothOrders(), "deadlock");
}

TEST(Mutexes, TurnedOffTheLockOrderIsNotChecked) {
  EXPECT_EXIT(
      {
        TurnOffMutexDeadlockDetection();
        LockInBothOrders();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace computevoucher
