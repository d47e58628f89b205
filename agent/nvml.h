// NVIDIA's management library, loaded at run time.
//
// The agent links nothing of NVIDIA's: Nvml::Load dlopen()s the library
// (normally "libnvidia-ml.so.1", installed with the driver) and resolves the
// few functions the agent calls, so the agent builds and runs on machines
// without the driver and only the `nvml` meter needs it. The NVML types the
// agent uses are declared in nvml.cc with the driver's ABI.
//
// Thread-compatible: one thread at a time (the agent's loop).
#ifndef COMPUTEVOUCHER_AGENT_NVML_H_
#define COMPUTEVOUCHER_AGENT_NVML_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/gpu_reading.h"
#include "agent/internal/shared_library.h"

namespace computevoucher::agent {

class Nvml {
 public:
  // Loads `library` (a file name searched the usual way, or a path), resolves
  // the functions and calls nvmlInit_v2. Errors: FailedPrecondition naming
  // the library and dlerror()'s text when it cannot be loaded ("is the
  // NVIDIA driver installed?"), or a function is missing; Unavailable with
  // NVML's error string when nvmlInit_v2 fails.
  static absl::StatusOr<std::unique_ptr<Nvml>> Load(const std::string& library);

  // Calls nvmlShutdown and unloads the library.
  ~Nvml();
  Nvml(const Nvml&) = delete;
  Nvml& operator=(const Nvml&) = delete;

  // Every GPU, by index. Errors: Internal with the function and NVML's
  // error string.
  absl::StatusOr<std::vector<GpuDevice>> Devices();

  // Reads GPU `index`. A GPU that does not count energy gives
  // energy_supported = false rather than an error. Errors: InvalidArgument
  // for an index out of range; Internal with the function and NVML's error
  // string.
  absl::StatusOr<GpuReading> Read(int index);

 private:
  struct Api;
  Nvml(SharedLibrary library, std::unique_ptr<Api> api);
  SharedLibrary library_;
  std::unique_ptr<Api> api_;
};

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_NVML_H_
