// What the writer's tests share: a store with fault switches, commands
// built the way clients send them, and fixtures that open a writer on a
// fresh SQLite store (WriterTest) or on one with faults to inject, with the
// standard world submitted (FaultyWriterTest).
#ifndef COMPUTEVOUCHER_TESTS_SCHEDULER_ENGINE_WRITER_FIXTURE_H_
#define COMPUTEVOUCHER_TESTS_SCHEDULER_ENGINE_WRITER_FIXTURE_H_

#include <sqlite3.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
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
#include "scheduler/engine/writer.h"
#include "scheduler/store/sqlite_store.h"
#include "scheduler/store/store.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/world.h"

namespace computevoucher::engine {

using store::Batch;
using store::Candidate;
using store::Head;
using store::Leadership;
using store::OpenMode;
using store::OpenSqliteStore;
using store::Store;
using store::UsageQuery;
using store::UsageRow;

// A store around a real one with fault switches: Append and WriteSnapshot
// can be made to fail with Unavailable (storing nothing), Append held at a
// gate until the test opens it, and campaigns lost to another replica.
class FaultyStore final : public Store {
 public:
  explicit FaultyStore(std::unique_ptr<Store> base) : base_(std::move(base)) {}

  void set_fail_appends(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_appends_ = fail;
  }
  void set_fail_snapshot_writes(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_snapshot_writes_ = fail;
  }
  // Campaigns find another replica leading: a leader loses its lease.
  void set_lose_campaigns(bool lose) {
    absl::MutexLock lock(&mu_);
    lose_campaigns_ = lose;
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
  // The most usage records any batch passed to Append carried.
  int64_t most_records_appended() const {
    absl::MutexLock lock(&mu_);
    return most_records_appended_;
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
      int64_t records = 0;
      for (const pb::Command& c : batch.commands) {
        records += c.report_usage().records_size();
      }
      most_records_appended_ = std::max(most_records_appended_, records);
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
  int64_t DefaultBatchRecords() const override {
    return base_->DefaultBatchRecords();
  }
  absl::Status WriteSnapshot(const store::Snapshot& snapshot,
                             int keep) override {
    {
      absl::MutexLock lock(&mu_);
      if (fail_snapshot_writes_) {
        return absl::UnavailableError("injected: snapshot disk unplugged");
      }
    }
    return base_->WriteSnapshot(snapshot, keep);
  }
  absl::StatusOr<std::vector<int64_t>> ListSnapshots() override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ListSnapshots();
  }
  absl::StatusOr<store::Snapshot> ReadSnapshot(int64_t position) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ReadSnapshot(position);
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
  absl::StatusOr<std::vector<pb::Allocation>> ReadRetired(
      const store::RetiredQuery& query) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ReadRetired(query);
  }
  absl::StatusOr<std::vector<pb::Voucher>> ReadRetiredVouchers(
      const store::RetiredVoucherQuery& query) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ReadRetiredVouchers(query);
  }
  absl::StatusOr<std::vector<pb::AuditEvent>> ReadAudit(
      const store::AuditQuery& query) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ReadAudit(query);
  }
  absl::StatusOr<std::optional<store::Horizon>> ReadHorizon() override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ReadHorizon();
  }
  absl::StatusOr<store::BatchEnd> BatchEndAtOrBefore(int64_t command) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->BatchEndAtOrBefore(command);
  }
  absl::Status DropArchived(const store::Horizon& horizon,
                            const std::vector<store::UsageDay>& days) override {
    return base_->DropArchived(horizon, days);
  }
  absl::Status ScanUsageDays(
      const store::UsageQuery& query,
      const std::function<void(const store::UsageDay&)>& fn) override {
    RETURN_IF_ERROR(ReadFault());
    return base_->ScanUsageDays(query, fn);
  }
  absl::StatusOr<Leadership> Campaign(const Candidate& candidate,
                                      absl::Duration lease) override {
    {
      absl::MutexLock lock(&mu_);
      if (lose_campaigns_) {
        Leadership other;
        other.leader_id = "another replica";
        return other;
      }
    }
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
  bool lose_campaigns_ ABSL_GUARDED_BY(mu_) = false;
  bool fail_snapshot_writes_ ABSL_GUARDED_BY(mu_) = false;
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  int appends_entered_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t most_records_appended_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> failed_request_ids_ ABSL_GUARDED_BY(mu_);
};

// `first17` completed with its GB 32100-2015 check character.
std::string WithCheckCharacter(const std::string& first17);

// A valid credit code, distinct for each n (0 <= n < 10^9), different from
// the world's.
std::string CreditCode(int n);

