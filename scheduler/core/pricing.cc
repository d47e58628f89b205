#include "scheduler/core/pricing.h"

#include <limits>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace computevoucher::core {
namespace {

using computevoucher::v1::Amounts;
using computevoucher::v1::HardwareClass;
using computevoucher::v1::Program;

absl::StatusOr<int64_t> Narrow(absl::int128 value, absl::string_view what) {
  if (value > std::numeric_limits<int64_t>::max() ||
      value < std::numeric_limits<int64_t>::min()) {
    return absl::OutOfRangeError(
        absl::StrCat(what, ": result overflows int64"));
  }
  return static_cast<int64_t>(value);
}

}  // namespace

absl::StatusOr<int64_t> CostFen(int64_t gpu_ms,
                                int64_t price_fen_per_gpu_hour) {
  if (gpu_ms < 0 || price_fen_per_gpu_hour < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cost: gpu_ms (", gpu_ms, ") and price (",
                     price_fen_per_gpu_hour, ") must not be negative"));
  }
  const absl::int128 product =
      static_cast<absl::int128>(gpu_ms) *
      static_cast<absl::int128>(price_fen_per_gpu_hour);
  return Narrow(product / kMsPerHour, "cost");
}

absl::StatusOr<int64_t> SubsidyFen(int64_t cost_fen, int32_t ratio_bp) {
  if (cost_fen < 0 || ratio_bp < 0 || ratio_bp > kBasisPoints) {
    return absl::InvalidArgumentError(absl::StrCat(
        "subsidy: cost (", cost_fen, ") must not be negative and ratio (",
        ratio_bp, ") must be 0..10000 bp"));
  }
  const absl::int128 product = static_cast<absl::int128>(cost_fen) * ratio_bp;
  return Narrow(product / kBasisPoints, "subsidy");
}

absl::StatusOr<Amounts> AmountsFor(int64_t gpu_ms,
                                   int64_t price_fen_per_gpu_hour,
                                   int32_t ratio_bp) {
  ASSIGN_OR_RETURN(const int64_t cost, CostFen(gpu_ms, price_fen_per_gpu_hour));
  ASSIGN_OR_RETURN(const int64_t subsidy, SubsidyFen(cost, ratio_bp));
  Amounts amounts;
  amounts.set_cost_fen(cost);
  amounts.set_subsidy_fen(subsidy);
  amounts.set_self_pay_fen(cost - subsidy);
  return amounts;
}

absl::StatusOr<int64_t> GpuMs(int64_t gpu_count, int64_t duration_s) {
  if (gpu_count < 0 || duration_s < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpu_count (", gpu_count, ") and duration (", duration_s,
                     " s) must not be negative"));
  }
  return Narrow(static_cast<absl::int128>(gpu_count) * duration_s * 1000,
                "gpu_ms");
}

int32_t RatioBp(const Program& program, HardwareClass hardware_class,
                bool sme) {
  const int32_t class_ratio =
      hardware_class == computevoucher::v1::HARDWARE_CLASS_DOMESTIC
          ? program.domestic_ratio_bp()
          : program.other_ratio_bp();
  if (sme && program.sme_ratio_bp() > class_ratio)
    return program.sme_ratio_bp();
  return class_ratio;
}

}  // namespace computevoucher::core
