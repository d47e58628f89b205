// The writer: durability, group commit, idempotency, stopping, time.
#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/thread_name.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/engine/writer_fixture.h"

namespace computevoucher::engine {
namespace {

using ::computevoucher::testing::AdminPrincipal;
using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::Driver;
using ::computevoucher::testing::EnterprisePrincipal;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::NewCommand;
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::IsSupersetOf;
using ::testing::Not;

TEST(CreditCodeHelper, MatchesTheWorldAndTheValidator) {
  EXPECT_EQ(WithCheckCharacter("91330100716105852"), "91330100716105852F");
  EXPECT_EQ(WithCheckCharacter("9144030071526726X"), "9144030071526726XG");
  for (const int n : {0, 1, 7, 49, 799, 123'456'789}) {
    const std::string code = CreditCode(n);
    EXPECT_THAT(NormalizeCreditCode("code", code), IsOk()) << code;
  }
}

// The names of this process's threads.
std::set<std::string> ThreadNames() {
  std::set<std::string> names;
  for (const int tid : ThreadsOfThisProcess()) names.insert(NameOfThread(tid));
  return names;
}

// An operator tells the writer's threads apart by name in `top -H`, `ps -L`
// and `perf`.
TEST_F(WriterTest, ItsThreadsAreNamed) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::unique_ptr<Writer> writer = OpenWriter(*store);
  ASSERT_NE(writer, nullptr);
  const std::set<std::string> wanted = {"cv-writer", "cv-commit",
                                        "cv-snapshot"};
  // Each thread names itself as it starts.
  std::set<std::string> names = ThreadNames();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!std::includes(names.begin(), names.end(), wanted.begin(),
                        wanted.end()) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
    names = ThreadNames();
  }
  EXPECT_THAT(names, IsSupersetOf(wanted));
}

