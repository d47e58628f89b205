// Two voucher-scheduler replicas on one PostgreSQL database, with real
// agents and clients: the leader is killed under load, or paused past its
// lease, and the follower takes over. Afterwards every acknowledged command
// is in the journal exactly once, the agents' spooled usage is charged
// once, `verify` passes, and a former leader never commits again.
#include <signal.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/leader.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "scheduler/store/postgres_store.h"
#include "tests/e2e/agent_world.h"
#include "tests/scheduler/store/store_backend.h"

namespace computevoucher::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kLeaseS = 1;

// Issues small vouchers to E-000002, one request id per voucher, following
// the leader as voucherctl does: on UNAVAILABLE it goes where the answer
// points (or to the other replica) and retries the same request id until
// the scheduler answers. Records what was acknowledged and every request id
// it tried.
class IssueLoad {
 public:
  IssueLoad(std::vector<std::string> replicas, std::string admin_token)
      : replicas_(std::move(replicas)), token_(std::move(admin_token)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~IssueLoad() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t acknowledged() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(acknowledged_.size());
  }
  // Request id -> voucher id of each acknowledged issue.
  std::map<std::string, std::string> acknowledged_ids() const {
    absl::MutexLock lock(&mu_);
    return acknowledged_;
  }
  std::vector<std::string> tried() const {
    absl::MutexLock lock(&mu_);
    return tried_;
  }
  // Calls answered by something other than OK or UNAVAILABLE.
  std::vector<std::string> errors() const {
    absl::MutexLock lock(&mu_);
    return errors_;
  }

