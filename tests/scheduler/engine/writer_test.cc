#include "scheduler/engine/writer.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/credit_code.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/sqlite_store.h"
#include "scheduler/store/store.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::engine {
namespace {

using store::Batch;
using store::Candidate;
using store::Head;
using store::Leadership;
using store::OpenMode;
using store::OpenSqliteStore;
using store::Store;
using store::UsageQuery;
using store::UsageRow;

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

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

// A store around a real one with fault switches: Append can be made to fail
// with Unavailable (storing nothing), and held at a gate until the test
// opens it.
class FaultyStore final : public Store {
 public:
  explicit FaultyStore(std::unique_ptr<Store> base) : base_(std::move(base)) {}

  void set_fail_appends(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_appends_ = fail;
  }
  // Makes every read fail too, so that the writer cannot rebuild its state.
  void set_fail_reads(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_reads_ = fail;
  }
  void CloseGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = true;
  }
  // Waits (up to a generous deadline) until Append has been entered
  // `n` times in all; false on timeout.
  bool AwaitAppendsEntered(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return appends_entered_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(60));
  }
  int appends_entered() const {
    absl::MutexLock lock(&mu_);
    return appends_entered_;
  }
  // Commands in the batches whose Append failed, by request id.
  std::vector<std::string> failed_request_ids() const {
    absl::MutexLock lock(&mu_);
    return failed_request_ids_;
  }

  absl::Status Append(const Batch& batch) override {
    {
      absl::MutexLock lock(&mu_);
      ++appends_entered_;
      auto open = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return gate_open_; };
      mu_.Await(absl::Condition(&open));
      if (fail_appends_) {
        for (const pb::Command& c : batch.commands) {
          failed_request_ids_.push_back(c.request_id());
        }
        return absl::UnavailableError("injected: disk unplugged");
      }
    }
    return base_->Append(batch);
  }
  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                        int limit) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ReadCommands(after, limit);
  }
  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ReadJournal(after, limit);
  }
  absl::StatusOr<Head> ReadHead() override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ReadHead();
  }
  absl::StatusOr<std::vector<UsageRow>> ReadUsage(
      const UsageQuery& query) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ReadUsage(query);
  }
  absl::StatusOr<Head> ScanUsage(
      const UsageQuery& query,
      const std::function<void(const pb::ChargedUsage&)>& fn) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ScanUsage(query, fn);
  }
  absl::StatusOr<Leadership> Campaign(const Candidate& candidate,
                                      absl::Duration lease) override {
    return base_->Campaign(candidate, lease);
  }
  absl::Status Resign() override { return base_->Resign(); }

 private:
  absl::Status ReadFault() const {
    absl::MutexLock lock(&mu_);
    return fail_reads_ ? absl::UnavailableError("injected: reads fail")
                       : absl::OkStatus();
  }

  const std::unique_ptr<Store> base_;
  mutable absl::Mutex mu_;
  bool fail_appends_ ABSL_GUARDED_BY(mu_) = false;
  bool fail_reads_ ABSL_GUARDED_BY(mu_) = false;
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  int appends_entered_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> failed_request_ids_ ABSL_GUARDED_BY(mu_);
};

// `first17` completed with its GB 32100-2015 check character.
std::string WithCheckCharacter(const std::string& first17) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  int sum = 0;
  int weight = 1;  // 3^i mod 31
  for (int i = 0; i < 17; ++i) {
    const int value =
        static_cast<int>(std::strchr(kAlphabet, first17[i]) - kAlphabet);
    sum += value * weight;
    weight = weight * 3 % 31;
  }
  return first17 + kAlphabet[(31 - sum % 31) % 31];
}

// A valid credit code, distinct for each n (0 <= n < 10^9), different from
// the world's.
std::string CreditCode(int n) {
  return WithCheckCharacter(absl::StrFormat("91110108%09d", n));
}

pb::Command IssueCommand(const std::string& request_id,
                         const std::string& enterprise_id,
                         int64_t face_value_fen) {
  pb::Command c = NewCommand(AdminPrincipal(), request_id);
  pb::IssueVoucherRequest* r = c.mutable_issue_voucher();
  r->set_program_id("P-000001");
  r->set_enterprise_id(enterprise_id);
  r->set_face_value_fen(face_value_fen);
  return c;
}

