// Rebuilding the state machine from a store.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_REPLAY_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_REPLAY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/store.h"

namespace cv::store {

struct ReplayReport {
  int64_t commands = 0;
  int64_t entries = 0;
  std::string last_hash;
  // Broken invariants and differences between the stored journal and the
  // journal the replayed commands post; empty when the store is sound.
  std::vector<std::string> violations;
};

// Applies every stored command, in order, to `state` (which must be fresh),
// checks each journal entry the commands post against the stored one, and
// runs the JournalVerifier over the stored journal. Errors are I/O errors
// only; what is wrong with the data is in the report.
absl::StatusOr<ReplayReport> Replay(Store& store, core::StateMachine& state);

}  // namespace cv::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_REPLAY_H_