 private:
  void Run() {
    std::string target = replicas_.front();
    for (int i = 1; !stop_; ++i) {
      pb::IssueVoucherRequest r;
      r.set_request_id(absl::StrCat("load-", i));
      r.set_program_id("P-000001");
      r.set_enterprise_id("E-000002");
      r.set_face_value_fen(100);
      {
        absl::MutexLock lock(&mu_);
        tried_.push_back(r.request_id());
      }
      // Until the scheduler answers; a replica that is down or follows
      // answers UNAVAILABLE.
      while (true) {
        auto stub = pb::AdminService::NewStub(
            grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
        grpc::ClientContext context;
        context.AddMetadata("authorization", "Bearer " + token_);
        context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(5));
        pb::Voucher voucher;
        const grpc::Status s = stub->IssueVoucher(&context, r, &voucher);
        if (s.ok()) {
          absl::MutexLock lock(&mu_);
          acknowledged_[r.request_id()] = voucher.voucher_id();
          break;
        }
        if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
            s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
          absl::MutexLock lock(&mu_);
          errors_.push_back(s.error_message());
          break;
        }
        const std::string leader = LeaderHint(context);
        target = !leader.empty() && leader != target ? leader
                 : target == replicas_[0]            ? replicas_[1]
                                                     : replicas_[0];
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
  }

  const std::vector<std::string> replicas_;
  const std::string token_;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> acknowledged_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> tried_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class ReplicaFailoverTest : public AgentWorld {
 protected:
  // Whether `replica`'s log says, within the poll deadline, that it stored
  // a snapshot.
  bool StoredASnapshot(ChildProcess& replica) {
    return PollUntil([&] {
      return replica.Log().find("snapshot at command") != std::string::npos &&
             replica.Log().find(" stored: ") != std::string::npos;
    });
  }

  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::StoreBackend>> database =
        store::MakeStoreBackend("postgres", ::testing::TempDir());
    if (database.status().code() == absl::StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << database.status().message();
    }
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *std::move(database);
    // Snapshots every 50 commands: a takeover loads one and replays the
    // tail after it.
    store_args_ = {"--store=" + database_->store_url(),
                   absl::StrCat("--lease-s=", kLeaseS), "--snapshot-every=50"};
    store_args_.insert(store_args_.end(), extra_args_.begin(),
                       extra_args_.end());
    // Replica A: the world's scheduler, which leads.
    AgentWorld::SetUp();
    if (HasFatalFailure()) return;
    a_address_ = scheduler_address();
    // Replica B follows.
    std::vector<std::string> args = SchedulerArgs(dir_ + "/data-b", 0);
    args.push_back("--port-file=" + dir_ + "/b.port");
    args.push_back("--metrics-listen=127.0.0.1:0");
    b_ = std::make_unique<ChildProcess>(args, dir_ + "/scheduler-b.log");
    const int b_port = WaitForPortFile(*b_, dir_ + "/b.port");
    ASSERT_GT(b_port, 0);
    b_address_ = absl::StrCat("127.0.0.1:", b_port);
    ASSERT_TRUE(PollUntil([&] {
      return b_->Log().find("following") != std::string::npos;
    })) << b_->Log();
    EXPECT_EQ(HealthStatus(b_address_), "NOT_SERVING");
    // B keeps a standby copy of the state, replaying what A appends.
    EXPECT_TRUE(PollUntil([&] {
      return b_->Log().find("standby: caught up with the journal") !=
             std::string::npos;
    })) << b_->Log();
    // A follower exports that it follows, and no state (which only the
    // leader has, so that sums over replicas count it once).
    const std::string metrics = FollowerMetrics();
    EXPECT_THAT(metrics, HasSubstr("\ncomputevoucher_scheduler_leader 0"));
    EXPECT_THAT(metrics, Not(HasSubstr("computevoucher_program_budget_fen")));
  }

  // B's /metrics, fetched with Python's standard library.
  std::string FollowerMetrics() {
    const std::string marker = "metrics on port ";
    std::string log;
    if (!PollUntil([&] {
          log = b_->Log();
          return log.find(marker) != std::string::npos;
        })) {
      return "no metrics port in the log";
    }
    const size_t at = log.find(marker);
    const int port = std::atoi(log.c_str() + at + marker.size());
    const std::string out = dir_ + "/b.metrics";
    Shell(absl::StrCat(
        "python3 -c 'import sys, urllib.request; "
        "sys.stdout.write(urllib.request.urlopen(",
        "\"http://127.0.0.1:", port, "/metrics\").read().decode())' > ", out));
    return ReadFile(out).value_or("");
  }
  void TearDown() override {
    b_.reset();
    AgentWorld::TearDown();
    database_.reset();
  }

  // Every command in the database, by request id.
  std::map<std::string, int> CommandsByRequestId() {
    std::map<std::string, int> out;
    absl::StatusOr<std::unique_ptr<store::Store>> reader =
        store::OpenPostgresStore(database_->store_url(),
                                 store::OpenMode::kReadOnly);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return out;
    int64_t after = 0;
    while (true) {
      absl::StatusOr<std::vector<pb::Command>> chunk =
          (*reader)->ReadCommands(after, 1000);
      EXPECT_TRUE(chunk.ok()) << chunk.status();
      if (!chunk.ok() || chunk->empty()) return out;
      for (const pb::Command& c : *chunk) ++out[c.request_id()];
      after = chunk->back().sequence();
    }
  }

  // Makes B the replica the world's helpers talk to.
  void TalkToB() {
    port_ = std::stoi(b_address_.substr(b_address_.rfind(':') + 1));
    ConnectWith(grpc::InsecureChannelCredentials());
  }

  // What `voucher-scheduler verify` prints for the database while the
  // replicas run (it opens the store read-only).
  std::string VerifyOutput() {
    const std::string path = dir_ + "/verify-live.out";
    Shell(absl::StrCat(BuildDir(), "/scheduler/voucher-scheduler verify --store '",
                       database_->store_url(), "' > ", path, " 2>&1"));
    return ReadFile(path).value_or("");
  }

  // Added to both replicas' command lines, by a test class's constructor.
  std::vector<std::string> extra_args_;
  std::unique_ptr<store::StoreBackend> database_;
  std::unique_ptr<ChildProcess> b_;
  std::string a_address_;
  std::string b_address_;
};

// Replicas that retire an allocation 4 s after its end, its hold released
// 2 s after it.
class RetiringFailoverTest : public ReplicaFailoverTest {
 protected:
  RetiringFailoverTest() {
    extra_args_ = {"--retain-ended-s=4", "--usage-grace-s=2"};
  }
};

// The leader retires an allocation into the database; the follower's
// standby state retires it too, and after a takeover the new leader reads
// it from the store as the old one did.
TEST_F(RetiringFailoverTest, ARetiredAllocationIsReadOnTheNewLeader) {
  const std::string both = a_address_ + "," + b_address_;
  StartAgent("sz-b", {"--scheduler=" + both});
  ApproveCluster("sz-b");
  Issue("E-000001", 10'000'000);
  const pb::Allocation a = Allocate("H100", 1, 3600);
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_RUNNING));
  Release(a.allocation_id());
  std::string verified;
  ASSERT_TRUE(PollUntil([&] {
    verified = VerifyOutput();
    return verified.find("retired allocations: 1\n") != std::string::npos;
  })) << verified;
  EXPECT_THAT(verified, HasSubstr("OK: every invariant holds"));
  const pb::Allocation retired = GetAllocation(a.allocation_id());
  EXPECT_EQ(retired.state(), pb::ALLOCATION_STATE_ENDED);
  EXPECT_EQ(retired.held_fen(), 0);
  const std::vector<pb::ChargedUsage> usage = Usage(a.allocation_id());

  ASSERT_EQ(scheduler().Stop(SIGKILL), 128 + SIGKILL);
  ASSERT_TRUE(PollUntil([&] { return HealthStatus(b_address_) == "SERVING"; },
                        absl::Seconds(20)))
      << b_->Log();
  TalkToB();
  const pb::Allocation on_b = GetAllocation(a.allocation_id());
  EXPECT_EQ(on_b.SerializeAsString(), retired.SerializeAsString())
      << on_b.ShortDebugString() << "\nvs\n" << retired.ShortDebugString();
  EXPECT_EQ(Usage(a.allocation_id()).size(), usage.size());
  b_->Stop(SIGTERM);
  ExpectVerifies();
}

