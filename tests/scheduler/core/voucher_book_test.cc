#include "scheduler/core/voucher_book.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/ledger.h"
#include "tests/scheduler/core/components_fixture.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class VoucherBookTest : public ComponentsTest {
 protected:
  void SetUp() override {
    ComponentsTest::SetUp();
    ASSERT_THAT(BuildWorld(), IsOk());
  }

  pb::IssueVoucherRequest Request(const std::string& enterprise_id,
                                  int64_t yuan, int32_t priority = 0) {
    pb::IssueVoucherRequest r;
    r.set_program_id("P-000001");
    r.set_enterprise_id(enterprise_id);
    r.set_face_value_fen(yuan * kYuan);
    r.set_priority(priority);
    return r;
  }

  int64_t Unissued() {
    return registry_.ProgramView("P-000001")->unissued_fen();
  }
};

TEST_F(VoucherBookTest, IssueIsCappedPerEnterpriseAndYear) {
  const int64_t unissued = Unissued();
  ASSERT_THAT(Issue("E-000001", 5'000'000), IsOk());
  EXPECT_THAT(Issue("E-000001", 3'000'001),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cap of program P-000001 for 2025")));
  ASSERT_THAT(Issue("E-000001", 3'000'000), IsOk());
  ASSERT_THAT(Issue("E-000003", 8'000'000), IsOk());
  EXPECT_EQ(Unissued(), unissued - 16'000'000 * kYuan);
  EXPECT_EQ(vouchers_.VoucherIds().size(), 3u);
}

TEST_F(VoucherBookTest, BatchIssueIsAllOrNothing) {
  pb::BatchIssueVouchersRequest batch;
  *batch.add_rows() = Request("E-000001", 5'000'000);
  *batch.add_rows() =
      Request("E-000001", 5'000'000);  // over the cap with row 0
  *batch.add_rows() = Request("E-000404", 1);
  const int64_t unissued = Unissued();
  ASSERT_OK_AND_ASSIGN(const Reply reply, vouchers_.BatchIssueVouchers(batch));
  EXPECT_FALSE(reply.changed);
  const auto& response =
      static_cast<const pb::BatchIssueVouchersResponse&>(*reply.response);
  ASSERT_EQ(response.errors_size(), 2);
  EXPECT_EQ(response.errors(0).row(), 1);
  EXPECT_EQ(response.errors(1).row(), 2);
  EXPECT_TRUE(vouchers_.VoucherIds().empty());
  EXPECT_EQ(Unissued(), unissued);

  batch.mutable_rows()->RemoveLast();
  batch.mutable_rows(1)->set_enterprise_id("E-000003");
  ASSERT_OK_AND_ASSIGN(const Reply issued, vouchers_.BatchIssueVouchers(batch));
  EXPECT_TRUE(issued.changed);
  EXPECT_EQ(vouchers_.VoucherIds().size(), 2u);
}

TEST_F(VoucherBookTest, PayersComeByPriorityThenExpiryThenId) {
  ASSERT_OK_AND_ASSIGN(const Response low,
                       vouchers_.IssueVoucher(Request("E-000001", 10)));
  pb::IssueVoucherRequest soon = Request("E-000001", 10);
  *soon.mutable_valid_until() = ToProto(books_.now() + absl::Hours(48));
  ASSERT_THAT(vouchers_.IssueVoucher(soon), IsOk());
  ASSERT_THAT(vouchers_.IssueVoucher(Request("E-000001", 10, /*priority=*/5)),
              IsOk());
  ASSERT_THAT(vouchers_.IssueVoucher(Request("E-000003", 10)), IsOk());
  ASSERT_OK_AND_ASSIGN(const std::vector<const VoucherRec*> payers,
                       vouchers_.Payers("E-000001", ""));
  std::vector<std::string> ids;
  for (const VoucherRec* rec : payers) ids.push_back(rec->voucher.voucher_id());
  EXPECT_THAT(
      ids, ElementsAre("CV-2025-000003", "CV-2025-000002", "CV-2025-000001"));
  // Another enterprise's voucher is answered as a missing one.
  EXPECT_THAT(vouchers_.Payers("E-000001", "CV-2025-000004"),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(const std::vector<const VoucherRec*> named,
                       vouchers_.Payers("E-000003", "CV-2025-000004"));
  EXPECT_EQ(named.size(), 1u);
  EXPECT_EQ(static_cast<const pb::Voucher&>(*low).voucher_id(),
            "CV-2025-000001");
}

TEST_F(VoucherBookTest, ExpiryTakesDueVouchersAndReturnsWhatIsLeft) {
  pb::IssueVoucherRequest r = Request("E-000001", 100);
  *r.mutable_valid_until() = ToProto(books_.now() + absl::Hours(1));
  ASSERT_THAT(vouchers_.IssueVoucher(r), IsOk());
  const int64_t unissued = Unissued();
  EXPECT_EQ(vouchers_.TakeExpired(books_.now()), std::nullopt);
  Advance(absl::Hours(1));
  EXPECT_EQ(vouchers_.TakeExpired(books_.now()), "CV-2025-000001");
  EXPECT_EQ(vouchers_.TakeExpired(books_.now()), std::nullopt);
  ASSERT_TRUE(vouchers_.Expire("CV-2025-000001"));
  VoucherRec& rec = vouchers_.voucher("CV-2025-000001");
  ASSERT_THAT(vouchers_.ReturnAvailable(rec, pb::ENTRY_KIND_EXPIRE,
                                        "expire/CV-2025-000001"),
              IsOk());
  EXPECT_EQ(rec.voucher.state(), pb::VOUCHER_STATE_EXPIRED);
  EXPECT_EQ(rec.voucher.returned_fen(), 100 * kYuan);
  EXPECT_EQ(vouchers_.Available("CV-2025-000001"), 0);
  EXPECT_EQ(Unissued(), unissued + 100 * kYuan);
}

TEST_F(VoucherBookTest, AnEmptiedVoucherIsExhaustedUntilRefilled) {
  ASSERT_THAT(Issue("E-000001", 100), IsOk());
  pb::AdjustVoucherRequest adjust;
  adjust.set_voucher_id("CV-2025-000001");
  adjust.set_reason("correction");
  adjust.set_delta_fen(-100 * kYuan);
  ASSERT_THAT(vouchers_.AdjustVoucher(adjust), IsOk());
  EXPECT_EQ(vouchers_.VoucherView("CV-2025-000001")->state(),
            pb::VOUCHER_STATE_EXHAUSTED);
  EXPECT_FALSE(vouchers_.Expire("CV-2025-000001"));  // nothing to expire
  adjust.set_delta_fen(1);
  ASSERT_THAT(vouchers_.AdjustVoucher(adjust), IsOk());
  EXPECT_EQ(vouchers_.VoucherView("CV-2025-000001")->state(),
            pb::VOUCHER_STATE_ACTIVE);
  EXPECT_EQ(vouchers_.voucher("CV-2025-000001").adjustments, 2);
}

TEST_F(VoucherBookTest, RevokeRefusesARevokedVoucherAndLeavesTheRest) {
  ASSERT_THAT(Issue("E-000001", 100), IsOk());
  pb::RevokeVoucherRequest revoke;
  revoke.set_voucher_id("CV-2025-000001");
  revoke.set_reason("fraud");
  ASSERT_OK_AND_ASSIGN(VoucherRec * rec, vouchers_.Revoke(revoke));
  EXPECT_EQ(rec->voucher.state(), pb::VOUCHER_STATE_REVOKED);
  // Returning what is left is the caller's step, after the allocations end.
  EXPECT_EQ(vouchers_.Available("CV-2025-000001"), 100 * kYuan);
  EXPECT_THAT(vouchers_.Revoke(revoke),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already revoked")));
  // Off the expiry index: never expires.
  EXPECT_EQ(vouchers_.TakeExpired(absl::InfiniteFuture()), std::nullopt);
}

}  // namespace
}  // namespace computevoucher::core
