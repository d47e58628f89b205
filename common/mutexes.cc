#include "common/mutexes.h"

#include "absl/synchronization/mutex.h"

namespace computevoucher {

void TurnOffMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace computevoucher
