// The writer when the store fails or is held: unavailable answers, rebuilt
// state, readers that see only durable state, a stop in the middle of a
// commit, a tampered journal; and, with a commit held, how many usage
// records the next batch takes.

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/engine/writer_fixture.h"
#include "tests/scheduler/store/store_backend.h"

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
using ::testing::Not;

// Submits one command from each of `threads` threads at once, issues and
// provider registrations alternating, and returns the answers.
std::vector<absl::StatusOr<core::Outcome>> SubmitFromThreads(Writer& writer,
                                                             int threads) {
  std::vector<absl::StatusOr<core::Outcome>> results(
      threads, absl::UnknownError("not answered"));
  std::vector<std::thread> running;
  for (int t = 0; t < threads; ++t) {
    running.emplace_back([&, t] {
      results[t] = writer.Submit(
          t % 2 == 0
              ? IssueCommand(absl::StrCat("lost-many-", t), "E-000002",
                             1'000 + t)
              : ProviderCommand(absl::StrCat("lost-many-", t),
                                absl::StrCat("失败公司 ", t), CreditCode(t)));
    });
  }
  for (std::thread& thread : running) thread.join();
  return results;
}

TEST_F(FaultyWriterTest, StoreFailureAnswersUnavailableAndRebuildsTheState) {
  FaultyStore& store = *store_;
  std::unique_ptr<Writer>& writer = writer_;
  const Head head = HeadOf(store);
  const std::string digest = Digest(*writer);
  const std::string ledger_head = LedgerHead(*writer);

  store.set_fail_appends(true);
  EXPECT_THAT(writer->Submit(IssueCommand("lost-1", "E-000001", 10'000)),
              StatusIs(absl::StatusCode::kUnavailable));
  // The voucher the failed command issued is gone from memory too.
  EXPECT_THAT(VoucherIds(*writer), IsEmpty());
  EXPECT_EQ(Digest(*writer), digest);
  EXPECT_EQ(LedgerHead(*writer), ledger_head);
  EXPECT_EQ(HeadOf(store).command_sequence, head.command_sequence);

  // Many at once, in however many batches: each one is answered
  // Unavailable, and none leaves a trace.
  constexpr int kThreads = 8;
  const std::vector<absl::StatusOr<core::Outcome>> results =
      SubmitFromThreads(*writer, kThreads);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_THAT(results[t], StatusIs(absl::StatusCode::kUnavailable,
                                     HasSubstr("request_id")))
        << "thread " << t;
  }
  // A batch applied while the one before it was failing to commit is
  // refused without reaching the store, so not every command was tried.
  EXPECT_GE(store.failed_request_ids().size(), 2u);
  EXPECT_LE(store.failed_request_ids().size(), 1u + kThreads);
  EXPECT_THAT(VoucherIds(*writer), IsEmpty());
  EXPECT_EQ(Digest(*writer), digest);
  EXPECT_EQ(HeadOf(store).command_sequence, head.command_sequence);
  EXPECT_EQ(HeadOf(store).journal_sequence, head.journal_sequence);
  const WriterStats stats = writer->stats();
  EXPECT_GE(stats.store_failures, 2);
  EXPECT_EQ(stats.consecutive_failures, stats.store_failures);
  EXPECT_THAT(stats.last_failure, Not(IsEmpty()));
  EXPECT_EQ(stats.commands, head.command_sequence);
  // The operator sees it: health and metrics read degraded().
  EXPECT_TRUE(writer->degraded());
  EXPECT_FALSE(writer->failed());

  // The store is back: the retried request and new ones succeed and are
  // logged, continuing the sequences without a gap.
  store.set_fail_appends(false);
  ASSERT_OK_AND_ASSIGN(
      const core::Outcome retried,
      writer->Submit(IssueCommand("lost-1", "E-000001", 10'000)));
  const pb::Voucher voucher = ResponseAs<pb::Voucher>(retried);
  EXPECT_THAT(writer->Read([&](const core::StateMachine& s) {
    return s.VoucherView(voucher.voucher_id());
  }),
              IsOk());
  ASSERT_THAT(writer->Submit(ProviderCommand("after-failure", "恢复公司",
                                             CreditCode(4242))),
              IsOk());
  EXPECT_EQ(HeadOf(store).command_sequence, head.command_sequence + 2);
  EXPECT_EQ(StoredRequestIds(store).back(), "after-failure");
  EXPECT_FALSE(writer->degraded());
  EXPECT_EQ(writer->stats().consecutive_failures, 0);
  EXPECT_EQ(writer->stats().store_failures, stats.store_failures);

  // What the writer holds in memory is what a restart rebuilds.
  const std::string live = Digest(*writer);
  writer.reset();
  writer = OpenWriter(store);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(Digest(*writer), live);
}

TEST_F(FaultyWriterTest, ReadersSeeOnlyDurableStateWhileABatchCommitsOrFails) {
  FaultyStore& store = *store_;
  std::unique_ptr<Writer>& writer = writer_;

  // Submits `command` and holds its batch inside a commit (that fails if
  // `fail`); reads the voucher ids meanwhile on another thread, checks that
  // the read waits for the commit, then lets the commit end. Returns the
  // command's answer and what the reader saw.
  auto submit_and_read_during_commit = [&](const pb::Command& command,
                                           bool fail) {
    store.CloseGate();
    store.set_fail_appends(fail);
    const int entered = store.appends_entered();
    absl::StatusOr<core::Outcome> answer = absl::UnknownError("not answered");
    std::thread submitter([&] { answer = writer->Submit(command); });
    EXPECT_TRUE(store.AwaitAppendsEntered(entered + 1));
    absl::Mutex mu;
    bool done = false;
    std::vector<std::string> seen;
    std::thread reader([&] {
      std::vector<std::string> ids = VoucherIds(*writer);
      absl::MutexLock lock(&mu);
      seen = std::move(ids);
      done = true;
    });
    // Until the reader has either finished or waits for the commit (so
    // that the gate opens only after the read, however it is answered).
    auto finished = [&] {
      absl::MutexLock lock(&mu);
      return done;
    };
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!finished() && writer->stats().reads_waiting == 0 &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    EXPECT_FALSE(finished()) << "a read did not wait for the commit";
    store.OpenGate();
    submitter.join();
    reader.join();
    store.set_fail_appends(false);
    return std::make_pair(answer, seen);
  };

  // A voucher is applied and held inside a commit that fails: the reader
  // never sees it.
  const auto [lost, seen_during_failure] = submit_and_read_during_commit(
      IssueCommand("phantom-read", "E-000001", 10'000), /*fail=*/true);
  EXPECT_THAT(lost, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(seen_during_failure, IsEmpty());

  // The same id goes to the next voucher, which nobody saw before; a
  // reader during a commit that succeeds sees it once it is durable.
  const auto [kept, seen_during_commit] = submit_and_read_during_commit(
      IssueCommand("kept-read", "E-000002", 20'000), /*fail=*/false);
  ASSERT_THAT(kept, IsOk());
  const std::string id = ResponseAs<pb::Voucher>(*kept).voucher_id();
  EXPECT_THAT(seen_during_commit, ::testing::ElementsAre(id));
  EXPECT_EQ(writer->stats().reads_waiting, 0);
  EXPECT_THAT(StoredRequestIds(store), ::testing::Contains("kept-read"));
}

TEST_F(FaultyWriterTest,
       AQuietWriterIsNoLongerDegradedAMinuteAfterItsLastFailure) {
  FaultyStore& store = *store_;
  std::unique_ptr<Writer>& writer = writer_;
  EXPECT_FALSE(writer->degraded());
  store.set_fail_appends(true);
  EXPECT_THAT(writer->Submit(IssueCommand("lost-1", "E-000001", 10'000)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(writer->degraded());
  // Nothing more is submitted; the disk was freed meanwhile.
  store.set_fail_appends(false);
  clock_.Advance(Writer::kFailingFor - absl::Seconds(1));
  EXPECT_TRUE(writer->degraded());
  clock_.Advance(absl::Seconds(2));
  EXPECT_FALSE(writer->degraded());
  // A commit that touches nothing is no proof either way.
  EXPECT_EQ(writer->stats().consecutive_failures, 1);
}

// On the embedded store a commit carries at most 200 usage records unless
// configured otherwise (its DefaultBatchRecords), so that an Allocate waits
// behind a flood of usage for short commits only: three reports of 100
// records queued behind a commit never go into one batch.
TEST_F(FaultyWriterTest, OnTheEmbeddedStoreACommitTakesAtMost200UsageRecords) {
  FaultyStore& store = *store_;
  std::unique_ptr<Writer>& writer = writer_;
  constexpr int kReports = 3;
  constexpr int kRecords = 100;
  std::vector<pb::Command> reports;
  std::vector<std::string> allocation_ids;
  for (int i = 0; i < kReports; ++i) {
    ASSERT_OK_AND_ASSIGN(const core::Outcome issued,
                         writer->Submit(IssueCommand(absl::StrCat("issue-", i),
                                                     "E-000001", 100'000)));
    ASSERT_OK_AND_ASSIGN(const core::Outcome allocated,
                         writer->Submit(AllocateCommand(
                             absl::StrCat("alloc-", i), "E-000001",
                             ResponseAs<pb::Voucher>(issued).voucher_id())));
    const pb::Allocation a = ResponseAs<pb::Allocation>(allocated);
    ASSERT_EQ(a.state(), pb::ALLOCATION_STATE_ASSIGNED) << a.ShortDebugString();
    allocation_ids.push_back(a.allocation_id());
    ASSERT_OK_AND_ASSIGN(const absl::Time assigned,
                         FromProto("assigned_at", a.assigned_at()));
    pb::Command report = UsageCommand(absl::StrCat("usage-", i), a, 1, assigned,
                                      assigned + absl::Seconds(1), 1'000);
    const pb::UsageRecord first = report.report_usage().records(0);
    for (int s = 2; s <= kRecords; ++s) {
      pb::UsageRecord* u = report.mutable_report_usage()->add_records();
      *u = first;
      u->set_sequence(s);
      *u->mutable_start() = ToProto(assigned + absl::Seconds(s - 1));
      *u->mutable_end() = ToProto(assigned + absl::Seconds(s));
    }
    reports.push_back(std::move(report));
  }
  clock_.Advance(absl::Minutes(10));

  // A commit held in the store; the reports queue behind it, and the
  // writer applies the next batch while it waits.
  store.CloseGate();
  const int entered = store.appends_entered();
  std::thread held([&] {
    EXPECT_THAT(writer->Submit(IssueCommand("held", "E-000002", 1'000)),
                IsOk());
  });
  EXPECT_TRUE(store.AwaitAppendsEntered(entered + 1));
  std::atomic<int> submitting{0};
  std::vector<std::thread> submitters;
  for (const pb::Command& report : reports) {
    submitters.emplace_back([&writer, &submitting, report] {
      ++submitting;
      absl::StatusOr<core::Outcome> answer = writer->Submit(report);
      ASSERT_THAT(answer, IsOk());
      for (const pb::UsageAck& ack :
           ResponseAs<pb::ReportUsageResponse>(*answer).acks()) {
        EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED)
            << ack.ShortDebugString();
      }
    });
  }
  // Until every submitter started and the next batch holds at least two
  // reports (the third may not be queued yet: a writer without the bound
  // takes it only when it arrives in time, as it did in every run tried).
  auto applied = [&] {
    return writer->ReadApplied([&](const core::StateMachine& state) {
      int n = 0;
      for (const std::string& id : allocation_ids) {
        n += state.AllocationView(id)->last_sequence() == kRecords;
      }
      return n;
    });
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while ((submitting < kReports || applied() < 2) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  store.OpenGate();
  held.join();
  for (std::thread& t : submitters) t.join();

  EXPECT_EQ(applied(), kReports);
  EXPECT_EQ(store.most_records_appended(), 2 * kRecords);
}

TEST_F(WriterTest, TamperedJournalIsDataLoss) {
  {
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    std::unique_ptr<Writer> writer = OpenWriter(*store);
    ASSERT_NE(writer, nullptr);
    ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
    ASSERT_THAT(writer->Submit(IssueCommand("issue-1", "E-000001", 100'000)),
                IsOk());
  }
  {
    // Both the writer and the store are closed; change one amount, and
    // the hashes after it to match.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::StoreBackend> backend,
                         store::MakeStoreBackend("sqlite", root_));
    ASSERT_THAT(backend->ForgeLog([](std::vector<Batch>& batches) {
      pb::JournalEntry& last = batches.back().entries.back();
      last.set_amount_fen(last.amount_fen() + 1);
    }),
                IsOk());
  }
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(Writer::Open(*store, clock_),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(FaultyWriterTest, StopAnswersQueuedCommandsThenRefusesNewOnes) {
  FaultyStore& store = *store_;
  std::unique_ptr<Writer>& writer = writer_;
  const int64_t world = HeadOf(store).command_sequence;

  // Hold the writer inside a commit, queue more behind it, and stop.
  store.CloseGate();
  const int entered = store.appends_entered();
  absl::StatusOr<core::Outcome> held = absl::UnknownError("not answered");
  std::thread holder([&] {
    held = writer->Submit(IssueCommand("stop-held", "E-000001", 500));
  });
  // EXPECT, not ASSERT: the threads must be joined whatever happens.
  EXPECT_TRUE(store.AwaitAppendsEntered(entered + 1));

  constexpr int kQueued = 6;
  std::vector<absl::StatusOr<core::Outcome>> queued(
      kQueued, absl::UnknownError("not answered"));
  absl::Mutex started_mu;
  int started = 0;
  std::vector<std::thread> submitters;
  for (int i = 0; i < kQueued; ++i) {
    submitters.emplace_back([&, i] {
      {
        absl::MutexLock lock(&started_mu);
        ++started;
      }
      queued[i] = writer->Submit(
          IssueCommand(absl::StrCat("stop-queued-", i), "E-000003", 600 + i));
    });
  }
  {
    // Give the submitters a head start on Stop (they cannot finish while
    // the commit is held).
    absl::MutexLock lock(&started_mu);
    auto all_started = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(started_mu) {
      return started == kQueued;
    };
    EXPECT_TRUE(started_mu.AwaitWithTimeout(absl::Condition(&all_started),
                                            absl::Seconds(60)));
  }
  std::thread stopper([&] { writer->Stop(); });
  store.OpenGate();
  holder.join();
  for (std::thread& t : submitters) t.join();
  stopper.join();

  // The command being committed when Stop came is answered and durable;
  // every other one is answered: OK and logged if it was queued before
  // Stop, Unavailable and not logged if it came after.
  ASSERT_THAT(held, IsOk());
  const std::vector<std::string> logged = StoredRequestIds(store);
  const std::set<std::string> logged_set(logged.begin(), logged.end());
  EXPECT_EQ(logged_set.count("stop-held"), 1u);
  int answered_ok = 0;
  for (int i = 0; i < kQueued; ++i) {
    const std::string id = absl::StrCat("stop-queued-", i);
    if (queued[i].ok()) {
      ++answered_ok;
      EXPECT_EQ(logged_set.count(id), 1u) << id;
    } else {
      EXPECT_THAT(queued[i], StatusIs(absl::StatusCode::kUnavailable)) << id;
      EXPECT_EQ(logged_set.count(id), 0u) << id;
    }
  }
  EXPECT_EQ(HeadOf(store).command_sequence, world + 1 + answered_ok);
  RecordProperty("queued_answered_ok", answered_ok);

  // After Stop nothing is accepted, and Stop may be called again.
  const Head head = HeadOf(store);
  EXPECT_THAT(writer->Submit(IssueCommand("after-stop", "E-000001", 700)),
              StatusIs(absl::StatusCode::kUnavailable));
  writer->Stop();
  EXPECT_THAT(writer->Submit(IssueCommand("after-stop-2", "E-000001", 700)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(HeadOf(store).command_sequence, head.command_sequence);
  EXPECT_EQ(HeadOf(store).journal_sequence, head.journal_sequence);
}

TEST_F(FaultyWriterTest,
       StoreFailureWithFailedRebuildServesNoUncommittedState) {
  FaultyStore& store = *store_;
  std::unique_ptr<Writer>& writer = writer_;
  const std::string digest = Digest(*writer);

  // The commit fails and so does the rebuild that should follow it.
  store.set_fail_appends(true);
  store.set_fail_reads(true);
  EXPECT_THAT(writer->Submit(IssueCommand("phantom-1", "E-000001", 10'000)),
              StatusIs(absl::StatusCode::kUnavailable));
  // Readers must not see the voucher of a command that was answered
  // Unavailable and is not in the store.
  EXPECT_THAT(VoucherIds(*writer), IsEmpty());
  // Nothing it holds can be trusted, so it serves an empty state.
  EXPECT_EQ(Digest(*writer),
            absl::BytesToHexString(core::StateMachine().Digest()));
  // Until restarted, the writer refuses work.
  EXPECT_THAT(writer->Submit(IssueCommand("phantom-2", "E-000001", 10'000)),
              StatusIs(absl::StatusCode::kUnavailable));

  // A restart on a healthy store rebuilds what was committed.
  store.set_fail_appends(false);
  store.set_fail_reads(false);
  writer.reset();
  writer = OpenWriter(store);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(Digest(*writer), digest);
  EXPECT_THAT(writer->Submit(IssueCommand("phantom-1", "E-000001", 10'000)),
              IsOk());
}

}  // namespace
}  // namespace computevoucher::engine
