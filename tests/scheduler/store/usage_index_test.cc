// The usage index of every Store implementation (a StoreTest, instantiated
// in store_test.cc): usage records read back by period, allocation and page.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/store/store.h"
#include "tests/scheduler/store/store_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::store {
namespace {

using ::computevoucher::testing::IsOk;

TEST_P(StoreTest, UsageIsReadInAcceptanceOrderByPeriodAllocationAndPage) {
  const absl::Time base =
      computevoucher::testing::WorldStart() + absl::Hours(1);
  const std::vector<Batch> batches = UsageBatches(history_, base);
  std::vector<pb::ChargedUsage> all;
  for (const Batch& b : batches) {
    for (const pb::ChargedUsage& u : b.usage) all.push_back(u);
  }
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const Batch& b : batches) ASSERT_THAT(store->Append(b), IsOk());

  // Everything, a page at a time; positions continue across pages.
  std::vector<pb::ChargedUsage> paged;
  UsageQuery q;
  q.limit = 3;
  for (int reads = 0; reads < 1000; ++reads) {
    ASSERT_OK_AND_ASSIGN(const std::vector<UsageRow> page, store->ReadUsage(q));
    if (page.empty()) break;
    for (const UsageRow& row : page) {
      EXPECT_EQ(row.position, q.after + 1);
      q.after = row.position;
      paged.push_back(row.usage);
    }
  }
  ExpectSameMessages(paged, all);

  // One allocation, ending in [base + 4 min, base + 9 min).
  UsageQuery period;
  period.allocation_ids = absl::flat_hash_set<std::string>{"A-odd"};
  period.period_start = base + absl::Minutes(4);
  period.period_end = base + absl::Minutes(9);
  std::vector<pb::ChargedUsage> want;
  for (const pb::ChargedUsage& u : all) {
    const int64_t minute =
        (u.record().end().seconds() - absl::ToUnixSeconds(base)) / 60;
    if (u.record().allocation_id() == "A-odd" && minute >= 4 && minute < 9) {
      want.push_back(u);
    }
  }
  ASSERT_EQ(want.size(), 2u);
  ASSERT_OK_AND_ASSIGN(const std::vector<UsageRow> rows,
                       store->ReadUsage(period));
  std::vector<pb::ChargedUsage> got;
  for (const UsageRow& row : rows) got.push_back(row.usage);
  ExpectSameMessages(got, want);

  // The scan sees the same rows and names the head they are as of.
  std::vector<pb::ChargedUsage> scanned;
  ASSERT_OK_AND_ASSIGN(
      const Head head,
      store->ScanUsage(period, [&scanned](const pb::ChargedUsage& u) {
        scanned.push_back(u);
      }));
  ExpectSameMessages(scanned, want);
  EXPECT_EQ(head.command_sequence, history_.commands.back().sequence());
  EXPECT_EQ(head.journal_sequence, history_.entries.back().sequence());
  EXPECT_EQ(head.journal_hash, history_.entries.back().hash());

  // A reopened store numbers new records after the old ones.
  store.reset();
  store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  Batch more;
  more.commands.push_back(history_.commands.back());
  more.commands.back().set_sequence(history_.commands.back().sequence() + 1);
  more.usage.push_back(all.back());
  ASSERT_THAT(store->Append(more), IsOk());
  UsageQuery last;
  last.after = static_cast<int64_t>(all.size());
  ASSERT_OK_AND_ASSIGN(const std::vector<UsageRow> tail,
                       store->ReadUsage(last));
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].position, static_cast<int64_t>(all.size()) + 1);
}

// The caller's clock-skew bound lets the store skip records accepted long
// before the period; without one every record is considered.
TEST_P(StoreTest, AUsageQuerySkipsWhatWasAcceptedBeforeItsSkewBound) {
  const absl::Time base =
      computevoucher::testing::WorldStart() + absl::Hours(1);
  std::vector<Batch> batches = UsageBatches(history_, base);
  ASSERT_GE(batches.size(), 11u);
  // Accepted at minute 1 (among the first rows) but claiming to end at
  // minute 20: an agent clock 19 minutes fast.
  pb::UsageRecord& fast = *batches[0].usage[1].mutable_record();
  *fast.mutable_start() = ToProto(base + absl::Minutes(19));
  *fast.mutable_end() = ToProto(base + absl::Minutes(20));
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const Batch& b : batches) ASSERT_THAT(store->Append(b), IsOk());

  UsageQuery period;
  period.allocation_ids = absl::flat_hash_set<std::string>{"A-odd"};
  period.period_start = base + absl::Minutes(19);
  period.period_end = base + absl::Minutes(21);
  auto sequences = [&] {
    std::vector<int64_t> out;
    absl::StatusOr<std::vector<UsageRow>> rows = store->ReadUsage(period);
    EXPECT_THAT(rows, IsOk());
    if (rows.ok()) {
      for (const UsageRow& row : *rows) {
        out.push_back(row.usage.record().sequence());
      }
    }
    return out;
  };
  // No bound: the fast record (sequence 2) and the one ending at minute 19.
  EXPECT_THAT(sequences(), ::testing::ElementsAre(2, 20));
  period.end_after_accept = absl::Minutes(5);
  EXPECT_THAT(sequences(), ::testing::ElementsAre(20));
}

}  // namespace
}  // namespace computevoucher::store
