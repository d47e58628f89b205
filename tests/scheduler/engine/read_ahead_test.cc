#include "scheduler/engine/read_ahead.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::engine {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;

// An in-memory log of numbered commands, entries and usage records that
// counts its reads and can fail one.
class Source final : public store::CommandLog, public store::UsageIndex {
 public:
  explicit Source(int64_t count) { Grow(count); }

  // Stores items up to number `count`.
  void Grow(int64_t count) {
    absl::MutexLock lock(&mu_);
    count_ = count;
  }
  // The next read of any kind after `after` fails, once.
  void FailAfter(int64_t after) {
    absl::MutexLock lock(&mu_);
    fail_after_ = after;
  }
  int reads() const {
    absl::MutexLock lock(&mu_);
    return reads_;
  }
  int direct_usage_reads() const {
    absl::MutexLock lock(&mu_);
    return direct_usage_reads_;
  }
  // The entries handed back, and the thread that handed back the last.
  int64_t recycled() const {
    absl::MutexLock lock(&mu_);
    return recycled_;
  }
  std::thread::id recycled_on() const {
    absl::MutexLock lock(&mu_);
    return recycled_on_;
  }
  void Recycle(std::vector<pb::JournalEntry> entries) override {
    absl::MutexLock lock(&mu_);
    recycled_ += static_cast<int64_t>(entries.size());
    recycled_on_ = std::this_thread::get_id();
  }

  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                        int limit) override {
    return Read<pb::Command>(
        after, limit, [](pb::Command& c, int64_t n) { c.set_sequence(n); });
  }
  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    return Read<pb::JournalEntry>(
        after, limit,
        [](pb::JournalEntry& e, int64_t n) { e.set_sequence(n); });
  }
  absl::StatusOr<std::vector<store::UsageRow>> ReadUsage(
      const store::UsageQuery& query) override {
    if (query.allocation_ids || query.records) {
      absl::MutexLock lock(&mu_);
      ++direct_usage_reads_;
      return std::vector<store::UsageRow>();
    }
    return Read<store::UsageRow>(
        query.after, query.limit,
        [](store::UsageRow& r, int64_t n) { r.position = n; });
  }

  absl::Status Append(const store::Batch&) override {
    return absl::UnimplementedError("read only");
  }
  absl::StatusOr<store::Head> ReadHead() override { return store::Head(); }
  absl::Status WriteSnapshot(const store::Snapshot&, int) override {
    return absl::UnimplementedError("read only");
  }
  absl::StatusOr<std::vector<int64_t>> ListSnapshots() override {
    return std::vector<int64_t>();
  }
  absl::StatusOr<store::Snapshot> ReadSnapshot(int64_t) override {
    return absl::NotFoundError("none");
  }
  absl::StatusOr<store::Head> ScanUsage(
      const store::UsageQuery&,
      const std::function<void(const pb::ChargedUsage&)>&) override {
    return store::Head();
  }

 private:
  template <typename Item, typename Number>
  absl::StatusOr<std::vector<Item>> Read(int64_t after, int limit,
                                         Number number) {
    absl::MutexLock lock(&mu_);
    ++reads_;
    if (after == fail_after_) {
      fail_after_ = -1;
      return absl::UnavailableError("the source failed");
    }
    std::vector<Item> out;
    for (int64_t n = after + 1; n <= count_ && out.size() < size_t(limit); ++n)
      number(out.emplace_back(), n);
    return out;
  }

  mutable absl::Mutex mu_;
  int64_t count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fail_after_ ABSL_GUARDED_BY(mu_) = -1;
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
  int direct_usage_reads_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t recycled_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread::id recycled_on_ ABSL_GUARDED_BY(mu_);
};

// The numbers of `items`.
std::vector<int64_t> Numbers(const std::vector<pb::Command>& items) {
  std::vector<int64_t> out;
  for (const pb::Command& c : items) out.push_back(c.sequence());
  return out;
}
std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> out;
  for (int64_t n = first; n <= last; ++n) out.push_back(n);
  return out;
}

// Reads through `ahead` `limit` commands after `after`, which must be those
// numbered first..last (none when last < first).
void ExpectCommands(ReadAhead& ahead, int64_t after, int limit, int64_t first,
                    int64_t last) {
  absl::StatusOr<std::vector<pb::Command>> read =
      ahead.ReadCommands(after, limit);
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_EQ(Numbers(*read), Range(first, last)) << "after " << after;
}

