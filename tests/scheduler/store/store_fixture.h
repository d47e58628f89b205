// What the store tests share: a realistic history to store, and the
// fixture that runs each StoreTest against every implementation of Store
// (store_backend.h), instantiated in store_test.cc.
#ifndef COMPUTEVOUCHER_TESTS_SCHEDULER_STORE_STORE_FIXTURE_H_
#define COMPUTEVOUCHER_TESTS_SCHEDULER_STORE_STORE_FIXTURE_H_

#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "scheduler/store/store.h"
#include "tests/scheduler/store/store_backend.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::store {

MATCHER_P(IsOkAndHolds, matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

// A realistic history: the standard world, then a voucher, an allocation,
// a usage report and a release, at times with sub-second parts so that
// nanoseconds have to survive the store.
struct History {
  std::vector<pb::Command> commands;
  std::vector<pb::JournalEntry> entries;
};

// Sets `out` to the history; fails the test (fatally) when it cannot be made.
void MakeHistory(History* out);

// The history as one batch per command.
std::vector<Batch> PerCommandBatches(const History& history);

// The history as one batch.
Batch WholeBatch(const History& history);

// Usage records as the writer stores them: per command, in acceptance
// order, for two allocations, ending every minute from `base`.
std::vector<Batch> UsageBatches(const History& history, absl::Time base);

template <typename Message>
void ExpectSameMessages(const std::vector<Message>& actual,
                        const std::vector<Message>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    std::string diff;
    google::protobuf::util::MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(expected[i], actual[i]))
        << "element " << i << " differs: " << diff;
  }
}

// Direct access to the database file, to look at and change what the store
// wrote.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    rc_ = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  // The first column of the first row of `sql`, as text ("" if none).
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      if (text != nullptr) out = reinterpret_cast<const char*>(text);
    }
    sqlite3_finalize(stmt);
    return out;
  }
  const char* error() { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

// Runs against the store implementation its parameter names
// (StoreBackendNames()); skips where that one is not available.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(
        ::computevoucher::testing::MakeTempDir("store_test", temp_));
    root_ = temp_.path();
    absl::StatusOr<std::unique_ptr<StoreBackend>> backend =
        MakeStoreBackend(GetParam(), root_);
    if (backend.status().code() == absl::StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << backend.status().message();
    }
    ASSERT_THAT(backend, ::computevoucher::testing::IsOk());
    backend_ = *std::move(backend);
    ASSERT_NO_FATAL_FAILURE(MakeHistory(&history_));
  }
  void TearDown() override { backend_.reset(); }

  std::unique_ptr<Store> OpenOrDie(OpenMode mode = OpenMode::kReadWrite) {
    absl::StatusOr<std::unique_ptr<Store>> store = backend_->Open(mode);
    EXPECT_THAT(store, ::computevoucher::testing::IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  ::computevoucher::testing::TempDir
      temp_;  // destroyed after the members declared below
  std::string root_;
  std::unique_ptr<StoreBackend> backend_;
  History history_;
};

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_TESTS_SCHEDULER_STORE_STORE_FIXTURE_H_
