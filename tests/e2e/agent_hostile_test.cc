// The real voucher-agent against a hostile scheduler: an in-process fake
// AgentService whose heartbeat answers ask for what the cluster cannot or
// must not run, and whose usage acks do not match the records sent. The
// agent must refuse the garbage, keep running what it can verify, and meter
// it exactly once.
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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
using ::testing::Not;

constexpr char kToken[] = "hostile-agent-token";
constexpr char kValid[] = "AL-000001";

// A scheduler that answers heartbeats with a scripted desired set and acks
// usage as told by its ack mode. Thread-safe.
class FakeScheduler final : public pb::AgentService::Service {
 public:
  enum class AckMode {
    kNoAcks,    // an answer without acks: a count mismatch
    kOtherIds,  // one ack per record, each naming another allocation
    kAccept,    // ACCEPTED, or DUPLICATE for a record accepted before
  };

  grpc::Status Register(grpc::ServerContext* context,
                        const pb::RegisterRequest* request,
                        pb::RegisterResponse* response) override {
    absl::MutexLock lock(&mu_);
    registers_.push_back(*request);
    NoteAuthorization(*context);
    response->mutable_cluster()->set_cluster_id("hostile-1");
    response->mutable_cluster()->set_state(pb::CLUSTER_STATE_APPROVED);
    response->set_heartbeat_interval_s(1);
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const pb::HeartbeatRequest* request,
                         pb::HeartbeatResponse* response) override {
    absl::Duration delay;
    {
      absl::MutexLock lock(&mu_);
      delay = std::exchange(end_during_next_heartbeat_, absl::ZeroDuration());
    }
    if (delay > absl::ZeroDuration()) {
      // The scheduler ends every allocation while this heartbeat is on its
      // way: its answer, `delay` later, lists none.
      absl::SleepFor(delay);
      absl::MutexLock lock(&mu_);
      desired_.clear();
      ended_at_ = absl::Now();
    }
    absl::MutexLock lock(&mu_);
    heartbeats_.push_back(*request);
    NoteAuthorization(*context);
    for (const pb::DesiredAllocation& d : desired_) {
      *response->add_allocations() = d;
    }
    response->set_cluster_state(pb::CLUSTER_STATE_APPROVED);
    response->set_heartbeat_interval_s(1);
    return grpc::Status::OK;
  }

  grpc::Status ReportUsage(grpc::ServerContext* context,
                           const pb::ReportUsageRequest* request,
                           pb::ReportUsageResponse* response) override {
    absl::MutexLock lock(&mu_);
    NoteAuthorization(*context);
    for (const pb::UsageRecord& u : request->records()) {
      received_.push_back(u);
      pb::UsageAck* ack = nullptr;
      switch (ack_mode_) {
        case AckMode::kNoAcks:
          break;
        case AckMode::kOtherIds:
          ack = response->add_acks();
          ack->set_allocation_id("AL-OTHER");
          ack->set_sequence(u.sequence());
          ack->set_result(pb::USAGE_RESULT_ACCEPTED);
          break;
        case AckMode::kAccept: {
          ack = response->add_acks();
          ack->set_allocation_id(u.allocation_id());
          ack->set_sequence(u.sequence());
          auto [it, fresh] =
              accepted_[u.allocation_id()].emplace(u.sequence(), u);
          ack->set_result(fresh ? pb::USAGE_RESULT_ACCEPTED
                                : pb::USAGE_RESULT_DUPLICATE);
          break;
        }
      }
    }
    return grpc::Status::OK;
  }

