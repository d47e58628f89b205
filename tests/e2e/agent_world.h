// End-to-end world for agent tests: the real voucher-scheduler binary on a
// temporary data directory, the standard world of tests/testing/world.h
// built through its admin API (with a program valid around today), and real
// voucher-agent binaries for the clusters "hz-a" (8 × H100, 16 × 910B) and
// "sz-b" (8 × H100), with fast heartbeats and short usage records.
#ifndef COMPUTEVOUCHER_TESTS_E2E_AGENT_WORLD_H_
#define COMPUTEVOUCHER_TESTS_E2E_AGENT_WORLD_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::testing {

namespace pb = ::computevoucher::v1;

class AgentWorld : public ::testing::Test {
 protected:
  // Agents heartbeat and cut records at these intervals.
  static constexpr int kHeartbeatMs = 200;
  static constexpr int kReportMs = 300;

  void SetUp() override;
  void TearDown() override;

  // Starts the scheduler on the data directory; the first start picks a
  // port, later ones reuse it so that running agents find it again.
  void StartScheduler(std::vector<std::string> extra_args = {});
  // Stops the scheduler with `signal`; returns its exit code.
  int StopScheduler(int signal = SIGTERM);
  // Reconnects the admin and enterprise stubs with `credentials`, e.g. TLS
  // ones after StartScheduler with --tls-cert (StartScheduler itself always
  // connects without TLS).
  void ConnectWith(std::shared_ptr<grpc::ChannelCredentials> credentials);
  std::string scheduler_address() const;
  ChildProcess& scheduler() { return *scheduler_; }

  // Starts (or restarts) the agent of `cluster_id` ("hz-a" or "sz-b") with
  // its token file, spool directory and inventory, plus `extra_args` and
  // `env` ("NAME=value").
  ChildProcess& StartAgent(const std::string& cluster_id,
                           std::vector<std::string> extra_args = {},
                           std::vector<std::string> env = {});
  ChildProcess& agent(const std::string& cluster_id) {
    return *agents_.at(cluster_id);
  }
  std::string spool_dir(const std::string& cluster_id) const {
    return dir_ + "/" + cluster_id + "-spool";
  }
  std::string agent_token_file(const std::string& cluster_id) const {
    return dir_ + "/" + cluster_id + ".token";
  }

  // Waits until the cluster's agent has registered, then approves it.
  void ApproveCluster(const std::string& cluster_id);

  // A client context carrying `token`.
  static std::unique_ptr<grpc::ClientContext> As(const std::string& token);
  std::string NextRequestId();

  // Issues a voucher of P-000001, valid until the program ends or
  // `valid_until`.
  pb::Voucher Issue(const std::string& enterprise_id, int64_t face_value_fen,
                    std::optional<absl::Time> valid_until = std::nullopt);
  // Allocates for E-000001 (e1_token_), paid by `voucher_id` or a voucher
  // the scheduler picks; fails the test on error.
  pb::Allocation Allocate(const std::string& gpu_model, int32_t gpu_count,
                          int64_t duration_s,
                          std::vector<std::string> workload_command = {},
                          const std::string& voucher_id = "");
  // Releases an allocation of E-000001; fails the test on error.
  pb::Allocation Release(const std::string& allocation_id);
  // The allocation as the admin sees it.
  pb::Allocation GetAllocation(const std::string& allocation_id);
  // Every accepted usage record of the allocation (through E-000001).
  std::vector<pb::ChargedUsage> Usage(const std::string& allocation_id);
  // Waits until the allocation is in `state`.
  bool WaitForState(const std::string& allocation_id, pb::AllocationState state,
                    absl::Duration timeout = absl::Seconds(30));
  // Waits until the agent's log has `text`.
  bool WaitForLog(const std::string& cluster_id, const std::string& text,
                  absl::Duration timeout = absl::Seconds(30));
  // Waits until the ended allocation's usage is all acknowledged (the
  // agent said so), then checks it was metered exactly once: sequences
  // 1..n, each interval starting where the previous ended, from its
  // assignment to its end, GPU-ms adding up to GPUs × that span. For a
  // workload that exited by itself, `exited_by` is an instant by which it
  // had not yet exited: it must be metered from then until the agent saw
  // the exit, never past ended_at (the scheduler hears a heartbeat later).
  void ExpectMeteredOnce(const std::string& cluster_id,
                         const std::string& allocation_id,
                         std::optional<absl::Time> exited_by = std::nullopt);
  // The record checks of the above, for the ended allocation `a` and its
  // accepted `usage` (not empty): sequences 1..n, each interval starting
  // where the previous ended, the first no earlier than its assignment, the
  // last ending no earlier than `metered_until` (in whole milliseconds),
  // GPU-ms of GPUs × each interval adding up to its used_gpu_ms, and its
  // last sequence n.
  static void ExpectMeteredOnce(const pb::Allocation& a,
                                const std::vector<pb::ChargedUsage>& usage,
                                absl::Time metered_until);
  // Stops the scheduler and runs `voucher-scheduler verify` on its data:
  // expects it to pass, or returns its exit code and sets *out to what it
  // printed.
  void ExpectVerifies();
  int Verify(std::string* out);
  // The scheduler's command line without the port file (for replicas).
  std::vector<std::string> SchedulerArgs(const std::string& data_dir,
                                         int port) const;

  // Added to every scheduler start and to `verify`: which store (the
  // embedded one in data_dir_ when empty). Set before AgentWorld::SetUp.
  std::vector<std::string> store_args_;
  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  std::string data_dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> scheduler_;
  std::map<std::string, std::unique_ptr<ChildProcess>> agents_;
  std::unique_ptr<pb::AdminService::Stub> admin_;
  std::unique_ptr<pb::EnterpriseService::Stub> enterprise_;
  std::string admin_token_;
  std::string e1_token_;
  int requests_ = 0;
};

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_E2E_AGENT_WORLD_H_
