// Retired allocations and vouchers through the API (issue 15, item 2): once
// an ended allocation or voucher leaves the scheduler's memory, every reader
// still answers it from the store, as before and after a restart, and late
// usage for an allocation is refused.
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/scheduler/api/history_fixture.h"

namespace computevoucher::testing {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using RetirementApiTest = HistoryApiTest;

TEST_F(RetirementApiTest, ARetiredAllocationIsStillReadEverywhere) {
  const absl::Time from = clock_.Now();
  const pb::Allocation retiring = Allocate("910B");  // on hz-a
  const pb::Allocation staying = Allocate("910B");
  const std::string id = retiring.allocation_id();
  const absl::Time t0 = *FromProto("assigned_at", retiring.assigned_at());
  clock_.Advance(absl::Minutes(10));
  ASSERT_EQ(ReportOne(id, 1, t0, t0 + absl::Minutes(10)).result(),
            pb::USAGE_RESULT_ACCEPTED);
  pb::ReleaseAllocationRequest release;
  release.set_request_id(NextRequestId());
  release.set_allocation_id(id);
  pb::Allocation released;
  ASSERT_TRUE(
      enterprise_->ReleaseAllocation(As(e3_token_).get(), release, &released)
          .ok());
  clock_.Advance(absl::Seconds(301));
  BeatAndTick();  // the hold goes back after the grace period
  pb::Allocation ended;
  ASSERT_TRUE(Get(e3_token_, id, &ended).ok());
  ASSERT_EQ(ended.held_fen(), 0);
  ASSERT_GT(ended.charged_fen(), 0);
  const absl::Time until = clock_.Now() + absl::Hours(24);
  const pb::Statement statement = Statement(from, until);
  ASSERT_EQ(statement.lines_size(), 1);
  const pb::Settlement settlement = Settlement(from, until);
  ASSERT_GT(settlement.total_subsidy_fen(), 0);

  clock_.Advance(absl::Seconds(kRetainS));
  const absl::Time retired_at = clock_.Now();
  BeatAndTick();
  // Retired: late usage is refused, naming why.
  const pb::UsageAck late =
      ReportOne(id, 2, t0 + absl::Minutes(10), t0 + absl::Minutes(11));
  EXPECT_EQ(late.result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(late.reason(), HasSubstr("retired"));

  for (int restart = 0; restart < 2; ++restart) {
    SCOPED_TRACE(restart == 0 ? "retired" : "retired, then restarted");
    pb::Allocation got;
    grpc::Status s = Get(e3_token_, id, &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
    // As it was, and when it was retired.
    EXPECT_EQ(got.retired_at().seconds(), absl::ToUnixSeconds(retired_at));
    got.clear_retired_at();
    EXPECT_TRUE(MessageDifferencer::Equals(got, ended))
        << got.ShortDebugString() << "\nvs\n"
        << ended.ShortDebugString();
    // Another enterprise's is missing, as before.
    EXPECT_EQ(Get(e1_token_, id, &got).error_code(),
              grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(ListAll(pb::ALLOCATION_STATE_UNSPECIFIED),
                ElementsAre(id, staying.allocation_id()));
    EXPECT_THAT(ListAll(pb::ALLOCATION_STATE_ENDED), ElementsAre(id));
    EXPECT_THAT(ListAll(pb::ALLOCATION_STATE_ASSIGNED),
                ElementsAre(staying.allocation_id()));
    ExpectListedWithItsUsage(id);
    EXPECT_TRUE(MessageDifferencer::Equals(Statement(from, until), statement));
    EXPECT_TRUE(
        MessageDifferencer::Equals(Settlement(from, until), settlement));

    const pb::VerifyJournalResponse verified = VerifyJournal();
    EXPECT_TRUE(verified.ok()) << verified.violations(0);
    Restart();
  }
}

// Every voucher `list` pages through, a page at a time: list(token, &next)
// returns a page and sets the next token.
template <typename List>
std::vector<std::string> VoucherIds(List list) {
  std::vector<std::string> ids;
  std::string token;
  for (int pages = 0; pages < 10; ++pages) {
    std::string next;
    for (const pb::Voucher& v : list(token, &next))
      ids.push_back(v.voucher_id());
    if (next.empty()) break;
    token = next;
  }
  return ids;
}

class VoucherRetirementApiTest : public HistoryOnStoreTest {
 protected:
  // A voucher of E-000003 valid for two days, spent on for ten minutes and
  // expired (its allocation retired with the expiring tick); its view then.
  pb::Voucher SpendAndExpire() {
    const pb::Voucher v =
        Issue("E-000003", 500'00, "P-000001", clock_.Now() + absl::Hours(48));
    // Paid from the voucher that expires first.
    const pb::Allocation a = Allocate("910B");
    EXPECT_EQ(a.voucher_id(), v.voucher_id());
    const absl::Time t0 = *FromProto("assigned_at", a.assigned_at());
    clock_.Advance(absl::Minutes(10));
    EXPECT_EQ(
        ReportOne(a.allocation_id(), 1, t0, t0 + absl::Minutes(10)).result(),
        pb::USAGE_RESULT_ACCEPTED);
    pb::ReleaseAllocationRequest release;
    release.set_request_id(NextRequestId());
    release.set_allocation_id(a.allocation_id());
    pb::Allocation released;
    EXPECT_TRUE(
        enterprise_->ReleaseAllocation(As(e3_token_).get(), release, &released)
            .ok());
    clock_.Advance(absl::Hours(48));
    BeatAndTick();
    pb::Voucher expired;
    EXPECT_TRUE(GetVoucher(e3_token_, v.voucher_id(), &expired).ok());
    EXPECT_EQ(expired.state(), pb::VOUCHER_STATE_EXPIRED);
    EXPECT_GT(expired.charged_fen(), 0);
    return expired;
  }

  grpc::Status GetVoucher(const std::string& token, const std::string& id,
                          pb::Voucher* out) {
    pb::GetVoucherRequest r;
    r.set_voucher_id(id);
    return enterprise_->GetVoucher(As(token).get(), r, out);
  }

  // E-000003's vouchers in `state`, a page of one at a time.
  std::vector<std::string> Mine(pb::VoucherState state) {
    return VoucherIds([&](const std::string& token, std::string* next) {
      pb::ListVouchersRequest r;
      r.set_state(state);
      r.mutable_page()->set_page_size(1);
      r.mutable_page()->set_page_token(token);
      pb::ListVouchersResponse page;
      grpc::Status s = enterprise_->ListVouchers(As(e3_token_).get(), r, &page);
      EXPECT_TRUE(s.ok()) << s.error_message();
      *next = page.next_page_token();
      return page.vouchers();
    });
  }

  // P-000001's vouchers of `enterprise`, as an auditor lists them.
  std::vector<std::string> Audited(const std::string& enterprise) {
    return VoucherIds([&](const std::string& token, std::string* next) {
      pb::AdminListVouchersRequest r;
      r.set_program_id("P-000001");
      r.set_enterprise_id(enterprise);
      r.mutable_page()->set_page_token(token);
      pb::AdminListVouchersResponse page;
      grpc::Status s = admin_->ListVouchers(As(auditor_token_).get(), r, &page);
      EXPECT_TRUE(s.ok()) << s.error_message();
      *next = page.next_page_token();
      return page.vouchers();
    });
  }

  pb::Balance Balance() {
    pb::Balance out;
    grpc::Status s = enterprise_->GetBalance(As(e3_token_).get(),
                                             pb::GetBalanceRequest(), &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }
};

INSTANTIATE_TEST_SUITE_P(Stores, VoucherRetirementApiTest,
                         ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// Once a voucher's window ended, its allocations retired and an hour (the
// retention) passed, it leaves the scheduler's memory; every reader still
// answers it from the store, before and after a restart, on both stores.
TEST_P(VoucherRetirementApiTest, ARetiredVoucherIsStillReadEverywhere) {
  const pb::Voucher expired = SpendAndExpire();
  const std::string id = expired.voucher_id();
  const pb::Balance before = Balance();
  clock_.Advance(absl::Seconds(kRetainS));
  const absl::Time retired_at = clock_.Now();
  BeatAndTick();
  const std::string kept = "CV-2025-000001";  // the fixture's
  for (int restart = 0; restart < 2; ++restart) {
    SCOPED_TRACE(restart == 0 ? "retired" : "retired, then restarted");
    pb::Voucher got;
    grpc::Status s = GetVoucher(e3_token_, id, &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
    // As it was, and when it was retired: read from the store.
    EXPECT_EQ(got.retired_at().seconds(), absl::ToUnixSeconds(retired_at));
    got.clear_retired_at();
    EXPECT_TRUE(MessageDifferencer::Equals(got, expired))
        << got.ShortDebugString() << "\nvs\n"
        << expired.ShortDebugString();
    // Another enterprise's is missing, as before.
    EXPECT_EQ(GetVoucher(e1_token_, id, &got).error_code(),
              grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(Mine(pb::VOUCHER_STATE_UNSPECIFIED), ElementsAre(kept, id));
    EXPECT_THAT(Mine(pb::VOUCHER_STATE_EXPIRED), ElementsAre(id));
    EXPECT_THAT(Mine(pb::VOUCHER_STATE_REVOKED), ::testing::IsEmpty());
    EXPECT_THAT(Mine(pb::VOUCHER_STATE_ACTIVE), ElementsAre(kept));
    EXPECT_THAT(Audited("E-000003"), ElementsAre(kept, id));
    EXPECT_THAT(Audited("E-000001"), ::testing::IsEmpty());
    // What it paid still counts in the balance.
    const pb::Balance after = Balance();
    EXPECT_TRUE(MessageDifferencer::Equals(after, before))
        << after.ShortDebugString() << "\nvs\n"
        << before.ShortDebugString();
    const pb::VerifyJournalResponse verified = VerifyJournal();
    EXPECT_TRUE(verified.ok()) << verified.violations(0);
    Restart();
  }
}

}  // namespace
}  // namespace computevoucher::testing
