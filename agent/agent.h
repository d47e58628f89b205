// voucher-agent's control loop: meters the allocations running on a
// cluster, spools their usage, reports it until acknowledged, and converges
// on the allocations the scheduler wants.
//
// One thread runs the loop (Run); Stop may be called from any thread. Every
// step is driven by the injected clock, so metering goes on whether or not
// the scheduler answers: a call that fails is retried with exponential
// backoff and jitter while records pile up in the spool.
//
// The scheduler may be several replicas (scheduler_address is a
// comma-separated list) of which one leads (common/leader.h). A call a
// replica refuses with UNAVAILABLE naming the leader is sent again at once
// to the leader, up to kMaxLeaderHops leaders in a row; a call that finds
// no server (UNAVAILABLE or DEADLINE_EXCEEDED without a leader named) moves
// on to the next replica of the list, after the usual backoff. Either way
// the agent registers again before anything else, as after any outage.
// Usage records are resent unchanged: the scheduler deduplicates them by
// (allocation, sequence), whichever replica hears them.
//
// What runs is the runtime's business (agent/runtime.h: simulated,
// process, slurm); the agent is the reconciler above it: it starts what the
// scheduler wants, stops what it no longer wants, and reaps what is gone.
// Usage of an allocation is its GPUs × the time the runtime held them for
// it (never while a Slurm job is pending), cut into records every report
// interval, with the mean utilisation and the energy its GPUs read
// meanwhile (telemetry, agent/gpus.h) and the runtime's evidence. Each
// record continues its allocation's spool cursor, so after a crash the
// agent resumes every allocation where its last spooled record ended.
#ifndef COMPUTEVOUCHER_AGENT_AGENT_H_
#define COMPUTEVOUCHER_AGENT_AGENT_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/gpus.h"
#include "agent/metrics.h"
#include "agent/runtime.h"
#include "agent/spool.h"
#include "common/clock.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "computevoucher/v1/config.pb.h"
#include "prometheus/registry.h"

namespace computevoucher::agent {

// Fills defaults into `config` and checks it; InvalidArgument names the
// field, the value and the rule.
absl::Status NormalizeAgentConfig(pb::AgentConfig& config);

// Makes a stub for the scheduler replica at `address` ("host:port"). The
// agent calls it for the first replica and again at every switch.
using StubFactory =
    std::function<std::unique_ptr<pb::AgentService::StubInterface>(
        const std::string& address)>;

// Leaders named in a row that the agent follows without backoff, so that
// replicas naming each other cannot make it loop.
inline constexpr int kMaxLeaderHops = 3;

class Agent {
 public:
  // `config` must be normalized, with the inventory (models, classes,
  // prices) matching `gpus`. `registry` (may be null) receives the agent's
  // metrics. `stubs` makes the stubs toward the replicas (see
  // NewAgentStubFactory); every call carries `token`.
  Agent(pb::AgentConfig config, StubFactory stubs, std::string token,
        std::unique_ptr<GpuSource> gpus, std::unique_ptr<Runtime> runtime,
        std::unique_ptr<Spool> spool, Clock& clock,
        prometheus::Registry* registry);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs until Stop(). On the way out it spools the usage metered so far,
  // stops workloads (SIGTERM, then SIGKILL after the grace period) unless
  // the runtime keeps them without the agent (Slurm jobs), and makes one
  // last attempt to send the spool. Allocations are not given up: a
  // restarted agent resumes them.
  void Run();

  // Asks Run to return. Thread-safe.
  void Stop();

  // Does whatever is due at the clock's now; returns when next to wake.
  // Run calls it in a loop; tests may call it directly.
  absl::Time Step();

 private:
  struct Running;

