// voucher-scheduler as a library: the store, the writer, the ticker and the
// gRPC server, started together and stopped together.
#ifndef COMPUTEVOUCHER_SCHEDULER_SERVER_H_
#define COMPUTEVOUCHER_SCHEDULER_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "computevoucher/v1/config.pb.h"
#include "grpcpp/server.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "scheduler/api/admin_service.h"
#include "scheduler/api/agent_service.h"
#include "scheduler/api/enterprise_service.h"
#include "scheduler/api/grpc_metrics.h"
#include "scheduler/api/liveness.h"
#include "scheduler/api/service_base.h"
#include "scheduler/api/usage_metrics.h"
#include "scheduler/engine/replica.h"
#include "scheduler/engine/writer.h"
#include "scheduler/metrics.h"
#include "scheduler/store/store.h"

namespace grpc {
class ServerBuilder;
}  // namespace grpc

namespace computevoucher::scheduler {

namespace pb = ::computevoucher::v1;

// Fills unset fields of `config` with defaults and checks the rest;
// InvalidArgument naming the field otherwise.
absl::Status NormalizeConfig(pb::SchedulerConfig& config);

// Sets how many of the server's threads wait for calls (MAX_POLLERS; see
// server.cc). Call before BuildAndStart.
void SetServerThreads(grpc::ServerBuilder& builder);

class SchedulerServer {
 public:
  // Opens the store `config` names and starts serving as a replica of it
  // (store/replica.h): when this replica leads, which a scheduler on the
  // embedded store always does, it has rebuilt the state and written the
  // first admin token to `<data_dir>/admin.token` (mode 0600) when the
  // store has no token yet by the time this returns; a follower answers
  // calls UNAVAILABLE naming the leader. With `config.metrics_address()`
  // set, also serves Prometheus metrics at /metrics there
  // (deploy/METRICS.md). Unavailable when it cannot listen on either
  // address. `clock` must outlive the server.
  static absl::StatusOr<std::unique_ptr<SchedulerServer>> Start(
      pb::SchedulerConfig config, Clock& clock);
  ~SchedulerServer();
  SchedulerServer(const SchedulerServer&) = delete;
  SchedulerServer& operator=(const SchedulerServer&) = delete;

  // The port actually bound (useful with port 0).
  int port() const { return port_; }
  // The port /metrics is served on; 0 when metrics_address is not set.
  int metrics_port() const { return metrics_port_; }
  // Path of the admin token written at first start; empty otherwise.
  const std::string& admin_token_path() const { return admin_token_path_; }
  engine::Replica& replica() { return *replica_; }

  // What the ticker does every tick_interval_ms: while this replica leads,
  // carries time forward and declares silent clusters lost; and says in the
  // health service whether this replica serves. Tests with an injected
  // clock call it instead of waiting for the ticker.
  void TickNow();

  // Graceful stop: refuse new RPCs (UNAVAILABLE), let those in progress
  // finish (up to `grace`) and their answers go out (up to kFlushAnswers
  // more, within `grace`: gRPC waits that long for a client that keeps its
  // connection open, so it is short), close every connection, answer every
  // queued command, flush, stop the ticker, and stop serving metrics.
  // Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(10));
  static constexpr absl::Duration kFlushAnswers = absl::Milliseconds(250);

 private:
  SchedulerServer() = default;
  // Start's steps: opens the store and the replica over it (with the
  // writer's metrics), makes the services, and listens.
  absl::Status OpenReplica();
  void MakeServices();
  absl::Status Listen(
      const std::shared_ptr<grpc::ServerCredentials>& credentials);
  // What a replica does when it starts leading.
  absl::Status OnLead(engine::Writer& writer);
  absl::Status BootstrapAdminToken(engine::Writer& writer);
  void TickLoop();
  // Logs a ClusterLost command for every cluster with running allocations
  // whose agent has been silent past the grace period.
  void DeclareSilentClustersLost(engine::Writer& writer);
  // SERVING while this replica leads and its writer has not failed.
  void UpdateHealth();

  pb::SchedulerConfig config_;
  Clock* clock_ = nullptr;
  // Declared before what they observe, so that they outlive it.
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<WriterMetrics> writer_metrics_;
  std::unique_ptr<api::GrpcMetrics> grpc_metrics_;
  std::unique_ptr<api::UsageMetrics> usage_metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<engine::Replica> replica_;
  std::unique_ptr<api::Liveness> liveness_;
  api::CallTracker calls_;
  api::TokenUses token_uses_;
  api::ServiceContext services_context_;
  std::unique_ptr<api::AdminServiceImpl> admin_service_;
  std::unique_ptr<api::EnterpriseServiceImpl> enterprise_service_;
  std::unique_ptr<api::AgentServiceImpl> agent_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::shared_ptr<StateCollector> state_metrics_;
  std::unique_ptr<prometheus::Exposer> metrics_exposer_;
  int metrics_port_ = 0;
  std::string admin_token_path_;
  absl::Notification stop_ticker_;
  std::thread ticker_;
  bool shut_down_ = false;
};

// Runs the scheduler until SIGTERM or SIGINT, then shuts down gracefully.
// Returns the process exit code.
int RunScheduler(pb::SchedulerConfig config);

}  // namespace computevoucher::scheduler

#endif  // COMPUTEVOUCHER_SCHEDULER_SERVER_H_