TEST_F(ReplicaFailoverTest, FollowerTakesOverWhenTheLeaderIsKilledUnderLoad) {
  const std::string both = a_address_ + "," + b_address_;
  for (const std::string cluster : {"hz-a", "sz-b"}) {
    StartAgent(cluster, {"--scheduler=" + both});
    ApproveCluster(cluster);
  }
  Issue("E-000001", 10'000'000);
  const pb::Allocation on_h100 = Allocate("H100", 2, 3600);
  const pb::Allocation on_910b = Allocate("910B", 4, 3600);
  for (const pb::Allocation& a : {on_h100, on_910b}) {
    ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_RUNNING));
  }
  IssueLoad load({a_address_, b_address_}, admin_token_);
  ASSERT_TRUE(PollUntil([&] { return load.acknowledged() >= 200; }))
      << "no load acknowledged";
  // Usage has been charged through A, which stores snapshots as it goes.
  ASSERT_TRUE(PollUntil([&] {
    return GetAllocation(on_h100.allocation_id()).used_gpu_ms() > 0;
  }));
  ASSERT_TRUE(StoredASnapshot(scheduler())) << scheduler().Log();

  ASSERT_EQ(scheduler().Stop(SIGKILL), 128 + SIGKILL);
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(PollUntil([&] { return HealthStatus(b_address_) == "SERVING"; },
                        absl::Seconds(20)))
      << b_->Log();
  const absl::Duration takeover = absl::Now() - killed;
  // The lease, a campaign period, replaying the tail, and polling.
  EXPECT_LT(takeover, absl::Seconds(kLeaseS) * 5 / 4 + absl::Seconds(2))
      << b_->Log();
  std::fprintf(stderr, "takeover after SIGKILL: %s\n",
               absl::FormatDuration(takeover).c_str());
  // It replayed only what its standby state had not caught up with.
  EXPECT_THAT(b_->Log(), HasSubstr("leading as"));
  EXPECT_THAT(b_->Log(), HasSubstr("state caught up with"));

  // The load carries on against B.
  const int64_t before = load.acknowledged();
  ASSERT_TRUE(PollUntil([&] { return load.acknowledged() >= before + 200; }))
      << b_->Log();
  load.Stop();
  EXPECT_THAT(load.errors(), ::testing::IsEmpty());
  EXPECT_TRUE(StoredASnapshot(*b_)) << b_->Log();  // in its turn

  // The agents followed B; their allocations end there and every record
  // they spooled is charged exactly once.
  TalkToB();
  for (const std::string cluster : {"hz-a", "sz-b"}) {
    EXPECT_TRUE(WaitForLog(cluster, b_address_)) << agent(cluster).Log();
  }
  Release(on_h100.allocation_id());
  Release(on_910b.allocation_id());
  ExpectMeteredOnce(on_h100.cluster_id(), on_h100.allocation_id());
  ExpectMeteredOnce(on_910b.cluster_id(), on_910b.allocation_id());

  // voucherctl, given both replicas, finds the leader too.
  EXPECT_EQ(Shell(absl::StrCat(BuildDir(), "/client/voucherctl --endpoint ",
                               a_address_, ",", b_address_, " --token ",
                               admin_token_, " admin program list > ", dir_,
                               "/voucherctl.out 2>&1")),
            0)
      << ReadFile(dir_ + "/voucherctl.out").value_or("");

  // Every acknowledged command exactly once; none tried more than once.
  const std::map<std::string, int> logged = CommandsByRequestId();
  for (const auto& [request_id, voucher_id] : load.acknowledged_ids()) {
    auto it = logged.find(request_id);
    EXPECT_TRUE(it != logged.end() && it->second == 1)
        << request_id << " (" << voucher_id << ") logged "
        << (it == logged.end() ? 0 : it->second) << " times";
  }
  for (const std::string& request_id : load.tried()) {
    auto it = logged.find(request_id);
    EXPECT_LE(it == logged.end() ? 0 : it->second, 1) << request_id;
  }
  b_->Stop(SIGTERM);
  ExpectVerifies();
}

