// Many clients redeem the same voucher at once: the holds never add up to
// more than the voucher, and every refusal is FAILED_PRECONDITION.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/api/api_fixture.h"

namespace computevoucher::testing {
namespace {

using ::testing::HasSubstr;

class ConcurrencyTest : public ApiTest {};

TEST_F(ConcurrencyTest, HoldsNeverExceedTheVoucher) {
  BuildWorld();
  // ¥100: room for 27 holds of 3.60 (1 × 910B for an hour at 30%), not 28.
  const pb::Voucher voucher = Issue("E-000001", 100'00);
  auto request = [&](int i) {
    pb::AllocateRequest r;
    r.set_request_id(absl::StrCat("concurrent-", i));
    r.mutable_resources()->set_gpu_model("910B");
    r.mutable_resources()->set_gpu_count(1);
    r.mutable_resources()->set_max_duration_s(3600);
    r.mutable_resources()->set_voucher_id(voucher.voucher_id());
    r.set_queue_if_busy(true);  // capacity is not what limits them
    return r;
  };
  constexpr int kClients = 40;
  std::vector<grpc::Status> results(kClients);
  std::vector<pb::Allocation> allocations(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      pb::AllocateRequest r;
      r.set_request_id(absl::StrCat("concurrent-", i));
      r.mutable_resources()->set_gpu_model("910B");
      r.mutable_resources()->set_gpu_count(1);
      r.mutable_resources()->set_max_duration_s(3600);
      r.mutable_resources()->set_voucher_id(voucher.voucher_id());
      r.set_queue_if_busy(true);  // capacity is not what limits them
      results[i] =
          enterprise_->Allocate(As(e1_token_).get(), r, &allocations[i]);
    });
  }
  for (std::thread& t : clients) t.join();
  int granted = 0;
  int64_t held = 0;
  for (int i = 0; i < kClients; ++i) {
    if (results[i].ok()) {
      ++granted;
      held += allocations[i].held_fen();
    } else {
      EXPECT_EQ(results[i].error_code(), grpc::StatusCode::FAILED_PRECONDITION)
          << results[i].error_message();
      EXPECT_THAT(results[i].error_message(),
                  HasSubstr("insufficient balance: need 3.60 CNY"));
    }
  }
  EXPECT_EQ(granted, 27);
  EXPECT_EQ(held, 27 * 360);
  EXPECT_LE(held, voucher.face_value_fen());

  pb::GetVoucherRequest get;
  get.set_voucher_id(voucher.voucher_id());
  pb::Voucher after;
  ASSERT_TRUE(enterprise_->GetVoucher(As(e1_token_).get(), get, &after).ok());
  EXPECT_EQ(after.held_fen(), held);
  EXPECT_EQ(after.available_fen(), voucher.face_value_fen() - held);

  // Retrying one of the granted requests returns the same allocation.
  for (int i = 0; i < kClients; ++i) {
    if (!results[i].ok()) continue;
    pb::Allocation again;
    ASSERT_TRUE(
        enterprise_->Allocate(As(e1_token_).get(), request(i), &again).ok());
    EXPECT_EQ(again.allocation_id(), allocations[i].allocation_id());
    break;
  }
  ASSERT_TRUE(enterprise_->GetVoucher(As(e1_token_).get(), get, &after).ok());
  EXPECT_EQ(after.held_fen(), held);
}

}  // namespace
}  // namespace computevoucher::testing
