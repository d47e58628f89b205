// How an allocation's GPUs reach the tenant and how they are taken back.
//
// The agent's reconciler (agent/agent.h) decides what should run; a
// Runtime makes it so on the cluster:
//   - `simulated`: a reservation; nothing runs (tests, demos);
//   - `process`: the allocation's workload command as a child process, in
//     a bubblewrap sandbox as an unprivileged user (agent/process_runtime.h);
//   - `slurm`: a Slurm job held for the tenant's mapped user and account,
//     in which the tenant runs steps (agent/slurm_runtime.h).
// Usage is the allocation's GPUs × the time the runtime says they were
// held (RuntimeStatus::started_at until it ended or was stopped); telemetry
// (agent/gpus.h) is evidence and drives the idle flag.
//
// Runtimes and their allocations are used by the agent's loop thread only.
#ifndef COMPUTEVOUCHER_AGENT_RUNTIME_H_
#define COMPUTEVOUCHER_AGENT_RUNTIME_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "computevoucher/v1/agent.pb.h"

namespace computevoucher::agent {

namespace pb = ::computevoucher::v1;

// What to start.
struct RuntimeSpec {
  pb::DesiredAllocation desired;
  // GPUs of the agent's inventory counted for it (telemetry indices).
  std::vector<int> gpu_indices;
  // The agent already metered it before a restart: the runtime looks for
  // what it started then instead of starting it twice.
  bool resumed = false;
};

// How an allocation ended on its own (not by RuntimeAllocation::Stop).
struct RuntimeEnd {
  // When it ended; usage is charged up to here. InfiniteFuture: when the
  // agent learnt of it (its clock, read after the call that said so).
  absl::Time at;
  // The workload exited by itself with this code (0..255, or 128 + the
  // signal); nullopt when the cluster ended it (ended_on_cluster).
  std::optional<int> exit_code;
  // What the cluster said, e.g. "slurm job 42 CANCELLED".
  std::string detail;
};

// The runtime's view of one allocation at the last poll.
struct RuntimeStatus {
  // False while the cluster has not given the GPUs yet (a Slurm job still
  // PENDING): such time is never charged.
  bool started = false;
  // When the GPUs were given; InfinitePast when the runtime cannot tell
  // (they were given when started).
  absl::Time started_at = absl::InfinitePast();
  // Set once it ended by itself.
  std::optional<RuntimeEnd> ended;
  // Whether the tenant's work runs on the GPUs now (Slurm: a step other
  // than the holding one); nullopt when only telemetry can tell.
  std::optional<bool> busy;
  // What the runtime knows of the tenant's work, for usage records
  // (at most 512 characters).
  std::string evidence;
};

class RuntimeAllocation {
 public:
  virtual ~RuntimeAllocation() = default;
  // The allocation's state as last seen.
  virtual RuntimeStatus Status(absl::Time now) = 0;
  // How the tenant reaches its GPUs (at most 1024 characters).
  virtual std::string Access() const = 0;
  // Moves the time limit to `deadline` (the scheduler extended it).
  virtual void Extend(absl::Time deadline) = 0;
  // Starts taking the GPUs back at `now`: the tenant's processes get
  // SIGTERM, and are killed once `grace` has passed. Repeated calls do not
  // restart the grace period.
  virtual void Stop(absl::Time now, absl::Duration grace) = 0;
  // True once everything of it is gone from the cluster.
  virtual bool Gone(absl::Time now) = 0;
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  // "simulated", "process" or "slurm".
  virtual std::string name() const = 0;
  // Reads the cluster's state; called at every step of the agent's loop
  // (a runtime that polls a cluster rate-limits itself).
  virtual void Poll(absl::Time now) {}
  // OK while the cluster answers; otherwise why not (the agent reports
  // itself unhealthy and keeps metering what it last saw).
  virtual absl::Status Health() const { return absl::OkStatus(); }
  // True when allocations keep running while the agent is stopped (Slurm
  // jobs): the agent then leaves them to a restarted agent to find again
  // instead of stopping them on its way out.
  virtual bool AllocationsOutliveAgent() const { return false; }
  // GPUs the cluster could give now per model, when it knows better than
  // the agent's own count (Slurm: other jobs use GPUs too).
  virtual std::optional<std::map<std::string, int>> FreeGpus() const {
    return std::nullopt;
  }
  // Starts (or, for a resumed allocation, finds again) `spec`. Errors:
  // InvalidArgument or FailedPrecondition when it can never start here (the
  // agent refuses it); Unavailable when the cluster does not answer (the
  // agent tries again at the next heartbeat).
  virtual absl::StatusOr<std::unique_ptr<RuntimeAllocation>> Start(
      const RuntimeSpec& spec, absl::Time now) = 0;
  // Called after the agent converged on the scheduler's desired set:
  // `known` are the allocations the agent keeps. Whatever the runtime finds
  // on the cluster for other allocations (left by a crashed agent) is
  // stopped.
  virtual void ForgetOthers(const std::set<std::string>& known,
                            absl::Time now) {}
};

// A runtime whose allocations are reservations: started at once, never
// ending by themselves, gone as soon as stopped.
std::unique_ptr<Runtime> NewSimulatedRuntime(std::string access_template);

// Replaces {name} placeholders of `text` by `values`; unknown placeholders
// stay as they are. The result is what the scheduler takes as access
// instructions: at most 1024 characters, control characters but line
// feeds replaced (CleanText).
std::string ExpandAccess(const std::string& text,
                         const std::map<std::string, std::string>& values);

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_RUNTIME_H_
