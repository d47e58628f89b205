// Prices, subsidy ratios and the cumulative charge rounding of DESIGN.md.
// Pure functions; every intermediate product is computed in 128 bits and a
// result that does not fit in int64 fen is OutOfRange.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_PRICING_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_PRICING_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::core {

inline constexpr int64_t kMsPerHour = 3'600'000;
inline constexpr int32_t kBasisPoints = 10'000;

// floor(gpu_ms × price_fen_per_gpu_hour / 3 600 000).
absl::StatusOr<int64_t> CostFen(int64_t gpu_ms, int64_t price_fen_per_gpu_hour);

// floor(cost_fen × ratio_bp / 10 000).
absl::StatusOr<int64_t> SubsidyFen(int64_t cost_fen, int32_t ratio_bp);

// Cost, subsidy and self-pay of `gpu_ms` at a price and ratio, rounded as
// one cumulative figure.
absl::StatusOr<computevoucher::v1::Amounts> AmountsFor(
    int64_t gpu_ms, int64_t price_fen_per_gpu_hour, int32_t ratio_bp);

// GPU-milliseconds of `gpu_count` GPUs for `duration_s` seconds.
absl::StatusOr<int64_t> GpuMs(int64_t gpu_count, int64_t duration_s);

// The subsidy ratio for an enterprise on hardware of `hardware_class`: the
// program's class ratio, or its SME ratio when the enterprise is an SME and
// that is higher.
int32_t RatioBp(const computevoucher::v1::Program& program,
                computevoucher::v1::HardwareClass hardware_class, bool sme);

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_PRICING_H_
