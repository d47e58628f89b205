// An in-process voucher-scheduler on port 0 over a temporary data directory,
// with an injected clock, and real gRPC stubs for every role.
#ifndef COMPUTEVOUCHER_TESTS_SCHEDULER_API_API_FIXTURE_H_
#define COMPUTEVOUCHER_TESTS_SCHEDULER_API_API_FIXTURE_H_

#include <memory>
#include <string>

#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "scheduler/server.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::testing {

namespace pb = ::computevoucher::v1;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Called by SetUp with the configuration the server is about to start
  // with; a test class changes it here (by default nothing changes).
  virtual void Configure(pb::SchedulerConfig& config) {}

  // (Re)creates the stubs for the server's port.
  void Connect();

  // Stops the server and starts it again on the same data directory and
  // configuration (it rebuilds its state from the store), then reconnects.
  void Restart();

  // A client context carrying `token` as its bearer token ("" sends none).
  static std::unique_ptr<grpc::ClientContext> As(const std::string& token);

  // Creates a token through the admin API and returns its secret.
  std::string CreateToken(pb::Role role, const std::string& enterprise_id = "",
                          const std::string& cluster_id = "",
                          const std::string& provider_id = "");

  // Builds, through the API, the world of tests/testing/world.h: program
  // P-000001, providers PR-000001/PR-000002, enterprises E-000001..3, and
  // approved clusters hz-a (PR-000001) and sz-b (PR-000002) registered by
  // their agents. Fills the *_token_ members.
  void BuildWorld();

  // Commands stored so far, read through a read-only open of the store.
  int64_t StoredCommands();

  // Valid until the program's end unless `valid_until` is finite.
  pb::Voucher Issue(const std::string& enterprise_id, int64_t face_value_fen,
                    const std::string& program_id = "P-000001",
                    absl::Time valid_until = absl::InfiniteFuture());

  FakeClock clock_{
      absl::FromUnixSeconds(1'740'758'400)};  // 2025-03-01 00:00 +08:00
  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  pb::SchedulerConfig config_;  // what the server was started with
  std::unique_ptr<scheduler::SchedulerServer> server_;
  std::unique_ptr<pb::AdminService::Stub> admin_;
  std::unique_ptr<pb::EnterpriseService::Stub> enterprise_;
  std::unique_ptr<pb::AgentService::Stub> agent_;
  std::string admin_token_;
  std::string auditor_token_;
  std::string e1_token_, e2_token_, e3_token_;
  std::string hz_token_, sz_token_;
  int requests_ = 0;
  std::string NextRequestId() { return "req-" + std::to_string(++requests_); }
};

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_SCHEDULER_API_API_FIXTURE_H_
