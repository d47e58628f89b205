// What the vendor telemetry libraries the agent loads (agent/nvml.h for
// NVIDIA, agent/dcmi.h for Huawei Ascend) report about an accelerator,
// in the agent's units.
#ifndef COMPUTEVOUCHER_AGENT_GPU_READING_H_
#define COMPUTEVOUCHER_AGENT_GPU_READING_H_

#include <cstdint>
#include <string>
#include <vector>

namespace computevoucher::agent {

// A GPU or NPU as its library lists it.
struct GpuDevice {
  int index = 0;
  // Product name, e.g. "NVIDIA H100 80GB HBM3" or "Ascend 910B3".
  std::string name;
  // NVML's "GPU-…" identifier; empty where the library has none (DCMI).
  std::string uuid;
  int64_t memory_total_bytes = 0;
};

// One reading of a GPU or NPU.
struct GpuReading {
  // Utilisation over the library's last sample period, basis points
  // (0..10000).
  int32_t utilization_bp = 0;
  int64_t memory_used_bytes = 0;
  // Energy since a fixed start (NVML: since the driver loaded), millijoules;
  // meaningful only when `energy_supported` (older GPUs do not count
  // energy).
  uint64_t energy_mj = 0;
  bool energy_supported = false;
  // Processes with a compute context on the device.
  std::vector<uint32_t> compute_pids;
};

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_GPU_READING_H_
