// The usage index of every Store implementation (a StoreTest, instantiated
// in store_test.cc): usage records read back by period, allocation and page.
#include <cstdint>
#include <memory>
#include <optional>
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
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;

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

// After the batches up to `cut` were dropped: what follows reads on, from
// the first command, entry and usage record after it; only the snapshot at
// `snapshot` is left; the day sums of A-even on `day` add up.
void ExpectReadsAfterTheHorizon(Store& store, const BatchEnd& cut,
                                int64_t last_command, int64_t snapshot,
                                absl::Time day) {
  // What follows reads on, its entries chained from the horizon's hash.
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Command> commands,
                       store.ReadCommands(0, 1000));
  ASSERT_FALSE(commands.empty());
  EXPECT_EQ(commands.front().sequence(), cut.command + 1);
  EXPECT_EQ(commands.back().sequence(), last_command);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::JournalEntry> entries,
                       store.ReadJournal(cut.entry, 1000));
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.front().prev_hash(), cut.entry_hash);
  UsageQuery all;
  ASSERT_OK_AND_ASSIGN(const std::vector<UsageRow> rows, store.ReadUsage(all));
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.front().position, cut.usage + 1);
  EXPECT_THAT(store.ListSnapshots(),
              IsOkAndHolds(::testing::ElementsAre(snapshot)));
  EXPECT_EQ(store.BatchEndAtOrBefore(cut.command).status().code(),
            absl::StatusCode::kNotFound);
  // Day sums of one allocation, for days starting in the period.
  UsageQuery even;
  even.allocation_ids = absl::flat_hash_set<std::string>{"A-even"};
  even.period_start = day;
  even.period_end = day + absl::Hours(24);
  std::vector<UsageDay> got;
  ASSERT_THAT(store.ScanUsageDays(
                  even, [&got](const UsageDay& d) { got.push_back(d); }),
              IsOk());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].allocation_id, "A-even");
  EXPECT_EQ(got[0].day, day);
  EXPECT_EQ(got[0].records, 2);
  EXPECT_EQ(got[0].gpu_ms, 120'000);
  EXPECT_EQ(got[0].cost_fen, 300);
  EXPECT_EQ(got[0].subsidy_fen, 200);
}

// Archiving drops whole batches from the oldest on: what follows still
// reads and chains from the horizon, and the archived usage answers as day
// sums (ArchivedHistory).
TEST_P(StoreTest, ArchivedBatchesAreDroppedKeepingTheirHorizonAndDaySums) {
  const absl::Time base =
      computevoucher::testing::WorldStart() + absl::Hours(1);
  const std::vector<Batch> batches = UsageBatches(history_, base);
  ASSERT_GE(batches.size(), 6u);
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const Batch& b : batches) ASSERT_THAT(store->Append(b), IsOk());
  EXPECT_THAT(store->ReadHorizon(), IsOkAndHolds(::testing::Eq(std::nullopt)));

  // The cut: the end of the batch holding command `through`.
  const size_t kept_from = batches.size() / 2;
  BatchEnd want;
  for (size_t i = 0; i < kept_from; ++i) {
    want.command = batches[i].commands.back().sequence();
    want.entry += static_cast<int64_t>(batches[i].entries.size());
    if (!batches[i].entries.empty())
      want.entry_hash = batches[i].entries.back().hash();
    want.usage += static_cast<int64_t>(batches[i].usage.size());
  }
  ASSERT_OK_AND_ASSIGN(const BatchEnd cut,
                       store->BatchEndAtOrBefore(want.command));
  EXPECT_EQ(cut.command, want.command);
  EXPECT_EQ(cut.entry, want.entry);
  EXPECT_EQ(cut.usage, want.usage);
  EXPECT_EQ(cut.entry_hash, want.entry_hash);

  const int64_t last_command = batches.back().commands.back().sequence();
  const Snapshot before{want.command - 1, "old", "d"};
  const Snapshot after{want.command + 1, "new", "d"};
  ASSERT_THAT(store->WriteSnapshot(before, 5), IsOk());
  ASSERT_THAT(store->WriteSnapshot(after, 5), IsOk());

  const absl::Time day = StartOfDay(absl::ToCivilDay(base, ShanghaiZone()));
  // A-even's day comes in two parts (as from two archives): they add up.
  const std::vector<UsageDay> days = {
      {"A-even", day, 1, 60'000, 0, 100, 100},
      {"A-even", day, 1, 60'000, 0, 200, 100},
      {"A-odd", day, 1, 60'000, 1'000, 100, 50},
      {"A-even", day - absl::Hours(24), 1, 1, 0, 1, 1},
  };
  Horizon horizon{cut, day, std::string(32, 'm')};
  // Refused whole: the last batch, and an end no batch has.
  BatchEnd last = cut;
  ASSERT_OK_AND_ASSIGN(last, store->BatchEndAtOrBefore(last_command));
  EXPECT_THAT(
      store->DropArchived(Horizon{last, day, horizon.manifest_sha256}, days),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("last one")));
  Horizon wrong = horizon;
  wrong.end.entry_hash = std::string(32, 'x');
  EXPECT_THAT(
      store->DropArchived(wrong, days),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not stored")));
  EXPECT_THAT(store->ReadHorizon(), IsOkAndHolds(::testing::Eq(std::nullopt)));

  ASSERT_THAT(store->DropArchived(horizon, days), IsOk());
  for (int reopened = 0; reopened < 2; ++reopened) {
    SCOPED_TRACE(reopened ? "reopened" : "as dropped");
    ASSERT_OK_AND_ASSIGN(const std::optional<Horizon> read,
                         store->ReadHorizon());
    ASSERT_TRUE(read.has_value());
    EXPECT_EQ(read->end.command, cut.command);
    EXPECT_EQ(read->end.entry_hash, cut.entry_hash);
    EXPECT_EQ(read->before, day);
    EXPECT_EQ(read->manifest_sha256, horizon.manifest_sha256);
    ExpectReadsAfterTheHorizon(*store, cut, last_command, after.position, day);
    store.reset();
    store = OpenOrDie();
    ASSERT_NE(store, nullptr);
  }
  // Appending goes on after the head.
  Batch next;
  pb::Command& c = next.commands.emplace_back(batches.back().commands.back());
  c.set_sequence(last_command + 1);
  ASSERT_THAT(store->Append(next), IsOk());
  // Dropping the same range twice finds it gone.
  EXPECT_THAT(
      store->DropArchived(horizon, days),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not stored")));
}

}  // namespace
}  // namespace computevoucher::store
