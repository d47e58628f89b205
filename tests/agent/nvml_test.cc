#include "agent/nvml.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/fake_library_test.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::agent {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Runs Nvml against tests/agent/fake_nvml.cc, built as
// $CV_BUILD_DIR/fake-nvml/libnvidia-ml.so.1.
class NvmlTest : public FakeLibraryTest {
 protected:
  NvmlTest()
      : FakeLibraryTest({"fake-nvml/libnvidia-ml.so.1", "fake_nvml",
                         "FAKE_NVML_SCRIPT", "FAKE_NVML_LOG"}) {}
};

constexpr char kTwoGpus[] =
    "# Two GPUs.\n"
    "gpu 0 name=\"NVIDIA H100 80GB HBM3\" "
    "uuid=GPU-11111111-2222-3333-4444-555555555555 memory_total=85899345920\n"
    "gpu 1 name=\"NVIDIA A100-SXM4-40GB\" "
    "uuid=GPU-66666666-7777-8888-9999-000000000000 memory_total=42949672960\n";

TEST_F(NvmlTest, DevicesListsEveryGpu) {
  UseScript(kTwoGpus);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
  ASSERT_OK_AND_ASSIGN(std::vector<GpuDevice> devices, nvml->Devices());
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].index, 0);
  EXPECT_EQ(devices[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(devices[0].uuid, "GPU-11111111-2222-3333-4444-555555555555");
  EXPECT_EQ(devices[0].memory_total_bytes, 85899345920);
  EXPECT_EQ(devices[1].index, 1);
  EXPECT_EQ(devices[1].name, "NVIDIA A100-SXM4-40GB");
  EXPECT_EQ(devices[1].uuid, "GPU-66666666-7777-8888-9999-000000000000");
  EXPECT_EQ(devices[1].memory_total_bytes, 42949672960);
}

TEST_F(NvmlTest, DevicesOfAMachineWithoutGpusIsEmpty) {
  UseScript("# no GPUs\n");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
  ASSERT_OK_AND_ASSIGN(std::vector<GpuDevice> devices, nvml->Devices());
  EXPECT_THAT(devices, IsEmpty());
  EXPECT_THAT(nvml->Read(0), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("no GPUs, got 0")));
}

