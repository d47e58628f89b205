// voucherctl's connections: TLS and mutual TLS to a real voucher-scheduler,
// and scheduler replicas that follow (or lead), played by in-process fakes,
// to check that voucherctl finds the leader.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/leader.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "gtest/gtest.h"
#include "tests/client/voucherctl_fixture.h"
#include "tests/testing/world.h"

namespace computevoucher {
namespace {

namespace pb = ::computevoucher::v1;
using ::computevoucher::testing::DeadAddress;
using ::computevoucher::testing::ParseJson;
using ::computevoucher::testing::Result;
using ::computevoucher::testing::VoucherctlTest;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A scheduler replica played in process. It follows (refuses every call
// with UNAVAILABLE, naming the leader in cv-leader when it knows one) or
// leads (answers ListPrograms, RegisterProvider and GetBalance with
// "fake" objects). Records every call and the request ids of
// RegisterProvider. Thread-safe.
class FakeReplica {
 public:
  // Listens on 127.0.0.1:`port` (0: any free port).
  explicit FakeReplica(int port = 0) : admin_(*this), enterprise_(*this) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&admin_);
    builder.RegisterService(&enterprise_);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    EXPECT_GT(port_, 0);
  }
  ~FakeReplica() {
    if (server_ != nullptr) server_->Shutdown();
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  void Lead() {
    absl::MutexLock lock(&mu_);
    leads_ = true;
  }
  // Follows `leader` ("" for none known yet).
  void Follow(const std::string& leader) {
    absl::MutexLock lock(&mu_);
    leads_ = false;
    leader_ = leader;
  }
  // The next `n` calls are refused naming no leader, whatever else is set.
  void KnowNoLeaderFor(int n) {
    absl::MutexLock lock(&mu_);
    no_leader_calls_ = n;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  std::vector<std::string> request_ids() {
    absl::MutexLock lock(&mu_);
    return request_ids_;
  }

 private:
  class Admin final : public pb::AdminService::Service {
   public:
    explicit Admin(FakeReplica& replica) : replica_(replica) {}
    grpc::Status ListPrograms(grpc::ServerContext* context,
                              const pb::ListProgramsRequest*,
                              pb::ListProgramsResponse* response) override {
      grpc::Status refused = replica_.Refuse(*context, "");
      if (!refused.ok()) return refused;
      pb::Program* program = response->add_programs();
      program->set_program_id("P-FAKE");
      program->set_name("fake program");
      return grpc::Status::OK;
    }
    grpc::Status RegisterProvider(grpc::ServerContext* context,
                                  const pb::RegisterProviderRequest* request,
                                  pb::Provider* response) override {
      grpc::Status refused = replica_.Refuse(*context, request->request_id());
      if (!refused.ok()) return refused;
      response->set_provider_id("PR-FAKE");
      response->set_name(request->name());
      return grpc::Status::OK;
    }

   private:
    FakeReplica& replica_;
  };
  class Enterprise final : public pb::EnterpriseService::Service {
   public:
    explicit Enterprise(FakeReplica& replica) : replica_(replica) {}
    grpc::Status GetBalance(grpc::ServerContext* context,
                            const pb::GetBalanceRequest*,
                            pb::Balance* response) override {
      grpc::Status refused = replica_.Refuse(*context, "");
      if (!refused.ok()) return refused;
      response->set_enterprise_id("E-FAKE");
      return grpc::Status::OK;
    }

   private:
    FakeReplica& replica_;
  };

  // Records the call; OK when this replica leads, else the refusal.
  grpc::Status Refuse(grpc::ServerContext& context,
                      const std::string& request_id) {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (!request_id.empty()) request_ids_.push_back(request_id);
    if (no_leader_calls_ > 0) {
      --no_leader_calls_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "not the leader: this replica follows; no leader "
                          "is known yet");
    }
    if (leads_) return grpc::Status::OK;
    if (leader_.empty()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "not the leader: this replica follows; no leader "
                          "is known yet");
    }
    context.AddTrailingMetadata(kLeaderMetadataKey, leader_);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        absl::StrCat("not the leader: this replica follows; "
                                     "the leader is at ",
                                     leader_));
  }

  Admin admin_;
  Enterprise enterprise_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  bool leads_ ABSL_GUARDED_BY(mu_) = false;
  std::string leader_ ABSL_GUARDED_BY(mu_);
  int no_leader_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> request_ids_ ABSL_GUARDED_BY(mu_);
};

