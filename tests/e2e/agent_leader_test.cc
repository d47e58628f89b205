// The real voucher-agent against scheduler replicas played in process: a
// dead address, followers that refuse with UNAVAILABLE naming the leader
// (trailing metadata cv-leader), and leaders sharing one journal, as
// replicas share one database. The agent must find the leader, register
// with it, follow a takeover, and have its usage accepted exactly once.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/leader.h"
#include "common/time_util.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::testing {
namespace {

namespace pb = ::computevoucher::v1;

using ::testing::HasSubstr;

constexpr char kToken[] = "leader-agent-token";
constexpr char kAllocation[] = "AL-000001";

using testing::DeadAddress;

// What the replicas share, as they share one database: the allocations
// wanted on the cluster and the usage accepted. Thread-safe.
class Journal {
 public:
  void SetDesired(std::vector<pb::DesiredAllocation> desired) {
    absl::MutexLock lock(&mu_);
    desired_ = std::move(desired);
  }
  std::vector<pb::DesiredAllocation> desired() {
    absl::MutexLock lock(&mu_);
    return desired_;
  }
  // Accepts `u` unless it was accepted before; returns the result.
  pb::UsageResult Accept(const pb::UsageRecord& u) {
    absl::MutexLock lock(&mu_);
    auto [it, fresh] = accepted_[u.allocation_id()].emplace(u.sequence(), u);
    if (!fresh) {
      ++duplicates_;
      EXPECT_EQ(it->second.SerializeAsString(), u.SerializeAsString())
          << "a resend differs: " << u.ShortDebugString();
    }
    return fresh ? pb::USAGE_RESULT_ACCEPTED : pb::USAGE_RESULT_DUPLICATE;
  }
  std::map<int64_t, pb::UsageRecord> accepted(
      const std::string& allocation_id) {
    absl::MutexLock lock(&mu_);
    return accepted_[allocation_id];
  }
  int duplicates() {
    absl::MutexLock lock(&mu_);
    return duplicates_;
  }

 private:
  absl::Mutex mu_;
  std::vector<pb::DesiredAllocation> desired_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<int64_t, pb::UsageRecord>> accepted_
      ABSL_GUARDED_BY(mu_);
  int duplicates_ ABSL_GUARDED_BY(mu_) = 0;
};

// One scheduler replica: it leads (serves from the journal) or follows
// (refuses every call with UNAVAILABLE naming the leader). Thread-safe.
class FakeReplica final : public pb::AgentService::Service {
 public:
  explicit FakeReplica(Journal& journal) : journal_(journal) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    EXPECT_GT(port_, 0);
  }
  ~FakeReplica() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  void Lead() {
    absl::MutexLock lock(&mu_);
    leads_ = true;
  }
  void Follow(const std::string& leader) {
    absl::MutexLock lock(&mu_);
    leads_ = false;
    leader_ = leader;
  }
  // The next ReportUsage is committed to the journal, but its answer is
  // lost: the replica loses the lead to `leader` as it answers.
  void LoseLeadAtNextReport(const std::string& leader) {
    absl::MutexLock lock(&mu_);
    lose_lead_to_ = leader;
  }
  int registers() {
    absl::MutexLock lock(&mu_);
    return registers_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // Authorization headers other than the agent's bearer token.
  std::vector<std::string> bad_authorization() {
    absl::MutexLock lock(&mu_);
    return bad_authorization_;
  }

  grpc::Status Register(grpc::ServerContext* context,
                        const pb::RegisterRequest* request,
                        pb::RegisterResponse* response) override {
    if (grpc::Status s = Admit(*context); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    ++registers_;
    response->mutable_cluster()->set_cluster_id("hz-a");
    response->mutable_cluster()->set_state(pb::CLUSTER_STATE_APPROVED);
    response->set_heartbeat_interval_s(1);
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const pb::HeartbeatRequest* request,
                         pb::HeartbeatResponse* response) override {
    if (grpc::Status s = Admit(*context); !s.ok()) return s;
    for (const pb::DesiredAllocation& d : journal_.desired()) {
      *response->add_allocations() = d;
    }
    response->set_cluster_state(pb::CLUSTER_STATE_APPROVED);
    response->set_heartbeat_interval_s(1);
    return grpc::Status::OK;
  }

  grpc::Status ReportUsage(grpc::ServerContext* context,
                           const pb::ReportUsageRequest* request,
                           pb::ReportUsageResponse* response) override {
    if (grpc::Status s = Admit(*context); !s.ok()) return s;
    for (const pb::UsageRecord& u : request->records()) {
      pb::UsageAck* ack = response->add_acks();
      ack->set_allocation_id(u.allocation_id());
      ack->set_sequence(u.sequence());
      ack->set_result(journal_.Accept(u));
    }
    absl::MutexLock lock(&mu_);
    if (!lose_lead_to_.empty()) {
      leads_ = false;
      leader_ = lose_lead_to_;
      lose_lead_to_.clear();
      return Refusal(*context);
    }
    return grpc::Status::OK;
  }

 private:
  // OK when this replica leads; else the refusal of a follower.
  grpc::Status Admit(grpc::ServerContext& context) {
    absl::MutexLock lock(&mu_);
    ++calls_;
    const std::string expected = absl::StrCat("Bearer ", kToken);
    auto it = context.client_metadata().find("authorization");
    const std::string got =
        it == context.client_metadata().end()
            ? "(none)"
            : std::string(it->second.data(), it->second.size());
    if (got != expected) bad_authorization_.push_back(got);
    return leads_ ? grpc::Status::OK : Refusal(context);
  }

  grpc::Status Refusal(grpc::ServerContext& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (leader_.empty()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "not the leader: this replica follows; no leader "
                          "is known yet");
    }
    context.AddTrailingMetadata(kLeaderMetadataKey, leader_);
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("not the leader: this replica follows; the leader is at ",
                     leader_));
  }