TEST_F(WriterTest, SubmittedCommandsAreDurableAcrossRestart) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::unique_ptr<Writer> writer = OpenWriter(*store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));

  ASSERT_OK_AND_ASSIGN(
      const core::Outcome issued,
      writer->Submit(IssueCommand("issue-1", "E-000001", 100'000)));
  const pb::Voucher voucher = ResponseAs<pb::Voucher>(issued);
  ASSERT_OK_AND_ASSIGN(
      const core::Outcome second,
      writer->Submit(IssueCommand("issue-2", "E-000002", 50'000)));
  ASSERT_OK_AND_ASSIGN(const core::Outcome allocated,
                       writer->Submit(AllocateCommand("alloc-1", "E-000001",
                                                      voucher.voucher_id())));
  const pb::Allocation allocation = ResponseAs<pb::Allocation>(allocated);
  ASSERT_EQ(allocation.state(), pb::ALLOCATION_STATE_ASSIGNED)
      << allocation.ShortDebugString();
  ASSERT_OK_AND_ASSIGN(const absl::Time assigned,
                       FromProto("assigned_at", allocation.assigned_at()));
  ASSERT_OK_AND_ASSIGN(
      const core::Outcome reported,
      writer->Submit(UsageCommand("usage-1", allocation, 1, assigned,
                                  assigned + absl::Minutes(1), 60'000)));
  const auto& usage = ResponseAs<pb::ReportUsageResponse>(reported);
  ASSERT_EQ(usage.acks_size(), 1);
  EXPECT_EQ(usage.acks(0).result(), pb::USAGE_RESULT_ACCEPTED)
      << usage.ShortDebugString();

  const std::string digest = Digest(*writer);
  const std::string ledger_head = LedgerHead(*writer);
  EXPECT_FALSE(ledger_head.empty());
  const WriterStats stats = writer->stats();
  const Head head = HeadOf(*store);
  EXPECT_EQ(head.command_sequence, stats.commands);
  EXPECT_EQ(head.journal_sequence, stats.entries);
  EXPECT_EQ(head.command_sequence,
            static_cast<int64_t>(WorldCommands().size()) + 4);
  EXPECT_GT(head.journal_sequence, 0);

  writer->Stop();
  ASSERT_NO_FATAL_FAILURE(Restart(store, writer));
  EXPECT_EQ(Digest(*writer), digest);
  EXPECT_EQ(LedgerHead(*writer), ledger_head);
  for (const core::Outcome* outcome : {&issued, &second}) {
    const pb::Voucher& v = ResponseAs<pb::Voucher>(*outcome);
    ASSERT_OK_AND_ASSIGN(const pb::Voucher reread,
                         writer->Read([&](const core::StateMachine& s) {
                           return s.VoucherView(v.voucher_id());
                         }));
    EXPECT_EQ(reread.face_value_fen(), v.face_value_fen());
    EXPECT_EQ(reread.enterprise_id(), v.enterprise_id());
  }
  EXPECT_EQ(writer->Read([](const core::StateMachine& s) {
    return s.last_command_sequence();
  }),
            head.command_sequence);

  // The restarted writer continues the sequences.
  ASSERT_THAT(writer->Submit(IssueCommand("issue-3", "E-000003", 1'000)),
              IsOk());
  EXPECT_EQ(HeadOf(*store).command_sequence, head.command_sequence + 1);
  EXPECT_NE(Digest(*writer), digest);
}

// Many threads submitting at once: issues and provider registrations,
// alternating, each with its own request id.
class ConcurrentLoad {
 public:
  static constexpr int kThreads = 16;
  static constexpr int kPerThread = 50;
  static constexpr int kTotal = kThreads * kPerThread;

  static std::string RequestId(int n) {
    return absl::StrCat("load-", n / kPerThread, "-", n % kPerThread);
  }
  static bool IsIssue(int n) {
    return (n / kPerThread + n % kPerThread) % 2 == 0;
  }

  // Submits every command from kThreads threads and returns the answers.
  static std::vector<absl::StatusOr<core::Outcome>> Submit(Writer& writer) {
    std::vector<absl::StatusOr<core::Outcome>> results(
        kTotal, absl::UnknownError("not answered"));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int n = t * kPerThread; n < (t + 1) * kPerThread; ++n) {
          results[n] = writer.Submit(
              IsIssue(n)
                  ? IssueCommand(RequestId(n),
                                 absl::StrCat("E-00000", 1 + n % 3), 100 + n)
                  : ProviderCommand(RequestId(n),
                                    absl::StrCat("负载测试算力公司 ", n),
                                    CreditCode(n)));
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    return results;
  }

  // Checks that each command got its own answer; returns the voucher ids
  // issued, and adds the provider ids registered to `provider_ids`.
  static std::set<std::string> CheckAnswers(
      const std::vector<absl::StatusOr<core::Outcome>>& results,
      std::set<std::string>& provider_ids) {
    std::set<std::string> voucher_ids;
    int issues = 0;
    for (int n = 0; n < kTotal; ++n) {
      EXPECT_THAT(results[n], IsOk()) << RequestId(n);
      if (!results[n].ok()) continue;
      if (IsIssue(n)) {
        ++issues;
        const pb::Voucher& v = ResponseAs<pb::Voucher>(*results[n]);
        EXPECT_EQ(v.face_value_fen(), 100 + n) << RequestId(n);
        voucher_ids.insert(v.voucher_id());
      } else {
        const pb::Provider& p = ResponseAs<pb::Provider>(*results[n]);
        EXPECT_EQ(p.credit_code(), CreditCode(n)) << RequestId(n);
        provider_ids.insert(p.provider_id());
      }
    }
    EXPECT_EQ(static_cast<int>(voucher_ids.size()), issues);
    EXPECT_EQ(static_cast<int>(provider_ids.size()), kTotal - issues);
    return voucher_ids;
  }

  // Every command is in `logged` exactly once, and its effect in the state
  // exactly once.
  static void ExpectAppliedOnce(const std::vector<std::string>& logged,
                                const Writer& writer,
                                const std::set<std::string>& voucher_ids) {
    std::map<std::string, int> count;
    for (const std::string& id : logged) ++count[id];
    for (int n = 0; n < kTotal; ++n) {
      EXPECT_EQ(count[RequestId(n)], 1) << RequestId(n);
    }
    const std::vector<std::string> vouchers = VoucherIds(writer);
    EXPECT_EQ(std::set<std::string>(vouchers.begin(), vouchers.end()),
              voucher_ids);
    std::map<std::string, int> codes;
    writer.Read([&codes](const core::StateMachine& s) {
      for (const auto& [id, provider] : s.providers()) {
        ++codes[provider.credit_code()];
      }
      return 0;
    });
    for (int n = 0; n < kTotal; ++n) {
      if (IsIssue(n)) continue;
      EXPECT_EQ(codes[CreditCode(n)], 1) << RequestId(n);
    }
  }
};

TEST_F(WriterTest, ConcurrentSubmittersAreGroupCommitted) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::unique_ptr<Writer> writer = OpenWriter(*store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
  const WriterStats before = writer->stats();
  const int64_t head_before = HeadOf(*store).command_sequence;

  const std::vector<absl::StatusOr<core::Outcome>> results =
      ConcurrentLoad::Submit(*writer);
  std::set<std::string> provider_ids;
  const std::set<std::string> voucher_ids =
      ConcurrentLoad::CheckAnswers(results, provider_ids);

  const WriterStats after = writer->stats();
  EXPECT_EQ(after.commands - before.commands, ConcurrentLoad::kTotal);
  EXPECT_EQ(after.rejected, before.rejected);
  EXPECT_EQ(after.store_failures, 0);
  EXPECT_LT(after.batches - before.batches, ConcurrentLoad::kTotal)
      << "no two commands shared a transaction";
  RecordProperty("batches", static_cast<int>(after.batches - before.batches));
  EXPECT_EQ(HeadOf(*store).command_sequence,
            head_before + ConcurrentLoad::kTotal);
  const std::string digest = Digest(*writer);

  writer->Stop();
  ASSERT_NO_FATAL_FAILURE(Restart(store, writer));
  EXPECT_EQ(Digest(*writer), digest);
  ConcurrentLoad::ExpectAppliedOnce(StoredRequestIds(*store), *writer,
                                    voucher_ids);
}

TEST_F(WriterTest, RejectedCommandIsAnsweredAndNotLogged) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::unique_ptr<Writer> writer = OpenWriter(*store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
  const Head head = HeadOf(*store);
  const std::string digest = Digest(*writer);

  // Wrong check character.
  EXPECT_THAT(
      writer->Submit(
          ProviderCommand("bad-code", "坏代码有限公司", "91330100716105852X")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("credit_code")));
  EXPECT_THAT(writer->Submit(IssueCommand("bad-amount", "E-000001", 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("face_value_fen")));
  EXPECT_THAT(writer->Submit(IssueCommand("no-such", "E-999999", 100)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(HeadOf(*store).command_sequence, head.command_sequence);
  EXPECT_EQ(HeadOf(*store).journal_sequence, head.journal_sequence);
  EXPECT_EQ(Digest(*writer), digest);
  EXPECT_EQ(writer->stats().rejected, 3);

  // The rejected request id is free to use for a good request.
  ASSERT_THAT(writer->Submit(
                  ProviderCommand("bad-code", "好代码有限公司", CreditCode(1))),
              IsOk());
  EXPECT_EQ(HeadOf(*store).command_sequence, head.command_sequence + 1);
}

TEST_F(WriterTest, RetriedRequestReturnsTheSameResponseAndLogsNothing) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::unique_ptr<Writer> writer = OpenWriter(*store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));

  const pb::Command issue = IssueCommand("retry-1", "E-000001", 12'345);
  ASSERT_OK_AND_ASSIGN(const core::Outcome first, writer->Submit(issue));
  const pb::Voucher voucher = ResponseAs<pb::Voucher>(first);
  const Head head = HeadOf(*store);
  const std::string digest = Digest(*writer);

  ASSERT_OK_AND_ASSIGN(const core::Outcome again, writer->Submit(issue));
  EXPECT_FALSE(again.changed);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      ResponseAs<pb::Voucher>(again), voucher))
      << ResponseAs<pb::Voucher>(again).ShortDebugString() << " vs "
      << voucher.ShortDebugString();
  EXPECT_EQ(HeadOf(*store).command_sequence, head.command_sequence);
  EXPECT_EQ(HeadOf(*store).journal_sequence, head.journal_sequence);
  EXPECT_EQ(Digest(*writer), digest);
  EXPECT_THAT(VoucherIds(*writer),
              ::testing::ElementsAre(voucher.voucher_id()));

  // The same id for a different request is refused, and not logged.
  EXPECT_THAT(
      writer->Submit(IssueCommand("retry-1", "E-000001", 99)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
  EXPECT_EQ(HeadOf(*store).command_sequence, head.command_sequence);

  // Still the same answer after a restart.
  ASSERT_NO_FATAL_FAILURE(Restart(store, writer));
  ASSERT_OK_AND_ASSIGN(const core::Outcome after_restart,
                       writer->Submit(issue));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      ResponseAs<pb::Voucher>(after_restart), voucher))
      << ResponseAs<pb::Voucher>(after_restart).ShortDebugString();
  EXPECT_EQ(HeadOf(*store).command_sequence, head.command_sequence);
}

// Issue 13 (1): with the data directory on a full disk, an allocation id

// was listed for 26 different requests and stored for one. A reader must

// see only what is durable: a read of state whose batch is still being

// committed waits for that commit, and reads again if the commit failed.

TEST_F(WriterTest, TimeNeverRunsBackwardsWhateverTheClockDoes) {
  computevoucher::testing::FakeClock clock(
      computevoucher::testing::WorldStart());
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Writer> writer,
                       Writer::Open(*store, clock));
  const absl::Time start = computevoucher::testing::WorldStart();
  clock.Set(start);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));

  // The clock steps back after a logged command.
  clock.Set(start + absl::Hours(1));
  ASSERT_THAT(writer->Submit(IssueCommand("late-1", "E-000001", 100)), IsOk());
  clock.Set(start + absl::Minutes(30));
  EXPECT_THAT(writer->Submit(IssueCommand("late-2", "E-000001", 100)), IsOk());

  // The clock steps back after a command that was accepted but changed
  // nothing (the cluster is already approved), so was not logged.
  clock.Set(start + absl::Hours(2));
  ASSERT_OK_AND_ASSIGN(
      const core::Outcome unchanged,
      writer->Submit(ClusterStateCommand("approve-again", "hz-a",
                                         pb::CLUSTER_STATE_APPROVED)));
  EXPECT_FALSE(unchanged.changed);
  clock.Set(start + absl::Hours(1) + absl::Minutes(30));
  EXPECT_THAT(writer->Submit(IssueCommand("late-3", "E-000001", 100)), IsOk());

  // Whatever was logged is in time order and replays.
  absl::Time previous = absl::InfinitePast();
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Command> commands,
                       store->ReadCommands(0, 10'000));
  for (const pb::Command& c : commands) {
    ASSERT_OK_AND_ASSIGN(const absl::Time t, FromProto("time", c.time()));
    EXPECT_GE(t, previous) << c.ShortDebugString();
    previous = t;
  }
  const std::string digest = Digest(*writer);
  writer.reset();
  ASSERT_OK_AND_ASSIGN(writer, Writer::Open(*store, clock));
  EXPECT_EQ(Digest(*writer), digest);
}

}  // namespace
}  // namespace computevoucher::engine
