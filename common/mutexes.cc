#include "common/mutexes.h"

#include "absl/synchronization/mutex.h"

namespace computevoucher {

void UseReleaseMutexChecks() {
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

}  // namespace computevoucher