TEST_F(ReplicaFailoverTest, PausedLeaderIsFencedAndStepsDown) {
  // A pauses past its lease with a call in progress.
  scheduler().Signal(SIGSTOP);
  grpc::Status paused_call;
  std::thread call([&] {
    auto stub = pb::AdminService::NewStub(
        grpc::CreateChannel(a_address_, grpc::InsecureChannelCredentials()));
    pb::IssueVoucherRequest r;
    r.set_request_id("sent-to-the-paused-leader");
    r.set_program_id("P-000001");
    r.set_enterprise_id("E-000002");
    r.set_face_value_fen(100);
    pb::Voucher voucher;
    paused_call = stub->IssueVoucher(As(admin_token_).get(), r, &voucher);
  });
  ASSERT_TRUE(PollUntil([&] { return HealthStatus(b_address_) == "SERVING"; },
                        absl::Seconds(20)))
      << b_->Log();
  TalkToB();
  const pb::Voucher on_b = Issue("E-000002", 100);

  // A wakes up: whatever it tries to write is refused, and it follows B.
  // Which comes first is a race: A's campaign (it steps down and answers
  // "not the leader") or the call's append (which the store refuses,
  // "fenced"; StoreTest.ATakeoverFencesTheFormerLeaderSoThatOnlyOneCommits
  // shows that path on its own).
  scheduler().Signal(SIGCONT);
  call.join();
  EXPECT_EQ(paused_call.error_code(), grpc::StatusCode::UNAVAILABLE)
      << paused_call.error_message();
  std::fprintf(stderr, "the paused leader's call: %s\n",
               paused_call.error_message().c_str());
  ASSERT_TRUE(PollUntil([&] {
    return scheduler().Log().find("stepping down") != std::string::npos;
  })) << scheduler().Log();
  EXPECT_EQ(HealthStatus(a_address_), "NOT_SERVING");
  {
    auto stub = pb::AdminService::NewStub(
        grpc::CreateChannel(a_address_, grpc::InsecureChannelCredentials()));
    auto context = As(admin_token_);
    pb::ListProgramsResponse out;
    const grpc::Status s =
        stub->ListPrograms(context.get(), pb::ListProgramsRequest(), &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(LeaderHint(*context), b_address_);
  }
  // B goes on writing; A's call never made it into the journal.
  const pb::Voucher after = Issue("E-000002", 100);
  EXPECT_NE(after.voucher_id(), on_b.voucher_id());
  EXPECT_EQ(CommandsByRequestId().count("sent-to-the-paused-leader"), 0u);
  EXPECT_EQ(HealthStatus(b_address_), "SERVING");
  b_->Stop(SIGTERM);
  ExpectVerifies();
}

}  // namespace
}  // namespace computevoucher::testing