  Journal& journal_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  bool leads_ ABSL_GUARDED_BY(mu_) = false;
  std::string leader_ ABSL_GUARDED_BY(mu_);
  std::string lose_lead_to_ ABSL_GUARDED_BY(mu_);
  int registers_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> bad_authorization_ ABSL_GUARDED_BY(mu_);
};

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + what.size())) {
    ++n;
  }
  return n;
}

class AgentLeaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("agent-leader", temp_));
    dir_ = temp_.path();
    std::ofstream(dir_ + "/agent.token") << kToken << "\n";
  }

  void TearDown() override {
    agent_.reset();
  }

  ChildProcess& StartAgent(const std::string& scheduler) {
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            BuildDir() + "/agent/voucher-agent", "--scheduler=" + scheduler,
            "--token-file=" + dir_ + "/agent.token",
            "--spool-dir=" + dir_ + "/spool", "--inventory=8xH100:other",
            "--prices=H100=18.00", "--heartbeat-interval-ms=200",
            "--report-interval-ms=300"},
        dir_ + "/agent.log");
    return *agent_;
  }

  bool WaitForLog(const std::string& text) {
    return PollUntil(
        [&] { return agent_->Log().find(text) != std::string::npos; });
  }

  // Sequences 1..n, each interval starting where the previous ended, GPU-ms
  // matching the interval: metered once, whichever replica accepted it.
  void ExpectContiguous(const std::map<int64_t, pb::UsageRecord>& accepted) {
    int64_t expected_sequence = 1;
    absl::Time previous_end;
    for (const auto& [sequence, u] : accepted) {
      SCOPED_TRACE(u.ShortDebugString());
      EXPECT_EQ(sequence, expected_sequence++);
      const absl::Time start = *FromProto("start", u.start());
      const absl::Time end = *FromProto("end", u.end());
      if (sequence > 1) {
        EXPECT_EQ(start, previous_end) << "a gap or an overlap";
      }
      EXPECT_EQ(u.gpu_ms(), absl::ToInt64Milliseconds(end - start) * 2);
      previous_end = end;
    }
  }

  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  std::unique_ptr<ChildProcess> agent_;
};

pb::DesiredAllocation Desired(absl::Time assigned_at) {
  pb::DesiredAllocation d;
  d.set_allocation_id(kAllocation);
  d.set_gpu_model("H100");
  d.set_gpu_count(2);
  *d.mutable_assigned_at() = ToProto(assigned_at);
  *d.mutable_deadline() = ToProto(assigned_at + absl::Hours(1));
  d.set_next_sequence(1);
  return d;
}