TEST_F(VoucherctlTest, TalksTlsAndMutualTls) {
  ASSERT_TRUE(testing::MakeTestCertificates(dir_));
  const std::string ca = dir_ + "/ca.pem";
  Restart(
      {"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key"});
  const std::vector<std::string> list = {"admin", "program", "list"};
  auto with = [&](std::vector<std::string> flags) {
    flags.insert(flags.end(), list.begin(), list.end());
    return Admin(flags);
  };
  const Result tls = with({"--tls-ca", ca});
  EXPECT_EQ(tls.exit_code, 0) << tls;
  EXPECT_EQ(with({}).exit_code, 3);  // plaintext toward a TLS server

  Restart({"--tls-cert", dir_ + "/server.pem", "--tls-key",
           dir_ + "/server.key", "--tls-client-ca", ca,
           "--require-client-cert"});
  const Result mutual =
      with({"--tls-ca", ca, "--tls-cert", dir_ + "/client.pem", "--tls-key",
            dir_ + "/client.key"});
  EXPECT_EQ(mutual.exit_code, 0) << mutual;
  EXPECT_EQ(with({"--tls-ca", ca}).exit_code, 3);  // no client certificate
}

TEST_F(VoucherctlTest, FollowsTheLeaderAFollowerNames) {
  // A follower naming the real scheduler: the mutation is applied there,
  // with the request id the follower saw.
  FakeReplica follower;
  follower.Follow(endpoint_);
  const pb::RegisterProviderRequest provider = testing::WorldProviders()[0];
  const Result added =
      Run({"--endpoint", follower.address(), "--token", admin_token_, "admin",
           "provider", "add", "--name", provider.name(), "--credit-code",
           provider.credit_code(), "-o", "json"});
  ASSERT_EQ(added.exit_code, 0) << added;
  EXPECT_EQ(ParseJson<pb::Provider>(added.out).provider_id(), "PR-000001");
  EXPECT_EQ(added.err, "");
  EXPECT_EQ(follower.calls(), 1);
  ASSERT_EQ(follower.request_ids().size(), 1u);
  // The scheduler knows that id: it answers it with the first answer.
  const Result again =
      Admin({"admin", "provider", "add", "--name", provider.name(),
             "--credit-code", provider.credit_code(), "--request-id",
             follower.request_ids()[0], "-o", "json"});
  ASSERT_EQ(again.exit_code, 0) << again;
  EXPECT_EQ(ParseJson<pb::Provider>(again.out).provider_id(), "PR-000001");
  EXPECT_EQ(ParseJson<pb::ListProvidersResponse>(
                Admin({"admin", "provider", "list", "-o", "json"}).out)
                .providers_size(),
            1);

  // EnterpriseService too, through a chain of two followers, named in
  // VOUCHERCTL_ENDPOINT.
  FakeReplica leader;
  leader.Lead();
  FakeReplica second;
  second.Follow(leader.address());
  follower.Follow(second.address());
  const Result balance = Run({"balance", "-o", "json"},
                             {"VOUCHERCTL_ENDPOINT=" + follower.address(),
                              "VOUCHERCTL_TOKEN=cvt_any"});
  ASSERT_EQ(balance.exit_code, 0) << balance;
  EXPECT_EQ(ParseJson<pb::Balance>(balance.out).enterprise_id(), "E-FAKE");
  EXPECT_EQ(second.calls(), 1);
  EXPECT_EQ(leader.calls(), 1);
}

TEST_F(VoucherctlTest, TriesTheNextReplicaWhenOneIsDown) {
  FakeReplica follower;
  follower.Follow(endpoint_);
  const std::string dead = DeadAddress();
  // The first replica is down, the second follows the real scheduler.
  const Result listed =
      Run({"--endpoint", dead + "," + follower.address(), "--token",
           admin_token_, "admin", "program", "list", "-o", "json"});
  EXPECT_EQ(listed.exit_code, 0) << listed;
  EXPECT_EQ(listed.err, "");
  EXPECT_EQ(follower.calls(), 1);
  // A list with spaces, from the environment; the leader itself is listed.
  const Result direct = Run({"admin", "program", "list"},
                            {"VOUCHERCTL_ENDPOINT=" + dead + ", " + endpoint_,
                             "VOUCHERCTL_TOKEN=" + admin_token_});
  EXPECT_EQ(direct.exit_code, 0) << direct;
  EXPECT_EQ(follower.calls(), 1);
  // A saved list works like a typed one.
  ASSERT_EQ(Run({"login", "--endpoint", dead + "," + follower.address(),
                 "--token", admin_token_, "--no-check"})
                .exit_code,
            0);
  const Result saved = Run({"admin", "program", "list"});
  EXPECT_EQ(saved.exit_code, 0) << saved;
  EXPECT_EQ(follower.calls(), 2);
}

