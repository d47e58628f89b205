// The GPUs of a cluster as the agent's meters read them: simulated from the
// configured inventory, or discovered and read through NVML (NVIDIA) or
// DCMI (Huawei Ascend NPUs, counted as GPUs).
#ifndef COMPUTEVOUCHER_AGENT_GPUS_H_
#define COMPUTEVOUCHER_AGENT_GPUS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/dcmi.h"
#include "agent/nvml.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::agent {

namespace pb = ::computevoucher::v1;

// One GPU: its index on the node and the inventory model it counts as.
struct GpuSlot {
  int index = 0;
  std::string model;
};

class GpuSource {
 public:
  virtual ~GpuSource() = default;
  // Every GPU, ordered by index; constant after construction.
  virtual const std::vector<GpuSlot>& slots() const = 0;
  // Reads GPU `index` at `now`. Errors name the GPU and the cause.
  virtual absl::StatusOr<GpuReading> Read(int index, absl::Time now) = 0;
};

// Parses an inventory such as "8xH100:other,16x910B:domestic": GPU count,
// model (1..64 characters of letters, digits, '-', '_' and '.'), and
// hardware class ("domestic" or "other"). Prices are left unset.
// InvalidArgument names the item and the rule it breaks.
absl::StatusOr<std::vector<pb::GpuModel>> ParseInventory(
    absl::string_view text);

// Sets prices from "H100=25.00,910B=12.50" (CNY per GPU-hour, any form
// ParseMoney takes). Every model of `inventory` must get a price, and every
// price must name a model. InvalidArgument names the model and the value.
absl::Status ApplyPrices(absl::string_view text,
                         std::vector<pb::GpuModel>& inventory);

// GPUs numbered 0.. in inventory order. Every reading shows
// `utilization_bp` and energy growing at `watts` from `start`.
std::unique_ptr<GpuSource> NewSimulatedGpus(
    const std::vector<pb::GpuModel>& inventory, int32_t utilization_bp,
    int64_t watts, absl::Time start);

// Discovers the GPUs through `nvml` and matches each device name to an
// inventory model (the model name must appear in the device name as a
// word, e.g. "H100" in "NVIDIA H100 80GB HBM3"; the longest match wins).
// Sets each model's gpu_count to what was found and drops models with no
// GPU. FailedPrecondition names a device that matches no model, so that an
// operator adds its price.
absl::StatusOr<std::unique_ptr<GpuSource>> NewNvmlGpus(
    std::unique_ptr<Nvml> nvml, std::vector<pb::GpuModel>& inventory);

// Discovers the NPUs through `dcmi` and matches each name ("Ascend 910B3")
// to an inventory model: the model must start a word of the name, a word
// also starting where letters turn to digits ("910B" in "Ascend910B"), and
// may be the start of a longer word ("910B" matches "910B3"); the longest
// match wins. Counts, dropped models and errors as NewNvmlGpus.
//
// DCMI reports power, not energy, so the source counts energy itself: each
// Read integrates the power of that read and of the NPU's previous read over
// the time between their `now`s (trapezoids), whole milliseconds at a time.
// energy_mj is cumulative from the NPU's first read (0 there) and
// energy_supported is true; it is as good as the sampling, so a spike
// between two reads goes unseen. A `now` that is not after the previous one
// adds nothing.
absl::StatusOr<std::unique_ptr<GpuSource>> NewDcmiGpus(
    std::unique_ptr<Dcmi> dcmi, std::vector<pb::GpuModel>& inventory);

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_GPUS_H_
