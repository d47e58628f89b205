// A stand-in for NVIDIA's libnvidia-ml.so.1, built as a shared library of
// that name, so that the agent's real loading path (dlopen, dlsym, the NVML
// calling conventions) runs on machines without a GPU. It exports, with
// NVML's C signatures, exactly the functions agent/nvml.cc resolves, and
// returns values from a script.
//
// Environment:
//   FAKE_NVML_SCRIPT  the script, read afresh by every nvmlInit_v2 call
//                     (which also resets every counter and cursor). Unset
//                     or unreadable: nvmlInit_v2 returns 9
//                     (NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded").
//                     A malformed script: nvmlInit_v2 returns 999
//                     ("Unknown Error") and the reason, with the line
//                     number, goes to stderr.
//   FAKE_NVML_LOG     optional; a line "init" is appended to this file on
//                     every nvmlInit_v2 call and "shutdown" on every
//                     nvmlShutdown call.
//
// Script: one directive a line; blank lines and lines starting with '#' are
// ignored. Fields are separated by spaces or tabs; double quotes let a field
// hold spaces (name="NVIDIA H100 80GB HBM3"). <gpu> is a GPU index; GPUs are
// declared with `gpu` in order 0, 1, 2, ... (at most 64) before any other
// directive names them. Numbers are unsigned decimal.
//
//   gpu <gpu> [name=<text>] [uuid=<text>] [memory_total=<bytes>]
//       Declares a GPU. Defaults: name "Fake GPU <gpu>", uuid
//       "GPU-00000000-0000-0000-0000-<gpu as 12 zero-padded digits>" (GPU 1:
//       "GPU-00000000-0000-0000-0000-000000000001"), memory_total
//       85899345920 (80 GiB).
//   utilization <gpu> <percent>[,<percent>...]
//       Successive nvmlDeviceGetUtilizationRates calls on this GPU return
//       these GPU percentages in turn, starting over after the last.
//       Default 0.
//   memory_used <gpu> <bytes>[,<bytes>...]
//       Likewise for nvmlDeviceGetMemoryInfo's `used` (free = total - used).
//       Every nvmlDeviceGetMemoryInfo call advances, including the one
//       Nvml::Devices() makes per GPU. Default 0.
//   energy <gpu> [start=<mJ>] [step=<mJ>]
//       nvmlDeviceGetTotalEnergyConsumption returns start + k * step on its
//       k-th call (k from 0). Defaults start=0 step=0.
//   energy <gpu> unsupported
//       nvmlDeviceGetTotalEnergyConsumption returns 3 (Not Supported).
//   processes <gpu> <pid>[,<pid>...] | processes <gpu> none
//       nvmlDeviceGetComputeRunningProcesses_v3 lists these pids (default
//       none), returning 7 (Insufficient Size) and the needed count when the
//       caller's buffer is too small, as NVML does.
//   processes <gpu> unsupported
//       nvmlDeviceGetComputeRunningProcesses_v3 returns 3 (Not Supported).
//   fail <function> <gpu>|* <code>
//       <function> (any exported name but nvmlInit_v2, nvmlShutdown and
//       nvmlErrorString) returns <code> for that GPU, or for every GPU with
//       `*`; nvmlDeviceGetCount_v2 takes `*`. E.g.
//       `fail nvmlDeviceGetMemoryInfo 1 15` (GPU is lost).
//   init_error <code>
//       nvmlInit_v2 returns <code>, e.g. 9 (Driver Not Loaded).
//
// Calls before nvmlInit_v2 (or after the matching nvmlShutdown) return 1
// (Uninitialized); a bad GPU index or null pointer returns 2 (Invalid
// Argument). Calls are serialised by one mutex.
//
// Plain C++ whose only project dependencies are header only, the NVML ABI
// (agent/internal/nvml_abi.h) and the script reader
// (tests/agent/fake_script.h): it is loaded into the tests and the agent
// with dlopen.

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "agent/internal/nvml_abi.h"
#include "tests/agent/fake_script.h"

extern "C" {

struct nvmlDevice_st {
  unsigned int index;
};

}  // extern "C"