  void SetDesired(std::vector<pb::DesiredAllocation> desired) {
    absl::MutexLock lock(&mu_);
    desired_ = std::move(desired);
  }
  // The next heartbeat is answered `delay` after it arrives, and at that
  // moment every allocation ends (ended_at()).
  void EndDuringNextHeartbeat(absl::Duration delay) {
    absl::MutexLock lock(&mu_);
    end_during_next_heartbeat_ = delay;
  }
  std::optional<absl::Time> ended_at() {
    absl::MutexLock lock(&mu_);
    return ended_at_;
  }
  void SetAckMode(AckMode mode) {
    absl::MutexLock lock(&mu_);
    ack_mode_ = mode;
  }
  // Every record received, in order, resends included.
  std::vector<pb::UsageRecord> received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  // How often record `sequence` of `allocation_id` was received.
  int TimesReceived(const std::string& allocation_id, int64_t sequence) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const pb::UsageRecord& u : received_) {
      n += u.allocation_id() == allocation_id && u.sequence() == sequence;
    }
    return n;
  }
  // The records of `allocation_id` acked ACCEPTED, by sequence.
  std::map<int64_t, pb::UsageRecord> accepted(
      const std::string& allocation_id) {
    absl::MutexLock lock(&mu_);
    return accepted_[allocation_id];
  }
  std::vector<pb::HeartbeatRequest> heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  std::vector<pb::RegisterRequest> registers() {
    absl::MutexLock lock(&mu_);
    return registers_;
  }
  // Authorization headers other than the agent's bearer token.
  std::vector<std::string> bad_authorization() {
    absl::MutexLock lock(&mu_);
    return bad_authorization_;
  }

 private:
  void NoteAuthorization(const grpc::ServerContext& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string expected = absl::StrCat("Bearer ", kToken);
    auto it = context.client_metadata().find("authorization");
    const std::string got =
        it == context.client_metadata().end()
            ? "(none)"
            : std::string(it->second.data(), it->second.size());
    if (got != expected) bad_authorization_.push_back(got);
  }

  absl::Mutex mu_;
  std::vector<pb::DesiredAllocation> desired_ ABSL_GUARDED_BY(mu_);
  AckMode ack_mode_ ABSL_GUARDED_BY(mu_) = AckMode::kAccept;
  absl::Duration end_during_next_heartbeat_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> ended_at_ ABSL_GUARDED_BY(mu_);
  std::vector<pb::RegisterRequest> registers_ ABSL_GUARDED_BY(mu_);
  std::vector<pb::HeartbeatRequest> heartbeats_ ABSL_GUARDED_BY(mu_);
  std::vector<pb::UsageRecord> received_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<int64_t, pb::UsageRecord>> accepted_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> bad_authorization_ ABSL_GUARDED_BY(mu_);
};

pb::DesiredAllocation Desired(const std::string& id, const std::string& model,
                              int32_t gpu_count, absl::Time assigned_at) {
  pb::DesiredAllocation d;
  d.set_allocation_id(id);
  d.set_gpu_model(model);
  d.set_gpu_count(gpu_count);
  *d.mutable_assigned_at() = ToProto(assigned_at);
  *d.mutable_deadline() = ToProto(assigned_at + absl::Hours(1));
  d.set_next_sequence(1);
  return d;
}

// What no agent may run: a model the cluster lacks, more GPUs than it has,
// an id listed twice, no id, an over-long id, a bad deadline, no
// assignment, no GPUs.
std::vector<pb::DesiredAllocation> HostileDesired(absl::Time now) {
  std::vector<pb::DesiredAllocation> hostile;
  hostile.push_back(Desired("AL-000002", "A100", 1, now));
  hostile.push_back(Desired("AL-000003", "H100", 9, now));
  hostile.push_back(Desired("AL-000004", "H100", 1, now));
  hostile.push_back(Desired("AL-000004", "H100", 1, now));
  hostile.push_back(Desired("", "H100", 1, now));
  hostile.push_back(Desired(std::string(200, 'A'), "H100", 1, now));
  hostile.push_back(Desired("AL-000005", "H100", 1, now));
  hostile.back().mutable_deadline()->set_nanos(-5);
  hostile.push_back(Desired("AL-000006", "H100", 1, now));
  hostile.back().clear_assigned_at();
  hostile.push_back(Desired("AL-000007", "H100", 0, now));
  return hostile;
}

class AgentHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("agent-hostile", temp_));
    dir_ = temp_.path();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    std::ofstream(dir_ + "/agent.token") << kToken << "\n";
  }

  void TearDown() override {
    agent_.reset();
    if (server_ != nullptr) server_->Shutdown();
  }

  void StartAgent() {
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            BuildDir() + "/agent/voucher-agent",
            absl::StrCat("--scheduler=127.0.0.1:", port_),
            "--token-file=" + dir_ + "/agent.token",
            "--spool-dir=" + dir_ + "/spool", "--inventory=8xH100:other",
            "--prices=H100=18.00", "--heartbeat-interval-ms=200",
            "--report-interval-ms=300"},
        dir_ + "/agent.log");
  }

  bool WaitForLog(const std::string& text) {
    return PollUntil(
        [&] { return agent_->Log().find(text) != std::string::npos; });
  }

  // The steps of RefusesGarbageAndMetersWhatItCanRunOnce, in order.

  // Each allocation of HostileDesired is refused with its reason, and none
  // of them started.
  void ExpectRefusesTheHostileOnes() {
    const std::vector<std::string> refusals = {
        "refused allocation AL-000002: gpu_model \"A100\" is not on this "
        "cluster",
        "refused allocation AL-000003: gpu_count 9 of H100 does not fit the",
        "refused allocation \"AL-000004\": listed 2 times in one answer",
        "refused an allocation: allocation_id: required",
        absl::StrCat("refused an allocation: allocation_id: \"",
                     std::string(64, 'A'),
                     "...\" (200 bytes) is not a valid id (1..128 characters)"),
        "refused allocation AL-000005: deadline: nanos must be 0..999999999, "
        "got -5",
        "refused allocation AL-000006: assigned_at: required",
        "refused allocation AL-000007: gpu_count 0 of H100 does not fit the",
    };
    for (const std::string& refusal : refusals) {
      EXPECT_TRUE(WaitForLog(refusal)) << refusal << "\n" << agent_->Log();
    }
    for (const char* id : {"AL-000002", "AL-000003", "AL-000004", "AL-000005",
                           "AL-000006", "AL-000007"}) {
      EXPECT_THAT(agent_->Log(), Not(HasSubstr(absl::StrCat("started ", id))));
    }
  }

  // Answers with no acks, then acks naming other allocations, are ignored
  // and the records go again, until the fake accepts them.
  void ExpectIgnoresMismatchedAcks() {
    EXPECT_TRUE(WaitForLog("ignored a ReportUsage answer with 0 acks for"))
        << agent_->Log();
    EXPECT_TRUE(PollUntil([&] { return fake_.TimesReceived(kValid, 1) >= 2; }))
        << agent_->Log();
    fake_.SetAckMode(FakeScheduler::AckMode::kOtherIds);
    const int before = fake_.TimesReceived(kValid, 1);
    EXPECT_TRUE(
        WaitForLog(absl::StrCat("ignored an ack for \"AL-OTHER\" #1 in "
                                "the place of ",
                                kValid, " #1")))
        << agent_->Log();
    EXPECT_TRUE(PollUntil([&] {
      return fake_.TimesReceived(kValid, 1) >= before + 2;
    })) << agent_->Log();
    EXPECT_TRUE(fake_.accepted(kValid).empty());
    EXPECT_TRUE(agent_->Running()) << agent_->Log();

    fake_.SetAckMode(FakeScheduler::AckMode::kAccept);
    ASSERT_TRUE(PollUntil([&] { return fake_.accepted(kValid).size() >= 4; }))
        << agent_->Log();
  }

  // The running allocation listed twice is garbage too, not a reason to
  // stop it.
  void ExpectKeepsRunningWhatIsListedTwice(
      std::vector<pb::DesiredAllocation> twice,
      const pb::DesiredAllocation& valid) {
    twice.push_back(valid);
    twice.push_back(valid);
    fake_.SetDesired(twice);
    EXPECT_TRUE(WaitForLog(absl::StrCat("refused allocation \"", kValid,
                                        "\": listed 2 times in one answer")))
        << agent_->Log();
    const size_t seen = fake_.heartbeats().size();
    ASSERT_TRUE(
        PollUntil([&] { return fake_.heartbeats().size() >= seen + 3; }));
    EXPECT_THAT(agent_->Log(),
                Not(HasSubstr(absl::StrCat("stopping ", kValid))));
  }

  // Metered once: sequences 1..n without gaps or overlaps, from its
  // assignment (`now`) until it was dropped, each resend the same record.
  void ExpectValidMeteredOnce(absl::Time now, absl::Time dropped) {
    const std::map<int64_t, pb::UsageRecord> accepted = fake_.accepted(kValid);
    ASSERT_FALSE(accepted.empty());
    int64_t expected_sequence = 1;
    absl::Time previous_end;
    for (const auto& [sequence, u] : accepted) {
      SCOPED_TRACE(u.ShortDebugString());
      EXPECT_EQ(sequence, expected_sequence++);
      const absl::Time start = *FromProto("start", u.start());
      const absl::Time end = *FromProto("end", u.end());
      if (sequence == 1) {
        EXPECT_GE(start, absl::FromUnixMillis(absl::ToUnixMillis(now)));
        EXPECT_LT(start, now + absl::Seconds(10));
      } else {
        EXPECT_EQ(start, previous_end) << "a gap or an overlap";
      }
      EXPECT_EQ(u.gpu_ms(), absl::ToInt64Milliseconds(end - start) * 2);
      previous_end = end;
    }
    EXPECT_GE(previous_end, dropped) << "usage up to the stop was not reported";
    EXPECT_LT(previous_end, dropped + absl::Seconds(10));
    for (const pb::UsageRecord& u : fake_.received()) {
      ASSERT_EQ(u.allocation_id(), kValid) << u.ShortDebugString();
      ASSERT_EQ(accepted.count(u.sequence()), 1u) << u.ShortDebugString();
      EXPECT_EQ(u.SerializeAsString(),
                accepted.at(u.sequence()).SerializeAsString())
          << "a resend differs: " << u.ShortDebugString();
    }
  }

  // The agent only ever reported what it ran, and now runs nothing.
  void ExpectReportedOnlyWhatItRan() {
    const std::vector<pb::HeartbeatRequest> heartbeats = fake_.heartbeats();
    for (const pb::HeartbeatRequest& h : heartbeats) {
      for (const pb::ObservedAllocation& o : h.allocations()) {
        EXPECT_EQ(o.allocation_id(), kValid) << h.ShortDebugString();
      }
    }
    ASSERT_TRUE(PollUntil([&] {
      const pb::HeartbeatRequest last = fake_.heartbeats().back();
      auto free = last.free_gpus().find("H100");
      return last.allocations().empty() && free != last.free_gpus().end() &&
             free->second == 8;
    })) << fake_.heartbeats().back().ShortDebugString();
  }
  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  FakeScheduler fake_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ChildProcess> agent_;
};

