// Huawei's device management library for Ascend NPUs (DCMI), loaded at run
// time.
//
// The agent links nothing of Huawei's: Dcmi::Load dlopen()s the library
// (normally "libdcmi.so", installed with the Ascend driver) and resolves the
// few functions the agent calls, so the agent builds and runs on machines
// without the driver and only the `dcmi` telemetry needs it. The DCMI types
// the agent uses are declared in agent/internal/dcmi_abi.h with the
// driver's ABI.
//
// DCMI addresses an NPU by card and device within the card; Dcmi numbers
// them 0, 1, ... in the order DCMI lists cards, and devices within a card.
//
// Thread-compatible: one thread at a time (the agent's loop).
#ifndef COMPUTEVOUCHER_AGENT_DCMI_H_
#define COMPUTEVOUCHER_AGENT_DCMI_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/gpu_reading.h"

namespace computevoucher::agent {

// One reading of an NPU.
struct DcmiReading {
  // Utilisation of the AI Cores and HBM in use. DCMI counts no energy, so
  // energy_mj is 0 and energy_supported false; compute_pids is empty.
  GpuReading reading;
  // Power draw at the time of the reading, milliwatts (DCMI reports 0.1 W).
  int64_t power_mw = 0;
};

class Dcmi {
 public:
  // Loads `library` (a file name searched the usual way, or a path),
  // resolves the functions, calls dcmi_init and lists the NPUs. Errors:
  // FailedPrecondition naming the library and dlerror()'s text when it
  // cannot be loaded ("is the Ascend driver installed?"), or a function is
  // missing; Unavailable with DCMI's error code when dcmi_init fails;
  // Internal with the function and the code when listing fails.
  static absl::StatusOr<std::unique_ptr<Dcmi>> Load(const std::string& library);

  // DCMI has no call that undoes dcmi_init, so the library stays loaded
  // until the process exits.
  ~Dcmi();
  Dcmi(const Dcmi&) = delete;
  Dcmi& operator=(const Dcmi&) = delete;

  // Every NPU, by index, named "<chip type> <chip name>" (e.g. "Ascend
  // 910B3"), with its HBM size; uuid is empty. Errors: Internal with the
  // function, the NPU and DCMI's error code.
  absl::StatusOr<std::vector<GpuDevice>> Devices();

  // Reads NPU `index`. Errors: InvalidArgument for an index out of range;
  // Internal with the function, the NPU and DCMI's error code.
  absl::StatusOr<DcmiReading> Read(int index);

 private:
  struct Api;
  struct Npu {
    int card_id = 0;
    int device_id = 0;
  };
  Dcmi(std::unique_ptr<Api> api, std::vector<Npu> npus);
  absl::Status CallError(const char* function, int index, int code) const;

  const std::unique_ptr<Api> api_;
  // By index.
  const std::vector<Npu> npus_;
};

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_DCMI_H_