namespace {

constexpr nvmlReturn_t kSuccess = 0;
constexpr nvmlReturn_t kUninitialized = 1;
constexpr nvmlReturn_t kInvalidArgument = 2;
constexpr nvmlReturn_t kNotSupported = 3;
constexpr nvmlReturn_t kInsufficientSize = 7;
constexpr nvmlReturn_t kDriverNotLoaded = 9;
constexpr nvmlReturn_t kUnknown = 999;

constexpr unsigned int kMaxGpus = 64;

struct Gpu {
  std::string name;
  std::string uuid;
  unsigned long long memory_total = 85899345920ULL;
  std::vector<unsigned long long> utilization{0};
  size_t utilization_cursor = 0;
  std::vector<unsigned long long> memory_used{0};
  size_t memory_used_cursor = 0;
  bool energy_supported = true;
  unsigned long long energy_start = 0;
  unsigned long long energy_step = 0;
  unsigned long long energy_reads = 0;
  bool processes_supported = true;
  std::vector<unsigned int> pids;
};

struct Failure {
  std::string function;
  long gpu = -1;  // -1: every GPU.
  nvmlReturn_t code = kSuccess;
};

struct State {
  int init_depth = 0;
  std::vector<Gpu> gpus;
  std::vector<Failure> failures;
};

std::mutex mu;
State state;  // Guarded by mu.
nvmlDevice_st handles[kMaxGpus];

std::string DefaultUuid(size_t index) {
  char uuid[64];
  std::snprintf(uuid, sizeof(uuid), "GPU-00000000-0000-0000-0000-%012zu",
                index);
  return uuid;
}

// The directive parsers below return an error text, empty if fine.

std::string ParseInitError(const std::vector<std::string>& f,
                           nvmlReturn_t* init_error) {
  unsigned long long code = 0;
  if (f.size() != 2 || !fake_script::ParseUnsigned(f[1], &code) || code == 0 ||
      code > 100000) {
    return "want `init_error <nonzero code>`";
  }
  *init_error = static_cast<nvmlReturn_t>(code);
  return "";
}

std::string ParseFail(const std::vector<std::string>& f, State& s) {
  unsigned long long code = 0;
  if (f.size() != 4 || !fake_script::ParseUnsigned(f[3], &code) || code == 0 ||
      code > 100000) {
    return "want `fail <function> <gpu>|* <nonzero code>`";
  }
  Failure failure;
  failure.function = f[1];
  failure.code = static_cast<nvmlReturn_t>(code);
  if (f[2] != "*") {
    unsigned long long gpu = 0;
    if (!fake_script::ParseUnsigned(f[2], &gpu) || gpu >= s.gpus.size()) {
      return "fail: gpu must be a declared index or *, got " + f[2];
    }
    failure.gpu = static_cast<long>(gpu);
  }
  s.failures.push_back(failure);
  return "";
}

// `gpu <index> [key=value...]`, declaring GPU `index`.
std::string ParseGpu(const std::vector<std::string>& f,
                     unsigned long long index, State& s) {
  if (index != s.gpus.size() || index >= kMaxGpus) {
    return "gpu: declare GPUs in order 0, 1, ... (at most 64); expected " +
           std::to_string(s.gpus.size()) + ", got " + f[1];
  }
  Gpu gpu;
  gpu.name = "Fake GPU " + f[1];
  gpu.uuid = DefaultUuid(index);
  for (size_t i = 2; i < f.size(); ++i) {
    const size_t eq = f[i].find('=');
    if (eq == std::string::npos) return "gpu: want key=value, got " + f[i];
    const std::string key = f[i].substr(0, eq);
    const std::string value = f[i].substr(eq + 1);
    if (key == "name") {
      gpu.name = value;
    } else if (key == "uuid") {
      gpu.uuid = value;
    } else if (key == "memory_total") {
      if (!fake_script::ParseUnsigned(value, &gpu.memory_total)) {
        return "gpu: bad memory_total " + value;
      }
    } else {
      return "gpu: unknown key " + key;
    }
  }
  s.gpus.push_back(gpu);
  return "";
}

// The directives about a declared GPU, `gpu`.

std::string ParseSeries(const std::vector<std::string>& f, Gpu& gpu) {
  const std::string& op = f[0];
  std::vector<unsigned long long> values;
  if (f.size() != 3 || !fake_script::ParseList(f[2], &values)) {
    return "want `" + op + " <gpu> <n>[,<n>...]`";
  }
  if (op == "utilization") {
    for (unsigned long long v : values) {
      if (v > 100) return "utilization: percent must be 0..100";
    }
    gpu.utilization = values;
  } else {
    for (unsigned long long v : values) {
      if (v > gpu.memory_total) return "memory_used: exceeds memory_total";
    }
    gpu.memory_used = values;
  }
  return "";
}

std::string ParseEnergy(const std::vector<std::string>& f, Gpu& gpu) {
  if (f.size() == 3 && f[2] == "unsupported") {
    gpu.energy_supported = false;
    return "";
  }
  gpu.energy_supported = true;
  for (size_t i = 2; i < f.size(); ++i) {
    const size_t eq = f[i].find('=');
    const std::string key = f[i].substr(0, eq);
    const std::string value =
        eq == std::string::npos ? "" : f[i].substr(eq + 1);
    unsigned long long* target = key == "start"  ? &gpu.energy_start
                                 : key == "step" ? &gpu.energy_step
                                                 : nullptr;
    if (target == nullptr || !fake_script::ParseUnsigned(value, target)) {
      return "want `energy <gpu> [start=<mJ>] [step=<mJ>]` or `energy "
             "<gpu> unsupported`, got " +
             f[i];
    }
  }
  return "";
}

std::string ParseProcesses(const std::vector<std::string>& f, Gpu& gpu) {
  if (f.size() != 3) return "want `processes <gpu> <pid>[,<pid>...]`";
  gpu.pids.clear();
  gpu.processes_supported = true;
  if (f[2] == "unsupported") {
    gpu.processes_supported = false;
    return "";
  }
  if (f[2] == "none") return "";
  std::vector<unsigned long long> pids;
  if (!fake_script::ParseList(f[2], &pids))
    return "processes: bad pid list " + f[2];
  for (unsigned long long pid : pids) {
    if (pid > 0xffffffffULL) return "processes: pid too large";
    gpu.pids.push_back(static_cast<unsigned int>(pid));
  }
  return "";
}

struct GpuDirective {
  const char* op;
  std::string (*parse)(const std::vector<std::string>& f, Gpu& gpu);
};
constexpr GpuDirective kGpuDirectives[] = {
    {"utilization", ParseSeries},
    {"memory_used", ParseSeries},
    {"energy", ParseEnergy},
    {"processes", ParseProcesses},
};

// Parses one directive into `state`; returns an error text, empty if fine.
std::string ParseLine(const std::vector<std::string>& f, State& s,
                      nvmlReturn_t* init_error) {
  const std::string& op = f[0];
  if (op == "init_error") return ParseInitError(f, init_error);
  if (op == "fail") return ParseFail(f, s);

  if (f.size() < 2) return "want `" + op + " <gpu> ...`";
  unsigned long long index = 0;
  if (!fake_script::ParseUnsigned(f[1], &index)) return "bad gpu index " + f[1];
  if (op == "gpu") return ParseGpu(f, index, s);

  if (index >= s.gpus.size()) {
    return op + ": gpu " + f[1] + " is not declared (declare it with `gpu`)";
  }
  for (const GpuDirective& directive : kGpuDirectives) {
    if (op == directive.op) return directive.parse(f, s.gpus[index]);
  }
  return "unknown directive " + op;
}

// Replaces `state` from the script; returns what nvmlInit_v2 should.
nvmlReturn_t LoadScript(State& s) {
  State fresh;
  nvmlReturn_t init_error = kSuccess;
  switch (fake_script::Read("FAKE_NVML_SCRIPT", "fake_nvml",
                            [&](const std::vector<std::string>& fields) {
                              return ParseLine(fields, fresh, &init_error);
                            })) {
    case fake_script::Outcome::kMissing:
      return kDriverNotLoaded;
    case fake_script::Outcome::kMalformed:
      return kUnknown;
    case fake_script::Outcome::kRead:
      break;
  }
  if (init_error != kSuccess) return init_error;
  fresh.init_depth = s.init_depth;
  s = fresh;
  return kSuccess;
}

nvmlReturn_t Injected(const char* function, long gpu) {
  for (const Failure& failure : state.failures) {
    if (failure.function == function &&
        (failure.gpu == -1 || failure.gpu == gpu)) {
      return failure.code;
    }
  }
  return kSuccess;
}

// Common checks of the per-GPU calls; sets *gpu when they pass.
nvmlReturn_t Lookup(const char* function, nvmlDevice_t device, Gpu** gpu) {
  if (state.init_depth == 0) return kUninitialized;
  // Compared as integers: a stray pointer is not in `handles`' array.
  const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(device);
  const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(&handles[0]);
  if (address < first || address >= first + sizeof(handles) ||
      (address - first) % sizeof(handles[0]) != 0) {
    return kInvalidArgument;
  }
  const size_t index = (address - first) / sizeof(handles[0]);
  if (index >= state.gpus.size()) return kInvalidArgument;
  nvmlReturn_t rc = Injected(function, static_cast<long>(index));
  if (rc != kSuccess) return rc;
  *gpu = &state.gpus[index];
  return kSuccess;
}

nvmlReturn_t CopyString(const std::string& value, char* out,
                        unsigned int length) {
  if (out == nullptr) return kInvalidArgument;
  if (value.size() + 1 > length) return kInsufficientSize;
  std::memcpy(out, value.c_str(), value.size() + 1);
  return kSuccess;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) nvmlReturn_t nvmlInit_v2() {
  std::lock_guard<std::mutex> lock(mu);
  fake_script::Log("FAKE_NVML_LOG", "init");
  nvmlReturn_t rc = LoadScript(state);
  if (rc == kSuccess) ++state.init_depth;
  return rc;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlShutdown() {
  std::lock_guard<std::mutex> lock(mu);
  fake_script::Log("FAKE_NVML_LOG", "shutdown");
  if (state.init_depth == 0) return kUninitialized;
  --state.init_depth;
  return kSuccess;
}

__attribute__((visibility("default"))) const char* nvmlErrorString(
    nvmlReturn_t result) {
  switch (result) {
    case 0:
      return "Success";
    case 1:
      return "Uninitialized";
    case 2:
      return "Invalid Argument";
    case 3:
      return "Not Supported";
    case 4:
      return "Insufficient Permissions";
    case 5:
      return "Already Initialized";
    case 6:
      return "Not Found";
    case 7:
      return "Insufficient Size";
    case 8:
      return "Insufficient External Power";
    case 9:
      return "Driver Not Loaded";
    case 10:
      return "Timeout";
    case 11:
      return "Interrupt request issue";
    case 12:
      return "NVML Shared Library Not Found";
    case 13:
      return "Function Not Found";
    case 14:
      return "Corrupted infoROM";
    case 15:
      return "GPU is lost";
    case 16:
      return "GPU requires restart";
    case 17:
      return "Operating System Not Supported";
    case 18:
      return "RM has detected an NVML/RM version mismatch.";
    case 19:
      return "In use by another client";
    case 20:
      return "Insufficient Memory";
    case 21:
      return "No data";
    default:
      return "Unknown Error";
  }
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetCount_v2(
    unsigned int* count) {
  std::lock_guard<std::mutex> lock(mu);
  if (state.init_depth == 0) return kUninitialized;
  if (count == nullptr) return kInvalidArgument;
  nvmlReturn_t rc = Injected("nvmlDeviceGetCount_v2", -1);
  if (rc != kSuccess) return rc;
  *count = static_cast<unsigned int>(state.gpus.size());
  return kSuccess;
}

__attribute__((visibility("default"))) nvmlReturn_t
nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  std::lock_guard<std::mutex> lock(mu);
  if (state.init_depth == 0) return kUninitialized;
  if (device == nullptr || index >= state.gpus.size()) return kInvalidArgument;
  nvmlReturn_t rc = Injected("nvmlDeviceGetHandleByIndex_v2", index);
  if (rc != kSuccess) return rc;
  handles[index].index = index;
  *device = &handles[index];
  return kSuccess;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetName(
    nvmlDevice_t device, char* name, unsigned int length) {
  std::lock_guard<std::mutex> lock(mu);
  Gpu* gpu = nullptr;
  nvmlReturn_t rc = Lookup("nvmlDeviceGetName", device, &gpu);
  if (rc != kSuccess) return rc;
  return CopyString(gpu->name, name, length);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetUUID(
    nvmlDevice_t device, char* uuid, unsigned int length) {
  std::lock_guard<std::mutex> lock(mu);
  Gpu* gpu = nullptr;
  nvmlReturn_t rc = Lookup("nvmlDeviceGetUUID", device, &gpu);
  if (rc != kSuccess) return rc;
  return CopyString(gpu->uuid, uuid, length);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMemoryInfo(
    nvmlDevice_t device, nvmlMemory_t* memory) {
  std::lock_guard<std::mutex> lock(mu);
  Gpu* gpu = nullptr;
  nvmlReturn_t rc = Lookup("nvmlDeviceGetMemoryInfo", device, &gpu);
  if (rc != kSuccess) return rc;
  if (memory == nullptr) return kInvalidArgument;
  const unsigned long long used =
      gpu->memory_used[gpu->memory_used_cursor++ % gpu->memory_used.size()];
  memory->total = gpu->memory_total;
  memory->used = used;
  memory->free = gpu->memory_total - used;
  return kSuccess;
}

__attribute__((visibility("default"))) nvmlReturn_t
nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                              nvmlUtilization_t* utilization) {
  std::lock_guard<std::mutex> lock(mu);
  Gpu* gpu = nullptr;
  nvmlReturn_t rc = Lookup("nvmlDeviceGetUtilizationRates", device, &gpu);
  if (rc != kSuccess) return rc;
  if (utilization == nullptr) return kInvalidArgument;
  utilization->gpu = static_cast<unsigned int>(
      gpu->utilization[gpu->utilization_cursor++ % gpu->utilization.size()]);
  utilization->memory = 0;
  return kSuccess;
}

__attribute__((visibility("default"))) nvmlReturn_t
nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device,
                                    unsigned long long* energy) {
  std::lock_guard<std::mutex> lock(mu);
  Gpu* gpu = nullptr;
  nvmlReturn_t rc = Lookup("nvmlDeviceGetTotalEnergyConsumption", device, &gpu);
  if (rc != kSuccess) return rc;
  if (!gpu->energy_supported) return kNotSupported;
  if (energy == nullptr) return kInvalidArgument;
  *energy = gpu->energy_start + gpu->energy_reads++ * gpu->energy_step;
  return kSuccess;
}

__attribute__((visibility("default"))) nvmlReturn_t
nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                        unsigned int* count,
                                        nvmlProcessInfo_t* infos) {
  std::lock_guard<std::mutex> lock(mu);
  Gpu* gpu = nullptr;
  nvmlReturn_t rc =
      Lookup("nvmlDeviceGetComputeRunningProcesses_v3", device, &gpu);
  if (rc != kSuccess) return rc;
  if (!gpu->processes_supported) return kNotSupported;
  if (count == nullptr) return kInvalidArgument;
  const unsigned int needed = static_cast<unsigned int>(gpu->pids.size());
  if (*count < needed) {
    *count = needed;
    return kInsufficientSize;
  }
  if (needed > 0 && infos == nullptr) return kInvalidArgument;
  for (unsigned int i = 0; i < needed; ++i) {
    infos[i].pid = gpu->pids[i];
    infos[i].usedGpuMemory = 1ULL << 30;
    infos[i].gpuInstanceId = 0xFFFFFFFFu;
    infos[i].computeInstanceId = 0xFFFFFFFFu;
  }
  *count = needed;
  return kSuccess;
}

}  // extern "C"
