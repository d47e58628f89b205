// How a batch is kept in a row of `batches`: everything read back as it was
// appended, each usage record stored once (inside the report that carried
// it), and a row changed after it was written refused.
#include "scheduler/store/internal/batch_rows.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/deflate.h"
#include "common/journal_hash.h"
#include "common/sha256.h"
#include "common/time_util.h"
#include "computevoucher/v1/storage.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/store/store_fixture.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::store::internal {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kBase = absl::FromUnixSeconds(1'780'000'000);
constexpr uint64_t kGiB = uint64_t{1} << 30;

pb::UsageRecord Record(const std::string& allocation, int64_t sequence,
                       int64_t gpu_ms) {
  pb::UsageRecord r;
  r.set_allocation_id(allocation);
  r.set_sequence(sequence);
  *r.mutable_start() = ToProto(kBase + absl::Minutes(sequence - 1));
  *r.mutable_end() = ToProto(kBase + absl::Minutes(sequence));
  r.set_gpu_ms(gpu_ms);
  r.set_evidence("slurm job 7 RUNNING");
  return r;
}

pb::ChargedUsage Charged(const pb::UsageRecord& record, absl::Time accepted,
                         int64_t cost) {
  pb::ChargedUsage u;
  *u.mutable_record() = record;
  u.set_cost_fen(cost);
  u.set_subsidy_fen(cost / 2);
  u.set_unsubsidised_gpu_ms(1);
  *u.mutable_accepted_at() = ToProto(accepted);
  return u;
}

