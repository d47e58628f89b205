#include "scheduler/core/pricing.h"

#include <cstdint>
#include <limits>
#include <random>

#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::StatusIs;
namespace pb = ::computevoucher::v1;

TEST(CostFen, RoundsDownPerDesign) {
  const struct {
    int64_t gpu_ms, price, want;
  } cases[] = {
      {3'600'000, 2000, 2000},  // one GPU-hour
      {1'800'000, 2000, 1000},  // half an hour
      {1, 2000, 0},             // rounds down
      {1799, 2000, 0},          // 0.9994 fen
      {1800, 2000, 1},          // exactly one fen
      {8 * 3'600'000LL * 24, 1800, 8 * 1800 * 24},
      {0, 2000, 0},
  };
  for (const auto& c : cases) {
    ASSERT_OK_AND_ASSIGN(const int64_t cost, CostFen(c.gpu_ms, c.price));
    EXPECT_EQ(cost, c.want) << c.gpu_ms << " ms at " << c.price;
  }
}

TEST(CostFen, UsesWideIntermediate) {
  // gpu_ms × price overflows int64 but the result fits.
  const int64_t gpu_ms = std::numeric_limits<int64_t>::max() / 1000;
  ASSERT_OK_AND_ASSIGN(const int64_t cost, CostFen(gpu_ms, 3600));
  EXPECT_EQ(cost, gpu_ms / 1000);
  EXPECT_THAT(CostFen(std::numeric_limits<int64_t>::max(), 100'000'000),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(CostFen(-1, 1), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SubsidyFen, RoundsDownAndChecksRatio) {
  ASSERT_OK_AND_ASSIGN(int64_t s, SubsidyFen(1000, 3000));
  EXPECT_EQ(s, 300);
  ASSERT_OK_AND_ASSIGN(s, SubsidyFen(999, 3333));
  EXPECT_EQ(s, 332);  // 332.9667
  ASSERT_OK_AND_ASSIGN(s, SubsidyFen(1, 9999));
  EXPECT_EQ(s, 0);
  EXPECT_THAT(SubsidyFen(1, 10'001),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SubsidyFen(-1, 10), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AmountsFor, SelfPayIsTheRest) {
  ASSERT_OK_AND_ASSIGN(const pb::Amounts a,
                       AmountsFor(7 * 3'600'000LL, 2000, 2000));
  EXPECT_EQ(a.cost_fen(), 14'000);
  EXPECT_EQ(a.subsidy_fen(), 2'800);
  EXPECT_EQ(a.self_pay_fen(), 11'200);
}

// However usage is sliced, charging the difference of cumulative figures
// sums to the figure of the total: rounding never drifts.
TEST(AmountsFor, CumulativeChargesNeverDrift) {
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t price = 1 + static_cast<int64_t>(rng() % 100'000);
    const int32_t ratio = static_cast<int32_t>(rng() % 10'001);
    int64_t total_ms = 0, charged = 0, naive = 0;
    for (int i = 0; i < 50; ++i) {
      const int64_t slice = static_cast<int64_t>(rng() % 100'000);
      total_ms += slice;
      ASSERT_OK_AND_ASSIGN(const pb::Amounts cumulative,
                           AmountsFor(total_ms, price, ratio));
      charged += cumulative.subsidy_fen() - charged;
      ASSERT_OK_AND_ASSIGN(const pb::Amounts piece,
                           AmountsFor(slice, price, ratio));
      naive += piece.subsidy_fen();
    }
    ASSERT_OK_AND_ASSIGN(const pb::Amounts whole,
                         AmountsFor(total_ms, price, ratio));
    EXPECT_EQ(charged, whole.subsidy_fen())
        << "price " << price << " ratio " << ratio;
    EXPECT_LE(naive, whole.subsidy_fen());
  }
}

TEST(GpuMs, MultipliesAndChecks) {
  ASSERT_OK_AND_ASSIGN(const int64_t ms, GpuMs(8, 3600));
  EXPECT_EQ(ms, 8 * 3'600'000LL);
  EXPECT_THAT(GpuMs(-1, 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GpuMs(std::numeric_limits<int64_t>::max(), 2),
              StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(RatioBp, TakesSmeRatioOnlyWhenHigher) {
  pb::Program program;
  program.set_domestic_ratio_bp(3000);
  program.set_other_ratio_bp(2000);
  program.set_sme_ratio_bp(2500);
  EXPECT_EQ(RatioBp(program, pb::HARDWARE_CLASS_DOMESTIC, false), 3000);
  EXPECT_EQ(RatioBp(program, pb::HARDWARE_CLASS_OTHER, false), 2000);
  EXPECT_EQ(RatioBp(program, pb::HARDWARE_CLASS_OTHER, true), 2500);
  EXPECT_EQ(RatioBp(program, pb::HARDWARE_CLASS_DOMESTIC, true), 3000);
}

}  // namespace
}  // namespace computevoucher::core