  absl::Time Now();
  absl::Duration IdleAfter() const;
  void Log(const std::string& line);
  void Sample(absl::Time now);
  void Cut(absl::Time now, bool all);
  bool SendUsage(absl::Time now);
  bool SendHeartbeat(absl::Time now);
  bool Register(absl::Time now);
  // Acts on a heartbeat answer: stops what is no longer wanted, reports
  // what ended while the agent was down, starts what is new, and has the
  // runtime stop what belongs to no allocation (agent_converge.cc).
  void Converge(const pb::HeartbeatResponse& response, absl::Time now);
  // The steps of Converge, in order. CheckDesired refuses (and leaves out)
  // the ids listed more than once or not valid ids.
  struct DesiredSet;
  DesiredSet CheckDesired(const pb::HeartbeatResponse& response);
  void UpdateRunning(const DesiredSet& desired, absl::Time now);
  void AdoptEndedWhileDown(const DesiredSet& desired, absl::Time now);
  void StartWanted(const DesiredSet& desired, absl::Time now);
  void StopStrays(absl::Time now);
  // The first `d.gpu_count()` GPUs of `d`'s model that are not in `used`.
  std::vector<int> PickGpus(const pb::DesiredAllocation& d,
                            const std::set<int>& used) const;
  void StartAllocation(const pb::DesiredAllocation& d,
                       std::vector<int> gpu_indices, absl::Time now);
  // Reads the runtime's view of `r`: when its GPUs were given (usage starts
  // there, never while pending) and whether it ended by itself.
  void Observe(Running& r, absl::Time now);
  // Stops metering `r` at `at`, or now if that is earlier (InfiniteFuture:
  // now, read after whatever call told the agent to stop), and its workload.
  void BeginStop(Running& r, absl::Time at, const std::string& why);
  void Reap(absl::Time now);
  std::map<std::string, int> FreeGpus() const;
  // Counts a failed call; follows the leader `context`'s answer names, or
  // moves on to the next replica, or backs off.
  void RpcFailed(const char* rpc, const grpc::Status& status,
                 const grpc::ClientContext& context, absl::Time now);
  // Replaces the stub with one toward `address`.
  void SwitchTo(const std::string& address);
  void RpcSucceeded();
  bool Reachable(absl::Time now) const;
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  void Refuse(const std::string& allocation_id, const std::string& why);
  void UpdateGauges(absl::Time now);

  const pb::AgentConfig config_;
  const StubFactory stubs_;
  // The replicas of scheduler_address, in the order given.
  const std::vector<std::string> addresses_;
  const std::string token_;
  const std::unique_ptr<GpuSource> gpus_;
  const std::unique_ptr<Runtime> runtime_;
  const std::unique_ptr<Spool> spool_;
  Clock& clock_;
  std::unique_ptr<AgentMetrics> metrics_;

  // Loop state, owned by the thread in Run/Step.
  // The replica called now (a leader named by a follower need not be in
  // addresses_), and the entry of addresses_ last moved to.
  std::unique_ptr<pb::AgentService::StubInterface> stub_;
  std::string address_;
  size_t list_position_ = 0;
  // Leaders followed since the last backoff or answer.
  int leader_hops_ = 0;
  // A leader was just named: call it without waiting.
  bool retry_now_ = false;
  std::map<std::string, std::unique_ptr<Running>> running_;
  // Cursors found in the spool at start, settled by the first heartbeat.
  std::set<std::string> resumable_;
  std::map<std::string, std::string> refused_;  // id → reason last logged
  // Allocations the runtime can never start here (e.g. an enterprise with
  // no Slurm user), with why: reported as ended on the cluster while the
  // scheduler still lists them.
  std::map<std::string, std::string> rejected_;
  bool registered_ = false;
  bool heard_from_scheduler_ = false;
  pb::ClusterState cluster_state_ = pb::CLUSTER_STATE_UNSPECIFIED;
  absl::Duration heartbeat_interval_;
  absl::Time next_sample_ = absl::InfinitePast();
  absl::Time next_cut_;
  absl::Time next_heartbeat_ = absl::InfinitePast();
  absl::Time next_rpc_ = absl::InfinitePast();  // backoff
  absl::Duration backoff_ = absl::ZeroDuration();
  int failures_ = 0;
  bool spool_full_logged_ = false;
  // The runtime's health at the last step, to log its changes once.
  bool runtime_up_ = true;
  std::mt19937_64 random_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

// Makes stubs with the same credentials for every replica: TLS when `tls`
// names a CA bundle; mutual TLS when it also names a certificate and key.
// The files are read once, here; InvalidArgument when one cannot be read,
// naming it, or when the TLS settings are incomplete.
absl::StatusOr<StubFactory> NewAgentStubFactory(const pb::TlsConfig& tls);

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_AGENT_H_