// A row after `before`: a usage report of three records of which the
// second repeats the first's sequence with other contents (and was
// refused), a charge for each record accepted, and one record accepted by
// no command of the batch.
class BatchRowsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    before_.id = 3;
    before_.command = 10;
    before_.entry = 20;
    before_.usage = 30;
    before_.accepted_ns = absl::ToUnixNanos(kBase);
    before_.entry_hash = std::string(kSha256Bytes, 'h');

    pb::Command& report = batch_.commands.emplace_back();
    report.set_sequence(11);
    *report.mutable_time() = ToProto(kBase + absl::Hours(1));
    auto& records = *report.mutable_report_usage()->mutable_records();
    *records.Add() = Record("AL-1", 1, 60'000);
    *records.Add() = Record("AL-1", 1, 99'999);
    *records.Add() = Record("AL-2", 1, 30'000);
    pb::Command& tick = batch_.commands.emplace_back();
    tick.set_sequence(12);
    *tick.mutable_time() = ToProto(kBase + absl::Hours(2));
    tick.mutable_tick();

    batch_.usage.push_back(Charged(records[0], kBase + absl::Hours(1), 100));
    // Accepted at a time of its own.
    batch_.usage.push_back(
        Charged(records[2], kBase + absl::Hours(1) + absl::Seconds(1), 50));
    batch_.usage.push_back(
        Charged(Record("AL-3", 5, 10), kBase + absl::Hours(2), 7));

    std::string prev = before_.entry_hash;
    for (int i = 0; i < 3; ++i) {
      pb::JournalEntry& e = batch_.entries.emplace_back();
      e.set_sequence(21 + i);
      e.set_command_sequence(11);
      e.set_kind(pb::ENTRY_KIND_CHARGE);
      e.set_debit_account("provider/PR-1/payable");
      e.set_credit_account("hold/AL-1");
      e.set_amount_fen(10 + i);
      e.set_idempotency_key(absl::StrCat("charge/AL-1/", i));
      *e.mutable_time() = ToProto(kBase + absl::Hours(1));
      e.set_prev_hash(prev);
      e.set_hash(EntryHash(e));
      prev = e.hash();
    }
  }

  RowEnds before_;
  Batch batch_;
};

TEST_F(BatchRowsTest, ARowReadsBackAsItWasAppended) {
  const BatchRow row = MakeRow(before_, batch_);
  EXPECT_EQ(row.end.id, 4);
  EXPECT_EQ(row.end.command, 12);
  EXPECT_EQ(row.end.entry, 23);
  EXPECT_EQ(row.end.usage, 33);
  EXPECT_EQ(row.end.entry_hash, batch_.entries.back().hash());
  EXPECT_EQ(row.end.accepted_ns, absl::ToUnixNanos(kBase + absl::Hours(2)));
  ASSERT_OK_AND_ASSIGN(const Batch read, DecodeRow(row));
  ExpectSameMessages(read.commands, batch_.commands);
  ExpectSameMessages(read.entries, batch_.entries);
  ExpectSameMessages(read.usage, batch_.usage);
}

// Decoding through scratch that holds a larger row parsed before and spare
// entries handed back with other contents (every field set, a memo and a
// usage sequence these entries do not have) reads the row as it was
// appended: nothing of what the scratch held shows through.
TEST_F(BatchRowsTest, ARowDecodedThroughScratchReadsBackAsItWasAppended) {
  DecodeScratch scratch;
  Batch larger = batch_;
  larger.entries.push_back(batch_.entries.back());
  larger.entries.back().set_sequence(24);
  larger.entries.back().set_memo("left over");
  larger.entries.back().set_prev_hash(batch_.entries.back().hash());
  larger.entries.back().set_hash(EntryHash(larger.entries.back()));
  ASSERT_OK_AND_ASSIGN(Batch first,
                       DecodeRow(MakeRow(before_, larger), &scratch));
  ASSERT_EQ(first.entries.size(), 4u);
  for (pb::JournalEntry& e : first.entries) {
    e.set_memo("stale memo");
    e.set_usage_sequence(99);
    e.set_voucher_id("CV-stale");
    scratch.spare_entries.push_back(std::move(e));
  }
  ASSERT_OK_AND_ASSIGN(const Batch read,
                       DecodeRow(MakeRow(before_, batch_), &scratch));
  ExpectSameMessages(read.commands, batch_.commands);
  ExpectSameMessages(read.entries, batch_.entries);
  ExpectSameMessages(read.usage, batch_.usage);
  // Three spares were taken, one is left for the next row.
  EXPECT_EQ(scratch.spare_entries.size(), 1u);
}

TEST_F(BatchRowsTest, AUsageRecordIsStoredOnceInsideItsReport) {
  const BatchRow row = MakeRow(before_, batch_);
  ASSERT_OK_AND_ASSIGN(const std::string bytes, Inflate(row.body, kGiB));
  pb::StoredBatch stored;
  ASSERT_TRUE(stored.ParseFromString(bytes));
  ASSERT_EQ(stored.usage_size(), 3);
  // The accepted one of the two records with sequence 1, not the first
  // record that has its allocation and sequence.
  EXPECT_FALSE(stored.usage(0).has_record());
  EXPECT_EQ(stored.usage(0).record_index(), 0);
  EXPECT_FALSE(stored.usage(0).has_accepted_at());
  EXPECT_FALSE(stored.usage(1).has_record());
  EXPECT_EQ(stored.usage(1).record_index(), 2);
  EXPECT_TRUE(stored.usage(1).has_accepted_at());
  // No command of the batch carries the third: it is kept itself.
  EXPECT_TRUE(stored.usage(2).has_record());
  // Nor are the entries' hashes stored.
  for (const pb::JournalEntry& e : stored.entries()) {
    EXPECT_TRUE(e.hash().empty());
    EXPECT_TRUE(e.prev_hash().empty());
  }
}

// Replay reads a row's commands, then its usage records without the
// records its commands carry (UsageQuery::records): each points at its
// command instead. A read that wants the records after the commands were
// moved out of the row decodes it again.
TEST_F(BatchRowsTest, UsageReadWithoutRecordsPointsAtTheirCommands) {
  const BatchRow row = MakeRow(before_, batch_);
  auto scan = [&](const RowsFrom& from,
                  const std::function<bool(BatchRow)>& fn) {
    const int64_t end = std::string(from.column) == "usage_end" ? row.end.usage
                        : std::string(from.column) == "entry_end"
                            ? row.end.entry
                            : row.end.command;
    if (end > from.after) fn(row);
    return absl::OkStatus();
  };
  std::vector<UsageRow> got;
  auto append = [&got](UsageRow r) {
    got.push_back(std::move(r));
    return true;
  };
  UsageQuery bare;
  bare.records = false;
  for (const bool records : {false, true}) {
    SCOPED_TRACE(records ? "with records" : "without");
    RowReader reader(scan);
    ASSERT_OK_AND_ASSIGN(const std::vector<pb::Command> commands,
                         reader.ReadCommands(10, 100));
    ExpectSameMessages(commands, batch_.commands);
    got.clear();
    ASSERT_THAT(reader.ScanUsage(records ? UsageQuery() : bare, append),
                IsOk());
    ASSERT_EQ(got.size(), 3u);
    if (records) {
      std::vector<pb::ChargedUsage> usage;
      for (const UsageRow& r : got) {
        EXPECT_EQ(r.command, 0);
        usage.push_back(r.usage);
      }
      ExpectSameMessages(usage, batch_.usage);
      continue;
    }
    EXPECT_FALSE(got[0].usage.has_record());
    EXPECT_EQ(got[0].command, 11);
    EXPECT_EQ(got[0].record_index, 0);
    EXPECT_EQ(got[0].usage.cost_fen(), 100);
    EXPECT_FALSE(got[1].usage.has_record());
    EXPECT_EQ(got[1].command, 11);
    EXPECT_EQ(got[1].record_index, 2);
    EXPECT_EQ(got[1].usage.accepted_at().seconds(),
              batch_.usage[1].accepted_at().seconds());
    // Not carried by a command of the row: read with its record.
    EXPECT_EQ(got[2].command, 0);
    ExpectSameMessages<pb::ChargedUsage>({got[2].usage}, {batch_.usage[2]});
  }
}

TEST_F(BatchRowsTest, AnEntryChangedAfterItWasWrittenIsDataLoss) {
  BatchRow row = MakeRow(before_, batch_);
  ASSERT_OK_AND_ASSIGN(const std::string bytes, Inflate(row.body, kGiB));
  pb::StoredBatch stored;
  ASSERT_TRUE(stored.ParseFromString(bytes));
  stored.mutable_entries(1)->set_amount_fen(1'000'000);
  row.body = Deflate(stored.SerializeAsString());
  EXPECT_THAT(DecodeRow(row),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("row 4"),
                             HasSubstr("do not chain to the hash"))));
  // Nor does a row read from another start.
  BatchRow moved = MakeRow(before_, batch_);
  moved.start.entry_hash = std::string(kSha256Bytes, 'x');
  EXPECT_THAT(DecodeRow(moved), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(BatchRowsTest, ARowNotHoldingWhatItsPositionsSayIsDataLoss) {
  BatchRow row = MakeRow(before_, batch_);
  ++row.end.usage;
  EXPECT_THAT(DecodeRow(row), StatusIs(absl::StatusCode::kDataLoss,
                                       HasSubstr("positions do not say")));
  row = MakeRow(before_, batch_);
  row.body[row.body.size() / 2] ^= 0x55;
  EXPECT_THAT(DecodeRow(row), StatusIs(absl::StatusCode::kDataLoss));
  row.body = "short";
  EXPECT_THAT(DecodeRow(row), StatusIs(absl::StatusCode::kDataLoss,
                                       HasSubstr("shorter than its length")));
  // A length no batch has is refused before anything is allocated for it.
  row.body = std::string(8, '\xff') + "x";
  EXPECT_THAT(DecodeRow(row),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("out of range")));
}

}  // namespace
}  // namespace computevoucher::store::internal
