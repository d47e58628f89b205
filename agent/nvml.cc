#include "agent/nvml.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "agent/internal/nvml_abi.h"
#include "common/status_macros.h"

namespace computevoucher::agent {
namespace {

constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr nvmlReturn_t kNvmlErrorNotSupported = 3;
constexpr nvmlReturn_t kNvmlErrorInsufficientSize = 7;

// NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_DEVICE_UUID_V2_BUFFER_SIZE.
constexpr unsigned int kNameBufferSize = 96;
constexpr unsigned int kUuidBufferSize = 96;

// Enough for most GPUs; a busier one costs a second call.
constexpr unsigned int kInitialProcessCapacity = 32;
// The process list can grow between the call that sizes the buffer and the
// one that fills it; give up after this many calls rather than loop.
constexpr int kProcessListAttempts = 4;

}  // namespace

struct Nvml::Api {
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*device_get_count)(unsigned int*) = nullptr;
  nvmlReturn_t (*device_get_handle_by_index)(unsigned int,
                                             nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*device_get_name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*device_get_uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*device_get_memory_info)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*device_get_utilization_rates)(nvmlDevice_t,
                                               nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*device_get_total_energy_consumption)(
      nvmlDevice_t, unsigned long long*) = nullptr;
  nvmlReturn_t (*device_get_compute_running_processes)(
      nvmlDevice_t, unsigned int*, nvmlProcessInfo_t*) = nullptr;

  absl::Status ResolveAll(const SharedLibrary& library) {
    RETURN_IF_ERROR(library.Resolve("nvmlInit_v2", init));
    RETURN_IF_ERROR(library.Resolve("nvmlShutdown", shutdown));
    RETURN_IF_ERROR(library.Resolve("nvmlErrorString", error_string));
    RETURN_IF_ERROR(library.Resolve("nvmlDeviceGetCount_v2", device_get_count));
    RETURN_IF_ERROR(library.Resolve("nvmlDeviceGetHandleByIndex_v2",
                                    device_get_handle_by_index));
    RETURN_IF_ERROR(library.Resolve("nvmlDeviceGetName", device_get_name));
    RETURN_IF_ERROR(library.Resolve("nvmlDeviceGetUUID", device_get_uuid));
    RETURN_IF_ERROR(
        library.Resolve("nvmlDeviceGetMemoryInfo", device_get_memory_info));
    RETURN_IF_ERROR(library.Resolve("nvmlDeviceGetUtilizationRates",
                                    device_get_utilization_rates));
    RETURN_IF_ERROR(library.Resolve("nvmlDeviceGetTotalEnergyConsumption",
                                    device_get_total_energy_consumption));
    RETURN_IF_ERROR(library.Resolve("nvmlDeviceGetComputeRunningProcesses_v3",
                                    device_get_compute_running_processes));
    return absl::OkStatus();
  }

  std::string ErrorString(nvmlReturn_t code) const {
    const char* text = error_string(code);
    if (text == nullptr) return absl::StrFormat("NVML error %d", code);
    return text;
  }

  absl::Status CallError(const char* function, int index,
                         nvmlReturn_t code) const {
    return absl::InternalError(absl::StrFormat("nvml: %s(gpu %d): %s", function,
                                               index, ErrorString(code)));
  }

  absl::StatusOr<unsigned int> Count() const {
    unsigned int count = 0;
    nvmlReturn_t rc = device_get_count(&count);
    if (rc != kNvmlSuccess) {
      return absl::InternalError(
          absl::StrFormat("nvml: nvmlDeviceGetCount_v2: %s", ErrorString(rc)));
    }
    return count;
  }

  absl::StatusOr<nvmlDevice_t> Handle(int index) const {
    nvmlDevice_t device = nullptr;
    nvmlReturn_t rc =
        device_get_handle_by_index(static_cast<unsigned int>(index), &device);
    if (rc != kNvmlSuccess) {
      return CallError("nvmlDeviceGetHandleByIndex_v2", index, rc);
    }
    return device;
  }
};

Nvml::Nvml(SharedLibrary library, std::unique_ptr<Api> api)
    : library_(std::move(library)), api_(std::move(api)) {}

Nvml::~Nvml() {
  // Nothing useful to do if shutdown fails: the process is letting go anyway.
  api_->shutdown();
}