pb::Command ProviderCommand(const std::string& request_id,
                            const std::string& name, const std::string& code) {
  pb::Command c = NewCommand(AdminPrincipal(), request_id);
  c.mutable_register_provider()->set_name(name);
  c.mutable_register_provider()->set_credit_code(code);
  return c;
}

pb::Command AllocateCommand(const std::string& request_id,
                            const std::string& enterprise_id,
                            const std::string& voucher_id) {
  pb::Command c = NewCommand(EnterprisePrincipal(enterprise_id), request_id);
  pb::AllocateRequest* r = c.mutable_allocate();
  r->mutable_resources()->set_gpu_model("H100");
  r->mutable_resources()->set_gpu_count(1);
  r->mutable_resources()->set_max_duration_s(3600);
  r->mutable_resources()->set_voucher_id(voucher_id);
  return c;
}

pb::Command UsageCommand(const std::string& request_id,
                         const pb::Allocation& allocation, int64_t sequence,
                         absl::Time start, absl::Time end, int64_t gpu_ms) {
  pb::Command c =
      NewCommand(AgentPrincipal(allocation.cluster_id()), request_id);
  pb::UsageRecord* u = c.mutable_report_usage()->add_records();
  u->set_allocation_id(allocation.allocation_id());
  u->set_sequence(sequence);
  *u->mutable_start() = ToProto(start);
  *u->mutable_end() = ToProto(end);
  u->set_gpu_ms(gpu_ms);
  return c;
}

pb::Command ClusterStateCommand(const std::string& request_id,
                                const std::string& cluster_id,
                                pb::ClusterState state) {
  pb::Command c = NewCommand(AdminPrincipal(), request_id);
  c.mutable_set_cluster_state()->set_cluster_id(cluster_id);
  c.mutable_set_cluster_state()->set_state(state);
  return c;
}

template <typename T>
const T& ResponseAs(const core::Outcome& outcome) {
  return *static_cast<const T*>(outcome.response.get());
}

// The state's digest, in hex for readable failures.
std::string Digest(const Writer& writer) {
  return absl::BytesToHexString(
      writer.Read([](const core::StateMachine& s) { return s.Digest(); }));
}

std::string LedgerHead(const Writer& writer) {
  return writer.Read(
      [](const core::StateMachine& s) { return s.ledger().last_hash(); });
}

std::vector<std::string> VoucherIds(const Writer& writer) {
  return writer.Read(
      [](const core::StateMachine& s) { return s.VoucherIds(); });
}

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("writer_test", temp_));
    root_ = temp_.path();
    data_dir_ = root_ + "/data";
  }

  std::unique_ptr<Store> OpenStore() {
    absl::StatusOr<std::unique_ptr<Store>> store =
        OpenSqliteStore(data_dir_, OpenMode::kReadWrite);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::unique_ptr<Writer> OpenWriter(Store& store, WriterOptions options = {}) {
    absl::StatusOr<std::unique_ptr<Writer>> writer =
        Writer::Open(store, clock_, options);
    EXPECT_THAT(writer, IsOk());
    return writer.ok() ? *std::move(writer) : nullptr;
  }

  // The commands that build the standard world, as clients would submit
  // them: without sequence or time.
  static std::vector<pb::Command> WorldCommands() {
    core::StateMachine scratch;
    Driver driver(scratch);
    EXPECT_THAT(driver.BuildWorld(), IsOk());
    std::vector<pb::Command> commands = driver.log();
    EXPECT_FALSE(commands.empty());
    for (pb::Command& c : commands) {
      c.clear_sequence();
      c.clear_time();
    }
    return commands;
  }

  void SubmitWorld(Writer& writer) {
    for (const pb::Command& c : WorldCommands()) {
      ASSERT_THAT(writer.Submit(c), IsOk()) << c.ShortDebugString();
    }
  }

  Head HeadOf(Store& store) {
    absl::StatusOr<Head> head = store.ReadHead();
    EXPECT_THAT(head, IsOk());
    return head.ok() ? *head : Head{-1, -1, ""};
  }

  // Request ids of every stored command, in order.
  std::vector<std::string> StoredRequestIds(Store& store) {
    std::vector<std::string> out;
    int64_t after = 0;
    while (true) {
      absl::StatusOr<std::vector<pb::Command>> chunk =
          store.ReadCommands(after, 256);
      EXPECT_THAT(chunk, IsOk());
      if (!chunk.ok() || chunk->empty()) break;
      for (const pb::Command& c : *chunk) out.push_back(c.request_id());
      after = chunk->back().sequence();
    }
    return out;
  }

  // Moves forward by 1 ms whenever it is read, as real time would while the
  // writer works.
  computevoucher::testing::FakeClock clock_{computevoucher::testing::WorldStart(),
                                absl::Milliseconds(1)};
  TempDir temp_;  // destroyed after the members declared below
  std::string root_;
  std::string data_dir_;
};