TEST_F(NvmlTest, ReadReportsUtilizationInBasisPointsAndMemoryUsed) {
  UseScript(absl::StrCat(kTwoGpus,
                         "utilization 1 35,40,100\n"
                         "memory_used 1 1000,2000\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
  std::vector<int32_t> utilization_bp;
  std::vector<int64_t> memory_used_bytes;
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(GpuReading reading, nvml->Read(1));
    utilization_bp.push_back(reading.utilization_bp);
    memory_used_bytes.push_back(reading.memory_used_bytes);
  }
  EXPECT_THAT(utilization_bp, ElementsAre(3500, 4000, 10000, 3500));
  EXPECT_THAT(memory_used_bytes, ElementsAre(1000, 2000, 1000, 2000));

  ASSERT_OK_AND_ASSIGN(GpuReading idle, nvml->Read(0));
  EXPECT_EQ(idle.utilization_bp, 0);
  EXPECT_EQ(idle.memory_used_bytes, 0);
}

TEST_F(NvmlTest, EnergyIncreasesBetweenReads) {
  UseScript(absl::StrCat(kTwoGpus, "energy 0 start=5000000 step=700000\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
  ASSERT_OK_AND_ASSIGN(GpuReading first, nvml->Read(0));
  ASSERT_OK_AND_ASSIGN(GpuReading second, nvml->Read(0));
  EXPECT_TRUE(first.energy_supported);
  EXPECT_TRUE(second.energy_supported);
  EXPECT_EQ(first.energy_mj, 5000000u);
  EXPECT_EQ(second.energy_mj, 5700000u);
}

TEST_F(NvmlTest, UnsupportedEnergyIsNotAnError) {
  UseScript(absl::StrCat(kTwoGpus, "energy 1 unsupported\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
  ASSERT_OK_AND_ASSIGN(GpuReading reading, nvml->Read(1));
  EXPECT_FALSE(reading.energy_supported);
  EXPECT_EQ(reading.energy_mj, 0u);
}

TEST_F(NvmlTest, ReadListsComputePids) {
  UseScript(absl::StrCat(kTwoGpus, "processes 0 1234,5678\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
  ASSERT_OK_AND_ASSIGN(GpuReading busy, nvml->Read(0));
  EXPECT_THAT(busy.compute_pids, ElementsAre(1234u, 5678u));
  ASSERT_OK_AND_ASSIGN(GpuReading idle, nvml->Read(1));
  EXPECT_THAT(idle.compute_pids, IsEmpty());
}

TEST_F(NvmlTest, ReadListsMoreProcessesThanTheFirstBufferHolds) {
  for (int count : {31, 32, 33, 40, 100, 1000}) {
    SCOPED_TRACE(absl::StrCat(count, " processes"));
    std::vector<uint32_t> pids;
    for (int i = 0; i < count; ++i) pids.push_back(1000 + 7 * i);
    UseScript(
        absl::StrCat(kTwoGpus, "processes 1 ", absl::StrJoin(pids, ","), "\n"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
    ASSERT_OK_AND_ASSIGN(GpuReading reading, nvml->Read(1));
    EXPECT_EQ(reading.compute_pids, pids);
  }
}

TEST_F(NvmlTest, UnsupportedProcessListIsEmpty) {
  UseScript(absl::StrCat(kTwoGpus, "processes 0 unsupported\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
  ASSERT_OK_AND_ASSIGN(GpuReading reading, nvml->Read(0));
  EXPECT_THAT(reading.compute_pids, IsEmpty());
}

TEST_F(NvmlTest, ReadOutOfRangeIsInvalidArgument) {
  UseScript(kTwoGpus);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
  for (int index : {-1, 2, 1000}) {
    EXPECT_THAT(nvml->Read(index),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("must be 0..1, got ", index))))
        << index;
  }
}

TEST_F(NvmlTest, FailingCallIsInternalNamingFunctionAndGpu) {
  struct Case {
    std::string fault;
    int index;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"fail nvmlDeviceGetMemoryInfo 1 15", 1,
       "nvml: nvmlDeviceGetMemoryInfo(gpu 1): GPU is lost"},
      {"fail nvmlDeviceGetUtilizationRates * 999", 0,
       "nvml: nvmlDeviceGetUtilizationRates(gpu 0): Unknown Error"},
      {"fail nvmlDeviceGetTotalEnergyConsumption 0 4", 0,
       "nvml: nvmlDeviceGetTotalEnergyConsumption(gpu 0): Insufficient "
       "Permissions"},
      {"fail nvmlDeviceGetComputeRunningProcesses_v3 0 15", 0,
       "nvml: nvmlDeviceGetComputeRunningProcesses_v3(gpu 0): GPU is lost"},
      {"fail nvmlDeviceGetHandleByIndex_v2 1 15", 1,
       "nvml: nvmlDeviceGetHandleByIndex_v2(gpu 1): GPU is lost"},
      {"fail nvmlDeviceGetCount_v2 * 999", 0,
       "nvml: nvmlDeviceGetCount_v2: Unknown Error"},
  };
  for (const Case& c : cases) {
    UseScript(absl::StrCat(kTwoGpus, c.fault, "\n"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
    EXPECT_THAT(nvml->Read(c.index),
                StatusIs(absl::StatusCode::kInternal, c.message))
        << c.fault;
  }
}

TEST_F(NvmlTest, FailingDiscoveryIsInternal) {
  UseScript(absl::StrCat(kTwoGpus, "fail nvmlDeviceGetUUID 1 15\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
  EXPECT_THAT(nvml->Devices(),
              StatusIs(absl::StatusCode::kInternal,
                       "nvml: nvmlDeviceGetUUID(gpu 1): GPU is lost"));
}

TEST_F(NvmlTest, InitFailureIsUnavailable) {
  UseScript(absl::StrCat(kTwoGpus, "init_error 9\n"));
  EXPECT_THAT(Nvml::Load(library_),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("nvmlInit_v2"),
                             HasSubstr("Driver Not Loaded"))));
}

TEST_F(NvmlTest, InitWithoutDriverIsUnavailable) {
  // No FAKE_NVML_SCRIPT: the fake behaves like a library without a driver.
  EXPECT_THAT(Nvml::Load(library_), StatusIs(absl::StatusCode::kUnavailable,
                                             HasSubstr("Driver Not Loaded")));
}

TEST_F(NvmlTest, MissingLibraryIsFailedPrecondition) {
  const std::string missing = dir_ + "/libnvidia-ml.so.1";
  EXPECT_THAT(Nvml::Load(missing),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("cannot load " + missing),
                             HasSubstr("NVIDIA driver"),
                             HasSubstr("--telemetry simulated"))));
}

TEST_F(NvmlTest, LibraryWithoutNvmlIsFailedPrecondition) {
  EXPECT_THAT(
      Nvml::Load("libm.so.6"),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("libm.so.6"), HasSubstr("nvmlInit_v2"))));
}

TEST_F(NvmlTest, DestructorShutsNvmlDown) {
  UseScript(kTwoGpus);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
    EXPECT_EQ(Log(), "init\n");
  }
  EXPECT_EQ(Log(), "init\nshutdown\n");
}

TEST_F(NvmlTest, LoadsAgainAfterUnloading) {
  UseScript(absl::StrCat(kTwoGpus, "energy 0 start=10 step=5\n"));
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> nvml, Nvml::Load(library_));
    ASSERT_OK_AND_ASSIGN(GpuReading reading, nvml->Read(0));
    EXPECT_EQ(reading.energy_mj, 10u) << "load " << i;
  }
  EXPECT_EQ(Log(), "init\nshutdown\ninit\nshutdown\n");
}

TEST_F(NvmlTest, TwoLoadsShareTheLibrary) {
  UseScript(kTwoGpus);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> first, Nvml::Load(library_));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Nvml> second, Nvml::Load(library_));
  first.reset();
  // NVML counts nvmlInit_v2 calls; the second holder still works.
  EXPECT_THAT(second->Read(1), IsOk());
}

}  // namespace
}  // namespace computevoucher::agent