absl::StatusOr<std::unique_ptr<Nvml>> Nvml::Load(const std::string& library) {
  ASSIGN_OR_RETURN(
      SharedLibrary opened,
      SharedLibrary::Open(
          library,
          {"nvml",
           "is the NVIDIA driver installed? the nvml telemetry needs it; "
           "use --telemetry simulated otherwise",
           "driver too old, or not NVML?"}));
  auto api = std::make_unique<Api>();
  RETURN_IF_ERROR(api->ResolveAll(opened));
  nvmlReturn_t rc = api->init();
  if (rc != kNvmlSuccess) {
    return absl::UnavailableError(absl::StrFormat(
        "nvml: nvmlInit_v2 (%s): %s", library, api->ErrorString(rc)));
  }
  return std::unique_ptr<Nvml>(new Nvml(std::move(opened), std::move(api)));
}

absl::StatusOr<std::vector<GpuDevice>> Nvml::Devices() {
  ASSIGN_OR_RETURN(unsigned int count, api_->Count());
  std::vector<GpuDevice> devices;
  devices.reserve(count);
  for (unsigned int i = 0; i < count; ++i) {
    const int index = static_cast<int>(i);
    ASSIGN_OR_RETURN(nvmlDevice_t device, api_->Handle(index));
    GpuDevice gpu;
    gpu.index = index;

    char name[kNameBufferSize] = {};
    nvmlReturn_t rc = api_->device_get_name(device, name, sizeof(name));
    if (rc != kNvmlSuccess) {
      return api_->CallError("nvmlDeviceGetName", index, rc);
    }
    gpu.name.assign(name, strnlen(name, sizeof(name)));

    char uuid[kUuidBufferSize] = {};
    rc = api_->device_get_uuid(device, uuid, sizeof(uuid));
    if (rc != kNvmlSuccess) {
      return api_->CallError("nvmlDeviceGetUUID", index, rc);
    }
    gpu.uuid.assign(uuid, strnlen(uuid, sizeof(uuid)));

    nvmlMemory_t memory = {};
    rc = api_->device_get_memory_info(device, &memory);
    if (rc != kNvmlSuccess) {
      return api_->CallError("nvmlDeviceGetMemoryInfo", index, rc);
    }
    gpu.memory_total_bytes = static_cast<int64_t>(memory.total);
    devices.push_back(std::move(gpu));
  }
  return devices;
}

absl::StatusOr<GpuReading> Nvml::Read(int index) {
  ASSIGN_OR_RETURN(unsigned int count, api_->Count());
  if (index < 0 || static_cast<unsigned int>(index) >= count) {
    if (count == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "nvml: gpu index: NVML lists no GPUs, got %d", index));
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "nvml: gpu index must be 0..%u, got %d", count - 1, index));
  }
  ASSIGN_OR_RETURN(nvmlDevice_t device, api_->Handle(index));
  GpuReading reading;

  nvmlUtilization_t utilization = {};
  nvmlReturn_t rc = api_->device_get_utilization_rates(device, &utilization);
  if (rc != kNvmlSuccess) {
    return api_->CallError("nvmlDeviceGetUtilizationRates", index, rc);
  }
  reading.utilization_bp =
      static_cast<int32_t>(std::min(utilization.gpu, 100u) * 100);

  nvmlMemory_t memory = {};
  rc = api_->device_get_memory_info(device, &memory);
  if (rc != kNvmlSuccess) {
    return api_->CallError("nvmlDeviceGetMemoryInfo", index, rc);
  }
  reading.memory_used_bytes = static_cast<int64_t>(memory.used);

  unsigned long long energy_mj = 0;
  rc = api_->device_get_total_energy_consumption(device, &energy_mj);
  if (rc == kNvmlSuccess) {
    reading.energy_mj = energy_mj;
    reading.energy_supported = true;
  } else if (rc != kNvmlErrorNotSupported) {
    return api_->CallError("nvmlDeviceGetTotalEnergyConsumption", index, rc);
  }

  std::vector<nvmlProcessInfo_t> processes(kInitialProcessCapacity);
  for (int attempt = 1;; ++attempt) {
    unsigned int n = static_cast<unsigned int>(processes.size());
    rc = api_->device_get_compute_running_processes(device, &n,
                                                    processes.data());
    if (rc == kNvmlSuccess) {
      processes.resize(std::min<size_t>(n, processes.size()));
      break;
    }
    if (rc == kNvmlErrorNotSupported) {
      processes.clear();
      break;
    }
    if (rc != kNvmlErrorInsufficientSize || attempt == kProcessListAttempts) {
      return api_->CallError("nvmlDeviceGetComputeRunningProcesses_v3", index,
                             rc);
    }
    // `n` now holds the count NVML needs; leave room for processes that
    // start before the next call.
    processes.resize(std::max<size_t>(n + n / 4 + 8, processes.size() * 2));
  }
  reading.compute_pids.reserve(processes.size());
  for (const nvmlProcessInfo_t& process : processes) {
    reading.compute_pids.push_back(process.pid);
  }
  return reading;
}

}  // namespace computevoucher::agent
