// The part of NVIDIA's nvml.h the agent uses, with the driver's ABI and
// nvml.h's names, declared once for the loader (agent/nvml.cc) and the fake
// library the tests build (tests/agent/fake_nvml.cc). Header only, no
// dependencies.
//
// The structs sit at global scope under nvml.h's tags, not in an anonymous
// namespace, because clang's -fsanitize=function checks every call through
// a pointer against the callee's type by name.
#ifndef COMPUTEVOUCHER_AGENT_INTERNAL_NVML_ABI_H_
#define COMPUTEVOUCHER_AGENT_INTERNAL_NVML_ABI_H_

extern "C" {

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st* nvmlDevice_t;

typedef struct nvmlUtilization_st {
  unsigned int gpu;
  unsigned int memory;
} nvmlUtilization_t;

typedef struct nvmlMemory_st {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;

typedef struct nvmlProcessInfo_st {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
} nvmlProcessInfo_t;

}  // extern "C"

#endif  // COMPUTEVOUCHER_AGENT_INTERNAL_NVML_ABI_H_