TEST_F(AgentHostileTest, RefusesGarbageAndMetersWhatItCanRunOnce) {
  const absl::Time now = absl::Now();
  const pb::DesiredAllocation valid = Desired(kValid, "H100", 2, now);
  const std::vector<pb::DesiredAllocation> hostile = HostileDesired(now);
  std::vector<pb::DesiredAllocation> desired = hostile;
  desired.push_back(valid);
  fake_.SetDesired(desired);
  fake_.SetAckMode(FakeScheduler::AckMode::kNoAcks);
  StartAgent();

  ASSERT_TRUE(
      WaitForLog(absl::StrCat("started ", kValid, ": 2xH100 on GPUs 0,1")))
      << agent_->Log();
  ExpectRefusesTheHostileOnes();
  ASSERT_NO_FATAL_FAILURE(ExpectIgnoresMismatchedAcks());
  ASSERT_NO_FATAL_FAILURE(ExpectKeepsRunningWhatIsListedTwice(hostile, valid));

  // Dropped from the desired set: stopped, and metered up to then.
  const absl::Time dropped =
      absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()));
  fake_.SetDesired(hostile);
  EXPECT_TRUE(WaitForLog(
      absl::StrCat("stopping ", kValid, ": the scheduler no longer wants it")))
      << agent_->Log();
  EXPECT_TRUE(
      WaitForLog(absl::StrCat(kValid, ": done; all its usage is acknowledged")))
      << agent_->Log();
  EXPECT_TRUE(agent_->Running()) << agent_->Log();

  ASSERT_NO_FATAL_FAILURE(ExpectValidMeteredOnce(now, dropped));
  ASSERT_NO_FATAL_FAILURE(ExpectReportedOnlyWhatItRan());
  ASSERT_FALSE(fake_.registers().empty());
  EXPECT_EQ(fake_.registers().front().inventory_size(), 1);
  EXPECT_THAT(fake_.bad_authorization(), ::testing::IsEmpty());
  EXPECT_EQ(agent_->Stop(SIGTERM), 0) << agent_->Log();
}