TEST_F(AgentLeaderTest, FindsTheLeaderThroughADeadReplicaAndAFollower) {
  Journal journal;
  journal.SetDesired({Desired(absl::Now())});
  FakeReplica leader(journal);
  leader.Lead();
  FakeReplica follower(journal);
  follower.Follow(leader.address());
  const std::string dead = DeadAddress();
  StartAgent(dead + "," + follower.address());

  EXPECT_TRUE(WaitForLog(absl::StrCat(
      "scheduler ", dead, " unreachable; trying ", follower.address())))
      << agent_->Log();
  EXPECT_TRUE(WaitForLog(
      absl::StrCat("scheduler: following leader at ", leader.address())))
      << agent_->Log();
  ASSERT_TRUE(WaitForLog("registered cluster hz-a")) << agent_->Log();
  ASSERT_TRUE(WaitForLog(absl::StrCat("started ", kAllocation)))
      << agent_->Log();
  ASSERT_TRUE(PollUntil([&] {
    return journal.accepted(kAllocation).size() >= 4;
  })) << agent_->Log();
  EXPECT_EQ(leader.registers(), 1);
  EXPECT_EQ(follower.registers(), 0);
  // The follower was asked once: the agent stays with the leader.
  EXPECT_EQ(follower.calls(), 1);
  ExpectContiguous(journal.accepted(kAllocation));
  EXPECT_EQ(journal.duplicates(), 0);
  // One line per switch, none per call.
  const std::string log = agent_->Log();
  EXPECT_EQ(Count(log, "following leader at"), 1) << log;
  EXPECT_EQ(Count(log, "unreachable; trying"), 1) << log;
  EXPECT_THAT(log, HasSubstr(absl::StrCat("scheduler answers again after 1 "
                                          "failed calls, at ",
                                          leader.address())));
  EXPECT_THAT(leader.bad_authorization(), ::testing::IsEmpty());
  EXPECT_THAT(follower.bad_authorization(), ::testing::IsEmpty());
  EXPECT_EQ(agent_->Stop(SIGTERM), 0) << agent_->Log();
}

TEST_F(AgentLeaderTest, FollowsATakeoverAndResendsUsageTheOldLeaderCommitted) {
  Journal journal;
  journal.SetDesired({Desired(absl::Now())});
  FakeReplica first(journal);
  first.Lead();
  FakeReplica second(journal);
  second.Follow(first.address());
  StartAgent(first.address() + "," + second.address());
  ASSERT_TRUE(WaitForLog(absl::StrCat("started ", kAllocation)))
      << agent_->Log();
  ASSERT_TRUE(PollUntil([&] {
    return journal.accepted(kAllocation).size() >= 2;
  })) << agent_->Log();

  // The first leader commits a report, then loses the lead before its
  // answer: the agent resends those records to the new leader, which
  // finds them in the shared journal.
  second.Lead();
  first.LoseLeadAtNextReport(second.address());
  EXPECT_TRUE(WaitForLog(
      absl::StrCat("scheduler: following leader at ", second.address())))
      << agent_->Log();
  ASSERT_TRUE(PollUntil([&] { return second.registers() == 1; }))
      << agent_->Log();
  ASSERT_TRUE(PollUntil([&] { return journal.duplicates() >= 1; }))
      << agent_->Log();
  const size_t before = journal.accepted(kAllocation).size();
  ASSERT_TRUE(PollUntil([&] {
    return journal.accepted(kAllocation).size() >= before + 3;
  })) << agent_->Log();
  ExpectContiguous(journal.accepted(kAllocation));
  EXPECT_EQ(first.registers(), 1);
  EXPECT_EQ(Count(agent_->Log(), "following leader at"), 1) << agent_->Log();
  EXPECT_EQ(Count(agent_->Log(), absl::StrCat("started ", kAllocation)), 1)
      << agent_->Log();

  // A second takeover in progress: no replica knows a leader. The agent
  // goes back to the list and round it with backoff, metering on.
  const int seen = first.calls();
  first.Follow("");
  second.Follow("");
  EXPECT_TRUE(
      WaitForLog(absl::StrCat("scheduler ", second.address(),
                              " unreachable; trying ", first.address())))
      << agent_->Log();
  ASSERT_TRUE(PollUntil([&] { return first.calls() >= seen + 1; }))
      << agent_->Log();
  // The first replica leads again: the agent registers there again and
  // its usage drains.
  first.Lead();
  ASSERT_TRUE(PollUntil([&] { return first.registers() == 2; }))
      << agent_->Log();
  const size_t drained = journal.accepted(kAllocation).size();
  ASSERT_TRUE(PollUntil([&] {
    return journal.accepted(kAllocation).size() >= drained + 2;
  })) << agent_->Log();
  ExpectContiguous(journal.accepted(kAllocation));
  EXPECT_EQ(agent_->Stop(SIGTERM), 0) << agent_->Log();
}

TEST_F(AgentLeaderTest, AnEmptyEntryInTheSchedulerListIsAConfigError) {
  ChildProcess& agent = StartAgent("127.0.0.1:1,,127.0.0.1:2");
  const std::optional<int> code = agent.Wait(absl::Seconds(30));
  ASSERT_TRUE(code.has_value()) << agent.Log();
  EXPECT_EQ(*code, 2) << agent.Log();
  EXPECT_THAT(agent.Log(),
              HasSubstr("voucher-agent: scheduler_address: "
                        "\"127.0.0.1:1,,127.0.0.1:2\" must be one address or "
                        "a comma-separated list of addresses (host:port), "
                        "none empty"));
}

}  // namespace
}  // namespace computevoucher::testing
