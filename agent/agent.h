// voucher-agent's control loop: meters the allocations running on a
// cluster, spools their usage, reports it until acknowledged, and converges
// on the allocations the scheduler wants.
//
// One thread runs the loop (Run); Stop may be called from any thread. Every
// step is driven by the injected clock, so metering goes on whether or not
// the scheduler answers: a call that fails is retried with exponential
// backoff and jitter while records pile up in the spool.
//
// Usage of an allocation is its GPUs × the time they were allocated to it,
// cut into records every report interval, with the mean utilisation and the
// energy its GPUs read meanwhile. Each record continues its allocation's
// spool cursor, so after a crash the agent resumes every allocation where
// its last spooled record ended.
#ifndef COMPUTEVOUCHER_AGENT_AGENT_H_
#define COMPUTEVOUCHER_AGENT_AGENT_H_

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
#include "agent/spool.h"
#include "agent/workload.h"
#include "common/clock.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "computevoucher/v1/config.pb.h"
#include "prometheus/registry.h"

namespace cv::agent {

// Fills defaults into `config` and checks it; InvalidArgument names the
// field, the value and the rule.
absl::Status NormalizeAgentConfig(pb::AgentConfig& config);

class Agent {
 public:
  // `config` must be normalized, with the inventory (models, classes,
  // prices) matching `gpus`. `registry` (may be null) receives the agent's
  // metrics. `stub` carries the bearer token itself (see NewAgentStub).
  Agent(pb::AgentConfig config,
        std::unique_ptr<pb::AgentService::StubInterface> stub,
        std::string token, std::unique_ptr<GpuSource> gpus,
        std::unique_ptr<Spool> spool, Clock& clock,
        prometheus::Registry* registry);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs until Stop(). On the way out it spools the usage metered so far,
  // stops workloads (SIGTERM, then SIGKILL after the grace period) and makes
  // one last attempt to send the spool. Allocations are not given up: a
  // restarted agent resumes them.
  void Run();

  // Asks Run to return. Thread-safe.
  void Stop();

  // Does whatever is due at the clock's now; returns when next to wake.
  // Run calls it in a loop; tests may call it directly.
  absl::Time Step();

 private:
  struct Running;
  struct Metrics;

  absl::Time Now();
  void Log(const std::string& line);
  void Sample(absl::Time now);
  void Cut(absl::Time now, bool all);
  bool SendUsage(absl::Time now);
  bool SendHeartbeat(absl::Time now);
  bool Register(absl::Time now);
  void Converge(const pb::HeartbeatResponse& response, absl::Time now);
  void StartAllocation(const pb::DesiredAllocation& d,
                       std::vector<int> gpu_indices, absl::Time now);
  // Stops metering `r` at `at`, or now if that is earlier (InfiniteFuture:
  // now, read after whatever call told the agent to stop), and its workload.
  void BeginStop(Running& r, absl::Time at, const std::string& why);
  void Reap(absl::Time now);
  std::map<std::string, int> FreeGpus() const;
  void RpcFailed(const char* rpc, const grpc::Status& status, absl::Time now);
  void RpcSucceeded();
  bool Reachable(absl::Time now) const;
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  void Refuse(const std::string& allocation_id, const std::string& why);
  void UpdateGauges(absl::Time now);

  const pb::AgentConfig config_;
  const std::unique_ptr<pb::AgentService::StubInterface> stub_;
  const std::string token_;
  const std::unique_ptr<GpuSource> gpus_;
  const std::unique_ptr<Spool> spool_;
  Clock& clock_;
  std::unique_ptr<Metrics> metrics_;

  // Loop state, owned by the thread in Run/Step.
  std::map<std::string, std::unique_ptr<Running>> running_;
  // Cursors found in the spool at start, settled by the first heartbeat.
  std::set<std::string> resumable_;
  std::map<std::string, std::string> refused_;  // id → reason last logged
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
  std::mt19937_64 random_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

// A stub for `address` (TLS when `tls` names a CA bundle; mutual TLS when it
// also names a certificate and key). InvalidArgument when a TLS file cannot
// be read, naming it.
absl::StatusOr<std::unique_ptr<pb::AgentService::StubInterface>> NewAgentStub(
    const std::string& address, const pb::TlsConfig& tls);

}  // namespace cv::agent

#endif  // COMPUTEVOUCHER_AGENT_AGENT_H_
