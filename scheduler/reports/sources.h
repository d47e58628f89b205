// Where reports read from: committed state and the stores.
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_SOURCES_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_SOURCES_H_

#include <functional>

#include "absl/status/status.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/archived_history.h"
#include "scheduler/store/command_log.h"
#include "scheduler/store/retired.h"
#include "scheduler/store/usage_index.h"

namespace computevoucher::reports {

namespace pb = ::computevoucher::v1;

// Runs `fn` on committed state, read-only: engine::Writer::Read in the
// server (which may run `fn` more than once, so `fn` assigns its results
// rather than adding to them), the state itself in tests. An error means
// `fn` did not run.
using StateReader = std::function<absl::Status(
    const std::function<void(const core::StateMachine&)>& fn)>;

struct Sources {
  StateReader read_state;
  store::UsageIndex* usage = nullptr;
  store::CommandLog* log = nullptr;
  // Allocations no longer in the state; nullptr: none retired.
  store::RetiredRecords* retired = nullptr;
  // Usage summed per day for archived periods; nullptr: nothing archived.
  store::ArchivedHistory* archived = nullptr;
};

}  // namespace computevoucher::reports

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_SOURCES_H_