TEST_F(AgentHostileTest, StopsAtTheDeadlineAndResumesWhenItIsExtended) {
  const absl::Time now = absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()));
  pb::DesiredAllocation d = Desired(kValid, "H100", 2, now);
  const absl::Time deadline = now + absl::Seconds(1);
  *d.mutable_deadline() = ToProto(deadline);
  fake_.SetDesired({d});
  StartAgent();
  ASSERT_TRUE(WaitForLog(
      absl::StrCat("stopping ", kValid, ": it reached its deadline")))
      << agent_->Log();
  // The scheduler extends it (it still lists it, with a later deadline).
  *d.mutable_deadline() = ToProto(now + absl::Hours(1));
  fake_.SetDesired({d});
  ASSERT_TRUE(WaitForLog(absl::StrCat(kValid, ": its deadline was extended")))
      << agent_->Log();
  ASSERT_TRUE(WaitForLog(absl::StrCat("resumed ", kValid))) << agent_->Log();
  // Metered on from where the last record before the deadline ended.
  ASSERT_TRUE(PollUntil([&] {
    for (const auto& [sequence, u] : fake_.accepted(kValid)) {
      if (*FromProto("start", u.start()) > deadline) return true;
    }
    return false;
  })) << agent_->Log();
  std::optional<absl::Time> previous_end;
  bool at_deadline = false;
  for (const auto& [sequence, u] : fake_.accepted(kValid)) {
    SCOPED_TRACE(u.ShortDebugString());
    if (previous_end) {
      EXPECT_EQ(*FromProto("start", u.start()), *previous_end)
          << "a gap or an overlap";
    }
    previous_end = *FromProto("end", u.end());
    at_deadline |= *previous_end == deadline;
  }
  EXPECT_TRUE(at_deadline) << "no record ended at the first deadline";
  EXPECT_EQ(agent_->Stop(SIGTERM), 0) << agent_->Log();
}

// Found by the fault soak (scripts/soak.sh): an allocation that ended while
// its agent was down was metered only up to when the restarted agent sent
// the heartbeat whose answer told it so, not up to that answer, so the
// usage between the two (up to the end) was never reported.
TEST_F(AgentHostileTest, AnAllocationEndedWhileTheAgentWasDownIsMeteredToItsEnd) {
  fake_.SetDesired({Desired(kValid, "H100", 2, absl::Now())});
  StartAgent();
  ASSERT_TRUE(PollUntil([&] { return fake_.accepted(kValid).size() >= 2; }))
      << agent_->Log();
  agent_->Stop(SIGKILL);
  fake_.EndDuringNextHeartbeat(absl::Milliseconds(500));
  StartAgent();
  ASSERT_TRUE(WaitForLog(absl::StrCat(kValid, ": ended while the agent was down")))
      << agent_->Log();
  ASSERT_TRUE(
      WaitForLog(absl::StrCat(kValid, ": done; all its usage is acknowledged")))
      << agent_->Log();
  const std::optional<absl::Time> ended = fake_.ended_at();
  ASSERT_TRUE(ended.has_value());
  const std::map<int64_t, pb::UsageRecord> usage = fake_.accepted(kValid);
  ASSERT_FALSE(usage.empty());
  const pb::UsageRecord& last = usage.rbegin()->second;
  EXPECT_GE(*FromProto("end", last.end()),
            absl::FromUnixMillis(absl::ToUnixMillis(*ended)))
      << "usage up to the end was not reported: " << last.ShortDebugString();
  EXPECT_EQ(agent_->Stop(SIGTERM), 0) << agent_->Log();
}

}  // namespace
}  // namespace computevoucher::testing
