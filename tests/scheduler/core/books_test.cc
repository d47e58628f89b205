#include "scheduler/core/books.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/ledger.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;

class BooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    books_.set_now(absl::FromUnixSeconds(1'700'000'000));
    books_.set_command_sequence(7);
    pb::JournalEntry fund =
        Entry(pb::ENTRY_KIND_FUND, ProgramBudgetAccount("P-1"),
              ProgramSourceAccount("P-1"), 1000, "fund/P-1");
    fund.set_program_id("P-1");
    ASSERT_THAT(books_.Post(std::move(fund)), IsOk());
    voucher_.set_voucher_id("CV-1");
    allocation_.set_allocation_id("AL-1");
    allocation_.set_voucher_id("CV-1");
    allocation_.set_program_id("P-1");
    allocation_.set_provider_id("PR-1");
  }

  absl::Status Issue(int64_t amount) {
    pb::JournalEntry issue =
        Entry(pb::ENTRY_KIND_ISSUE, VoucherAccount("CV-1"),
              ProgramBudgetAccount("P-1"), amount, "issue/CV-1");
    issue.set_voucher_id("CV-1");
    issue.set_program_id("P-1");
    return books_.Post(std::move(issue), &voucher_);
  }

  Books books_;
  pb::Voucher voucher_;
  pb::Allocation allocation_;
};

TEST_F(BooksTest, PostKeepsTheVoucherAllocationAndProgramSums) {
  ASSERT_THAT(Issue(300), IsOk());
  ASSERT_THAT(
      books_.Post(AllocationEntry(pb::ENTRY_KIND_HOLD, HoldAccount("AL-1"),
                                  VoucherAccount("CV-1"), 100, "hold/AL-1",
                                  allocation_),
                  &voucher_, &allocation_),
      IsOk());
  ASSERT_THAT(
      books_.Post(AllocationEntry(pb::ENTRY_KIND_CHARGE, PayableAccount("PR-1"),
                                  HoldAccount("AL-1"), 40, "charge/AL-1/1",
                                  allocation_),
                  &voucher_, &allocation_),
      IsOk());
  EXPECT_EQ(voucher_.face_value_fen(), 300);
  EXPECT_EQ(voucher_.held_fen(), 60);
  EXPECT_EQ(voucher_.charged_fen(), 40);
  EXPECT_EQ(allocation_.held_fen(), 60);
  EXPECT_EQ(allocation_.charged_fen(), 40);
  const ProgramTotals totals = books_.Totals("P-1");
  EXPECT_EQ(totals.issued_fen, 300);
  EXPECT_EQ(totals.held_fen, 60);
  EXPECT_EQ(totals.charged_fen, 40);
  EXPECT_EQ(books_.Balance(VoucherAccount("CV-1")), 200);
  EXPECT_EQ(books_.Balance(PayableAccount("PR-1")), 40);
  // Every entry carries the command's time and sequence.
  for (const pb::JournalEntry& e : books_.ledger().TakePosted())
    EXPECT_EQ(e.command_sequence(), 7) << e.idempotency_key();
}

TEST_F(BooksTest, AdjustmentDirectionDecidesTheFaceValue) {
  ASSERT_THAT(Issue(300), IsOk());
  pb::JournalEntry down =
      Entry(pb::ENTRY_KIND_ADJUST, ProgramBudgetAccount("P-1"),
            VoucherAccount("CV-1"), 50, "adjust/CV-1/1");
  down.set_voucher_id("CV-1");
  down.set_program_id("P-1");
  ASSERT_THAT(books_.Post(std::move(down), &voucher_), IsOk());
  EXPECT_EQ(voucher_.face_value_fen(), 250);
  EXPECT_EQ(books_.Totals("P-1").issued_fen, 250);
}

TEST_F(BooksTest, RefusesAnEntryWhoseRecordIsMissingOrOther) {
  pb::JournalEntry issue = Entry(pb::ENTRY_KIND_ISSUE, VoucherAccount("CV-1"),
                                 ProgramBudgetAccount("P-1"), 10, "issue/CV-1");
  issue.set_voucher_id("CV-1");
  EXPECT_THAT(books_.Post(pb::JournalEntry(issue)),
              StatusIs(absl::StatusCode::kInternal));
  pb::Voucher other;
  other.set_voucher_id("CV-2");
  EXPECT_THAT(books_.Post(pb::JournalEntry(issue), &other),
              StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(books_.ledger().last_sequence(), 1);
  EXPECT_EQ(other.face_value_fen(), 0);
}

TEST_F(BooksTest, AnEntryTheLedgerRefusesChangesNoSum) {
  EXPECT_THAT(Issue(1001), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(voucher_.face_value_fen(), 0);
  EXPECT_EQ(books_.Totals("P-1").issued_fen, 0);
  EXPECT_EQ(books_.Totals("P-unknown").issued_fen, 0);
}

}  // namespace
}  // namespace computevoucher::core