// Polls `condition` for up to 30 s.
bool Eventually(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

TEST(ReadAheadTest, ReadsTheNextChunksBeforeTheyAreAskedFor) {
  Source source(1000);
  ReadAhead ahead(source, source);
  ExpectCommands(ahead, 0, 100, 1, 100);
  // The first read, and two chunks ahead of it.
  EXPECT_TRUE(Eventually([&] { return source.reads() == 3; }));
  for (int64_t after = 100; after < 1000; after += 100) {
    ExpectCommands(ahead, after, 100, after + 1, after + 100);
  }
  // Entries and usage records as well, each kind on its own.
  ASSERT_OK_AND_ASSIGN(std::vector<pb::JournalEntry> entries,
                       ahead.ReadJournal(990, 100));
  ASSERT_EQ(entries.size(), 10u);
  EXPECT_EQ(entries.back().sequence(), 1000);
  store::UsageQuery query;  // as replay reads them
  query.after = 400;
  query.limit = 300;
  query.records = false;
  ASSERT_OK_AND_ASSIGN(std::vector<store::UsageRow> rows,
                       ahead.ReadUsage(query));
  ASSERT_EQ(rows.size(), 300u);
  EXPECT_EQ(rows.front().position, 401);
  EXPECT_EQ(rows.back().position, 700);
  query.after = 700;
  ASSERT_OK_AND_ASSIGN(rows, ahead.ReadUsage(query));
  ASSERT_EQ(rows.size(), 300u);
  EXPECT_EQ(rows.back().position, 1000);
}

TEST(ReadAheadTest, AReadElsewhereOrOfAnotherSizeStartsOver) {
  Source source(1000);
  ReadAhead ahead(source, source);
  ExpectCommands(ahead, 0, 100, 1, 100);
  ExpectCommands(ahead, 500, 100, 501, 600);
  ExpectCommands(ahead, 600, 50, 601, 650);
  ExpectCommands(ahead, 650, 50, 651, 700);
  ExpectCommands(ahead, 10, 5, 11, 15);
}

TEST(ReadAheadTest, WhatIsStoredAfterTheEndIsReadToo) {
  Source source(150);
  ReadAhead ahead(source, source);
  ExpectCommands(ahead, 0, 100, 1, 100);
  ExpectCommands(ahead, 100, 100, 101, 150);
  ExpectCommands(ahead, 150, 100, 151, 150);
  source.Grow(160);
  ExpectCommands(ahead, 150, 100, 151, 160);
}

TEST(ReadAheadTest, AFailedReadReachesTheCallerAndTheNextCallReadsAgain) {
  Source source(1000);
  source.FailAfter(100);
  ReadAhead ahead(source, source);
  ExpectCommands(ahead, 0, 100, 1, 100);
  EXPECT_THAT(ahead.ReadCommands(100, 100).status(),
              StatusIs(absl::StatusCode::kUnavailable));
  ExpectCommands(ahead, 100, 100, 101, 200);
}

// Only replay's reads of usage records (in order, without the records the
// commands carry) are read ahead.
TEST(ReadAheadTest, AnyOtherUsageReadGoesToTheSource) {
  Source source(10);
  ReadAhead ahead(source, source);
  store::UsageQuery query;
  query.records = false;
  query.allocation_ids.emplace();
  query.allocation_ids->insert("AL-00000001");
  ASSERT_THAT(ahead.ReadUsage(query).status(), IsOk());
  EXPECT_EQ(source.direct_usage_reads(), 1);
  ASSERT_THAT(ahead.ReadUsage(store::UsageQuery()).status(), IsOk());
  EXPECT_EQ(source.direct_usage_reads(), 2);
}

TEST(ReadAheadTest, DisposedItemsAreDestroyedOnItsThread) {
  // Records the thread it is destroyed on.
  struct Item {
    std::shared_ptr<std::atomic<std::thread::id>> destroyed_on;
    ~Item() {
      if (destroyed_on) destroyed_on->store(std::this_thread::get_id());
    }
  };
  auto destroyed_on = std::make_shared<std::atomic<std::thread::id>>();
  {
    Source source(0);
    ReadAhead ahead(source, source);
    std::vector<Item> items(1);
    items[0].destroyed_on = destroyed_on;
    ahead.Dispose(std::move(items));
    EXPECT_TRUE(
        Eventually([&] { return destroyed_on->load() != std::thread::id(); }));
  }
  EXPECT_NE(destroyed_on->load(), std::this_thread::get_id());
}

// Journal entries disposed of go back to the log they were read from, on
// the thread, for it to decode later entries into.
TEST(ReadAheadTest, DisposedEntriesGoBackToTheLogOnItsThread) {
  Source source(0);
  ReadAhead ahead(source, source);
  ahead.Dispose(std::vector<pb::JournalEntry>(3));
  ahead.Recycle(std::vector<pb::JournalEntry>(2));
  EXPECT_TRUE(Eventually([&] { return source.recycled() == 5; }));
  EXPECT_NE(source.recycled_on(), std::this_thread::get_id());
}

}  // namespace
}  // namespace computevoucher::engine