TEST(CreditCodeHelper, MatchesTheWorldAndTheValidator) {
  EXPECT_EQ(WithCheckCharacter("91330100716105852"), "91330100716105852F");
  EXPECT_EQ(WithCheckCharacter("9144030071526726X"), "9144030071526726XG");
  for (const int n : {0, 1, 7, 49, 799, 123'456'789}) {
    const std::string code = CreditCode(n);
    EXPECT_THAT(NormalizeCreditCode("code", code), IsOk()) << code;
  }
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
  writer.reset();
  store.reset();

  store = OpenStore();
  ASSERT_NE(store, nullptr);
  writer = OpenWriter(*store);
  ASSERT_NE(writer, nullptr);
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

TEST_F(WriterTest, ConcurrentSubmittersAreGroupCommitted) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  constexpr int kTotal = kThreads * kPerThread;
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::unique_ptr<Writer> writer = OpenWriter(*store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
  const WriterStats before = writer->stats();
  const int64_t head_before = HeadOf(*store).command_sequence;

  auto request_id = [](int t, int i) {
    return absl::StrCat("load-", t, "-", i);
  };
  auto is_issue = [](int t, int i) { return (t + i) % 2 == 0; };
  std::vector<absl::StatusOr<core::Outcome>> results(
      kTotal, absl::UnknownError("not answered"));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int n = t * kPerThread + i;
        pb::Command c =
            is_issue(t, i)
                ? IssueCommand(request_id(t, i),
                               absl::StrCat("E-00000", 1 + n % 3), 100 + n)
                : ProviderCommand(request_id(t, i),
                                  absl::StrCat("负载测试算力公司 ", n),
                                  CreditCode(n));
        results[n] = writer->Submit(std::move(c));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::set<std::string> voucher_ids;
  std::set<std::string> provider_ids;
  int issues = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const int n = t * kPerThread + i;
      ASSERT_THAT(results[n], IsOk()) << request_id(t, i);
      if (is_issue(t, i)) {
        ++issues;
        const pb::Voucher& v = ResponseAs<pb::Voucher>(*results[n]);
        EXPECT_EQ(v.face_value_fen(), 100 + n) << request_id(t, i);
        voucher_ids.insert(v.voucher_id());
      } else {
        const pb::Provider& p = ResponseAs<pb::Provider>(*results[n]);
        EXPECT_EQ(p.credit_code(), CreditCode(n)) << request_id(t, i);
        provider_ids.insert(p.provider_id());
      }
    }
  }
  EXPECT_EQ(static_cast<int>(voucher_ids.size()), issues);
  EXPECT_EQ(static_cast<int>(provider_ids.size()), kTotal - issues);

  const WriterStats after = writer->stats();
  EXPECT_EQ(after.commands - before.commands, kTotal);
  EXPECT_EQ(after.rejected, before.rejected);
  EXPECT_EQ(after.store_failures, 0);
  EXPECT_LT(after.batches - before.batches, kTotal)
      << "no two commands shared a transaction";
  RecordProperty("batches", static_cast<int>(after.batches - before.batches));
  EXPECT_EQ(HeadOf(*store).command_sequence, head_before + kTotal);
  const std::string digest = Digest(*writer);

  writer->Stop();
  writer.reset();
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  writer = OpenWriter(*store);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(Digest(*writer), digest);

  // Every command is in the log exactly once.
  std::map<std::string, int> logged;
  for (const std::string& id : StoredRequestIds(*store)) ++logged[id];
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      EXPECT_EQ(logged[request_id(t, i)], 1) << request_id(t, i);
    }
  }
  // ... and its effect is in the state exactly once.
  const std::vector<std::string> vouchers = VoucherIds(*writer);
  EXPECT_EQ(std::set<std::string>(vouchers.begin(), vouchers.end()),
            voucher_ids);
  std::map<std::string, int> codes;
  writer->Read([&codes](const core::StateMachine& s) {
    for (const auto& [id, provider] : s.providers()) {
      ++codes[provider.credit_code()];
    }
    return 0;
  });
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      if (is_issue(t, i)) continue;
      EXPECT_EQ(codes[CreditCode(t * kPerThread + i)], 1) << request_id(t, i);
    }
  }
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
  writer.reset();
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  writer = OpenWriter(*store);
  ASSERT_NE(writer, nullptr);
  ASSERT_OK_AND_ASSIGN(const core::Outcome after_restart,
                       writer->Submit(issue));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      ResponseAs<pb::Voucher>(after_restart), voucher))
      << ResponseAs<pb::Voucher>(after_restart).ShortDebugString();
  EXPECT_EQ(HeadOf(*store).command_sequence, head.command_sequence);
}