pb::Command IssueCommand(const std::string& request_id,
                         const std::string& enterprise_id,
                         int64_t face_value_fen);
pb::Command ProviderCommand(const std::string& request_id,
                            const std::string& name, const std::string& code);
pb::Command AllocateCommand(const std::string& request_id,
                            const std::string& enterprise_id,
                            const std::string& voucher_id);
pb::Command UsageCommand(const std::string& request_id,
                         const pb::Allocation& allocation, int64_t sequence,
                         absl::Time start, absl::Time end, int64_t gpu_ms);
pb::Command ClusterStateCommand(const std::string& request_id,
                                const std::string& cluster_id,
                                pb::ClusterState state);

template <typename T>
const T& ResponseAs(const core::Outcome& outcome) {
  return *static_cast<const T*>(outcome.response.get());
}

// The state's digest, in hex for readable failures.
std::string Digest(const Writer& writer);
std::string LedgerHead(const Writer& writer);
std::vector<std::string> VoucherIds(const Writer& writer);

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(
        ::computevoucher::testing::MakeTempDir("writer_test", temp_));
    root_ = temp_.path();
    data_dir_ = root_ + "/data";
  }

  std::unique_ptr<Store> OpenStore() {
    absl::StatusOr<std::unique_ptr<Store>> store =
        OpenSqliteStore(data_dir_, OpenMode::kReadWrite);
    EXPECT_THAT(store, ::computevoucher::testing::IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::unique_ptr<Writer> OpenWriter(Store& store, WriterOptions options = {}) {
    absl::StatusOr<std::unique_ptr<Writer>> writer =
        Writer::Open(store, clock_, options);
    EXPECT_THAT(writer, ::computevoucher::testing::IsOk());
    return writer.ok() ? *std::move(writer) : nullptr;
  }

  // Closes `writer` and `store`, as a stopped scheduler would, and opens
  // both again on the same data.
  void Restart(std::unique_ptr<Store>& store, std::unique_ptr<Writer>& writer) {
    writer.reset();
    store.reset();
    store = OpenStore();
    ASSERT_NE(store, nullptr);
    writer = OpenWriter(*store);
    ASSERT_NE(writer, nullptr);
  }

  // The commands that build the standard world, as clients would submit
  // them: without sequence or time.
  static std::vector<pb::Command> WorldCommands() {
    core::StateMachine scratch;
    ::computevoucher::testing::Driver driver(scratch);
    EXPECT_THAT(driver.BuildWorld(), ::computevoucher::testing::IsOk());
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
      ASSERT_THAT(writer.Submit(c), ::computevoucher::testing::IsOk())
          << c.ShortDebugString();
    }
  }

  Head HeadOf(Store& store) {
    absl::StatusOr<Head> head = store.ReadHead();
    EXPECT_THAT(head, ::computevoucher::testing::IsOk());
    return head.ok() ? *head : Head{-1, -1, ""};
  }

  // Request ids of every stored command, in order.
  std::vector<std::string> StoredRequestIds(Store& store) {
    std::vector<std::string> out;
    int64_t after = 0;
    while (true) {
      absl::StatusOr<std::vector<pb::Command>> chunk =
          store.ReadCommands(after, 256);
      EXPECT_THAT(chunk, ::computevoucher::testing::IsOk());
      if (!chunk.ok() || chunk->empty()) break;
      for (const pb::Command& c : *chunk) out.push_back(c.request_id());
      after = chunk->back().sequence();
    }
    return out;
  }

  // Moves forward by 1 ms whenever it is read, as real time would while the
  // writer works.
  computevoucher::testing::FakeClock clock_{
      computevoucher::testing::WorldStart(), absl::Milliseconds(1)};
  ::computevoucher::testing::TempDir
      temp_;  // destroyed after the members declared below
  std::string root_;
  std::string data_dir_;
};

// A writer over a FaultyStore, with the standard world submitted. Tests
// switch the store's faults and reopen `writer_` over `store_`.
class FaultyWriterTest : public WriterTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(WriterTest::SetUp());
    std::unique_ptr<Store> sqlite = OpenStore();
    ASSERT_NE(sqlite, nullptr);
    store_ = std::make_unique<FaultyStore>(std::move(sqlite));
    writer_ = OpenWriter(*store_);
    ASSERT_NE(writer_, nullptr);
    ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer_));
  }

  std::unique_ptr<FaultyStore> store_;
  std::unique_ptr<Writer> writer_;  // closed before the store
};

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_TESTS_SCHEDULER_ENGINE_WRITER_FIXTURE_H_