TEST_F(VoucherctlTest, WaitsWhileNoReplicaLeadsAndRetriesWithTheSameRequestId) {
  // A takeover: the only replica knows no leader for three calls, then
  // names one.
  FakeReplica leader;
  leader.Lead();
  FakeReplica follower;
  follower.Follow(leader.address());
  follower.KnowNoLeaderFor(3);
  const Result added =
      Run({"--endpoint", follower.address(), "--token", admin_token_, "admin",
           "provider", "add", "--name", "n", "--credit-code",
           "91330100716105852F", "-o", "json"});
  ASSERT_EQ(added.exit_code, 0) << added;
  EXPECT_EQ(ParseJson<pb::Provider>(added.out).provider_id(), "PR-FAKE");
  EXPECT_THAT(added.err,
              HasSubstr("no scheduler replica leads at the moment; retrying "
                        "for up to 10s (--leader-wait)"));
  // Every try carried the id of the first: a mutation that committed just
  // before its leader died is not applied twice.
  const std::vector<std::string> tried = follower.request_ids();
  ASSERT_EQ(tried.size(), 4u);
  EXPECT_THAT(leader.request_ids(), ElementsAre(tried[0]));
  EXPECT_EQ(std::set<std::string>(tried.begin(), tried.end()).size(), 1u);
  EXPECT_THAT(tried[0], StartsWith("vctl-"));
}

TEST_F(VoucherctlTest, FollowsALeaderThatAppearsWhereNothingListened) {
  // Two replicas: one knows no leader, the other is down and comes back as
  // the leader while voucherctl waits.
  FakeReplica follower;
  const std::string dead = DeadAddress();
  const int dead_port = std::stoi(dead.substr(dead.find(':') + 1));
  Result listed;
  std::thread run([&] {
    listed = Run({"--endpoint", follower.address() + "," + dead, "--token",
                  admin_token_, "--leader-wait", "30s", "admin", "program",
                  "list", "-o", "json"});
  });
  ASSERT_TRUE(testing::PollUntil([&] { return follower.calls() >= 2; }));
  FakeReplica leader(dead_port);
  leader.Lead();
  run.join();
  EXPECT_EQ(listed.exit_code, 0) << listed;
  const auto programs = ParseJson<pb::ListProgramsResponse>(listed.out);
  ASSERT_EQ(programs.programs_size(), 1);
  EXPECT_EQ(programs.programs(0).program_id(), "P-FAKE");
  EXPECT_GE(leader.calls(), 1);
}

TEST_F(VoucherctlTest, GivesUpAfterLeaderWaitWithTheExitCodeOfWhoFailed) {
  const std::vector<std::string> list = {"admin", "program", "list"};
  const auto run = [&](const std::string& endpoint,
                       const std::string& leader_wait) {
    std::vector<std::string> args = {"--endpoint",    endpoint,
                                     "--token",       admin_token_,
                                     "--leader-wait", leader_wait};
    args.insert(args.end(), list.begin(), list.end());
    return Run(args);
  };
  // Nothing answers anywhere: unreachable, once the wait is over.
  const std::string dead1 = DeadAddress(), dead2 = DeadAddress();
  absl::Time start = absl::Now();
  const Result down = run(dead1 + "," + dead2, "1s");
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(down.exit_code, 3) << down;
  EXPECT_THAT(down.err, AllOf(HasSubstr(absl::StrCat(
                                  "cannot reach the scheduler at any of ",
                                  dead1, ", ", dead2,
                                  " (from --endpoint) within --leader-wait 1s: "
                                  "unavailable: ")),
                              HasSubstr("point --endpoint at it")));
  // A single address where nothing listens fails at once.
  start = absl::Now();
  EXPECT_EQ(run(dead1, "30s").exit_code, 3);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));

  // A replica answers, but no leader appears: refused.
  FakeReplica follower;
  follower.Follow("");
  start = absl::Now();
  const Result leaderless = run(dead1 + "," + follower.address(), "1s");
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(leaderless.exit_code, 1) << leaderless;
  EXPECT_THAT(
      leaderless.err,
      AllOf(HasSubstr("voucherctl: unavailable: not the leader: this replica "
                      "follows; no leader is known yet (answered by " +
                      follower.address() + ")"),
            HasSubstr(absl::StrCat("No replica of ", dead1, ", ",
                                   follower.address(),
                                   " led within --leader-wait 1s."))));
  EXPECT_GE(follower.calls(), 3);  // retried while waiting

  // Two replicas that name each other: a bounded number of hops, then,
  // with --leader-wait 0s, no retry.
  FakeReplica a, b;
  a.Follow(b.address());
  b.Follow(a.address());
  const Result looping = run(a.address(), "0s");
  EXPECT_EQ(looping.exit_code, 1) << looping;
  EXPECT_THAT(looping.err, HasSubstr("not the leader"));
  EXPECT_EQ(a.calls() + b.calls(), 4);  // the first try and three hops
  EXPECT_THAT(looping.err, Not(HasSubstr("retrying")));
}

}  // namespace
}  // namespace computevoucher
