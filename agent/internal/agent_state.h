// What the files implementing Agent share (agent.cc, agent_rpc.cc,
// agent_converge.cc, agent_usage.cc): the state of one allocation the agent
// runs and meters, and the helpers more than one of them needs. Owned and
// used by the agent's loop thread only.
#ifndef COMPUTEVOUCHER_AGENT_INTERNAL_AGENT_STATE_H_
#define COMPUTEVOUCHER_AGENT_INTERNAL_AGENT_STATE_H_

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/meter.h"
#include "agent/runtime.h"
#include "computevoucher/v1/agent.pb.h"

namespace computevoucher::agent {

struct Agent::Running {
  Running(absl::Time interval_start, absl::Duration idle_after)
      : meter(interval_start), idle(idle_after) {}
  pb::DesiredAllocation desired;
  std::vector<int> gpu_indices;
  // Null for an allocation that ended while the agent was down.
  std::unique_ptr<RuntimeAllocation> handle;
  // The runtime has given the GPUs (a Slurm job left PENDING).
  bool started = true;
  // The runtime's evidence at the last look, for the records, and whether
  // it saw the tenant's work running (nullopt: it cannot tell).
  std::string evidence;
  std::optional<bool> busy;
  UsageMeter meter;
  IdleTracker idle;
  // Metering ends here once the allocation is stopping.
  std::optional<absl::Time> stop_at;
  bool final_spooled = false;
  // The workload exited by itself with this code.
  std::optional<int> exit_code;
  // The cluster ended it on its own, saying this.
  std::optional<std::string> ended_on_cluster;
  // Listed in the scheduler's last desired set.
  bool wanted = true;
  // Stopped because its deadline passed (the scheduler may extend it).
  bool stopped_at_deadline = false;
};

namespace internal {

// The shortest wait before a call to the scheduler is tried again.
inline constexpr absl::Duration kMinBackoff = absl::Milliseconds(200);

// A fresh request id for a call to the scheduler.
std::string RequestId(std::mt19937_64& random);

// When the allocation must stop; never for one without a deadline (one that
// ended while the agent was down).
absl::Time DeadlineOf(const pb::DesiredAllocation& d);

}  // namespace internal
}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_INTERNAL_AGENT_STATE_H_