TEST_F(WriterTest, StoreFailureAnswersUnavailableAndRebuildsTheState) {
  std::unique_ptr<Store> sqlite = OpenStore();
  ASSERT_NE(sqlite, nullptr);
  FaultyStore store(std::move(sqlite));
  std::unique_ptr<Writer> writer = OpenWriter(store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
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
  std::vector<absl::StatusOr<core::Outcome>> results(
      kThreads, absl::UnknownError("not answered"));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      results[t] = writer->Submit(
          t % 2 == 0
              ? IssueCommand(absl::StrCat("lost-many-", t), "E-000002",
                             1'000 + t)
              : ProviderCommand(absl::StrCat("lost-many-", t),
                                absl::StrCat("失败公司 ", t), CreditCode(t)));
    });
  }
  for (std::thread& thread : threads) thread.join();
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

// Issue 13 (1): with the data directory on a full disk, an allocation id
// was listed for 26 different requests and stored for one. A reader must
// see only what is durable: a read of state whose batch is still being
// committed waits for that commit, and reads again if the commit failed.
TEST_F(WriterTest, ReadersSeeOnlyDurableStateWhileABatchCommitsOrFails) {
  std::unique_ptr<Store> sqlite = OpenStore();
  ASSERT_NE(sqlite, nullptr);
  FaultyStore store(std::move(sqlite));
  std::unique_ptr<Writer> writer = OpenWriter(store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));

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

TEST_F(WriterTest, AQuietWriterIsNoLongerDegradedAMinuteAfterItsLastFailure) {
  std::unique_ptr<Store> sqlite = OpenStore();
  ASSERT_NE(sqlite, nullptr);
  FaultyStore store(std::move(sqlite));
  std::unique_ptr<Writer> writer = OpenWriter(store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
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
    // Both the writer and the store are closed; change one amount.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((data_dir_ + "/scheduler.db").c_str(), &db,
                              SQLITE_OPEN_READWRITE, nullptr),
              SQLITE_OK);
    const int rc =
        sqlite3_exec(db,
                     "UPDATE journal SET amount_fen = amount_fen + 1 "
                     "WHERE seq = (SELECT MAX(seq) FROM journal)",
                     nullptr, nullptr, nullptr);
    EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db);
    EXPECT_EQ(sqlite3_changes(db), 1);
    sqlite3_close(db);
  }
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(Writer::Open(*store, clock_),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(WriterTest, StopAnswersQueuedCommandsThenRefusesNewOnes) {
  std::unique_ptr<Store> sqlite = OpenStore();
  ASSERT_NE(sqlite, nullptr);
  FaultyStore store(std::move(sqlite));
  std::unique_ptr<Writer> writer = OpenWriter(store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
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

TEST_F(WriterTest, StoreFailureWithFailedRebuildServesNoUncommittedState) {
  std::unique_ptr<Store> sqlite = OpenStore();
  ASSERT_NE(sqlite, nullptr);
  FaultyStore store(std::move(sqlite));
  std::unique_ptr<Writer> writer = OpenWriter(store);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
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

TEST_F(WriterTest, TimeNeverRunsBackwardsWhateverTheClockDoes) {
  computevoucher::testing::FakeClock clock(computevoucher::testing::WorldStart());
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
