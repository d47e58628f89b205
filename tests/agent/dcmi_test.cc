#include "agent/dcmi.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/gpus.h"
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

// Runs Dcmi against tests/agent/fake_dcmi.cc, built as
// $CV_BUILD_DIR/fake-dcmi/libdcmi.so (and as two other drivers beside it).
class DcmiTest : public FakeLibraryTest {
 protected:
  DcmiTest()
      : FakeLibraryTest({"fake-dcmi/libdcmi.so", "fake_dcmi",
                         "FAKE_DCMI_SCRIPT", "FAKE_DCMI_LOG"}) {}
};

// Two cards listed 3 then 1, card 3 with two NPUs: indices 0 (3:0), 1 (3:1)
// and 2 (1:0).
constexpr char kThreeNpus[] =
    "# Three NPUs on two cards.\n"
    "npu 3:0 chip_name=910B3 hbm_total=65536\n"
    "npu 3:1 chip_name=910B3 hbm_total=65536\n"
    "npu 1:0 chip_name=910B4 hbm_total=32768\n";

constexpr int64_t kMiB = int64_t{1} << 20;

TEST_F(DcmiTest, DevicesListsEveryNpuCardByCard) {
  UseScript(absl::StrCat(kThreeNpus,
                         "npu 1:1 chip_type=\"\" chip_name=Ascend910B\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Dcmi> dcmi, Dcmi::Load(library_));
  ASSERT_OK_AND_ASSIGN(std::vector<GpuDevice> devices, dcmi->Devices());
  ASSERT_EQ(devices.size(), 4u);
  const std::vector<std::string> names = {"Ascend 910B3", "Ascend 910B3",
                                          "Ascend 910B4", "Ascend910B"};
  const std::vector<int64_t> memory = {64 * 1024 * kMiB, 64 * 1024 * kMiB,
                                       32 * 1024 * kMiB, 64 * 1024 * kMiB};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(devices[i].index, i);
    EXPECT_EQ(devices[i].name, names[i]) << i;
    EXPECT_EQ(devices[i].memory_total_bytes, memory[i]) << i;
    EXPECT_EQ(devices[i].uuid, "") << i;
  }
}

TEST_F(DcmiTest, ReadAddressesTheCardAndDeviceOfTheIndex) {
  UseScript(absl::StrCat(kThreeNpus,
                         "utilization 3:0 10\n"
                         "utilization 3:1 20\n"
                         "utilization 1:0 30\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Dcmi> dcmi, Dcmi::Load(library_));
  std::vector<int32_t> utilization_bp;
  for (int index : {0, 1, 2}) {
    ASSERT_OK_AND_ASSIGN(DcmiReading npu, dcmi->Read(index));
    utilization_bp.push_back(npu.reading.utilization_bp);
  }
  EXPECT_THAT(utilization_bp, ElementsAre(1000, 2000, 3000));
}

TEST_F(DcmiTest, ReadReportsBasisPointsBytesAndMilliwatts) {
  UseScript(absl::StrCat(kThreeNpus,
                         "utilization 3:1 35,0,100\n"
                         "hbm_used 3:1 1000,65536\n"
                         "power 3:1 1234,3105\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Dcmi> dcmi, Dcmi::Load(library_));
  std::vector<int32_t> utilization_bp;
  std::vector<int64_t> memory_used_bytes;
  std::vector<int64_t> power_mw;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(DcmiReading npu, dcmi->Read(1));
    utilization_bp.push_back(npu.reading.utilization_bp);
    memory_used_bytes.push_back(npu.reading.memory_used_bytes);
    power_mw.push_back(npu.power_mw);
    EXPECT_FALSE(npu.reading.energy_supported);
    EXPECT_THAT(npu.reading.compute_pids, IsEmpty());
  }
  EXPECT_THAT(utilization_bp, ElementsAre(3500, 0, 10000));
  EXPECT_THAT(memory_used_bytes,
              ElementsAre(1000 * kMiB, 65536 * kMiB, 1000 * kMiB));
  EXPECT_THAT(power_mw, ElementsAre(123'400, 310'500, 123'400));

  ASSERT_OK_AND_ASSIGN(DcmiReading idle, dcmi->Read(0));
  EXPECT_EQ(idle.reading.utilization_bp, 0);
  EXPECT_EQ(idle.reading.memory_used_bytes, 0);
  EXPECT_EQ(idle.power_mw, 0);
}

TEST_F(DcmiTest, ReadOutOfRangeIsInvalidArgument) {
  UseScript(kThreeNpus);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Dcmi> dcmi, Dcmi::Load(library_));
  for (int index : {-1, 3, 1000}) {
    EXPECT_THAT(dcmi->Read(index),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("must be 0..2, got ", index))))
        << index;
  }
}

TEST_F(DcmiTest, MachineWithoutNpusListsNone) {
  UseScript("# no NPUs\n");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Dcmi> dcmi, Dcmi::Load(library_));
  ASSERT_OK_AND_ASSIGN(std::vector<GpuDevice> devices, dcmi->Devices());
  EXPECT_THAT(devices, IsEmpty());
  EXPECT_THAT(dcmi->Read(0), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("no NPUs, got 0")));
}

TEST_F(DcmiTest, FailingReadIsInternalNamingFunctionNpuAndCode) {
  struct Case {
    std::string fault;
    int index;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"fail dcmi_get_device_power_info 1:0 -8008", 2,
       "dcmi: dcmi_get_device_power_info(npu 2: card 1, device 0): error "
       "-8008 (device does not exist)"},
      {"fail dcmi_get_device_utilization_rate * -8005", 0,
       "dcmi: dcmi_get_device_utilization_rate(npu 0: card 3, device 0): "
       "error -8005 (internal error)"},
      {"fail dcmi_get_device_hbm_info 3 -8255", 1,
       "dcmi: dcmi_get_device_hbm_info(npu 1: card 3, device 1): error -8255 "
       "(not supported)"},
      {"fail dcmi_get_device_power_info 3:1 -8100", 1,
       "dcmi: dcmi_get_device_power_info(npu 1: card 3, device 1): error "
       "-8100"},
  };
  for (const Case& c : cases) {
    UseScript(absl::StrCat(kThreeNpus, c.fault, "\n"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Dcmi> dcmi, Dcmi::Load(library_));
    EXPECT_THAT(dcmi->Read(c.index),
                StatusIs(absl::StatusCode::kInternal, c.message))
        << c.fault;
  }
}

TEST_F(DcmiTest, FailingDiscoveryIsInternal) {
  UseScript(
      absl::StrCat(kThreeNpus, "fail dcmi_get_device_chip_info 3:1 -8007\n"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Dcmi> dcmi, Dcmi::Load(library_));
  EXPECT_THAT(dcmi->Devices(),
              StatusIs(absl::StatusCode::kInternal,
                       "dcmi: dcmi_get_device_chip_info(npu 1: card 3, device "
                       "1): error -8007 (invalid device id)"));

  UseScript(absl::StrCat(kThreeNpus, "fail dcmi_get_card_list * -8005\n"));
  EXPECT_THAT(Dcmi::Load(library_),
              StatusIs(absl::StatusCode::kInternal,
                       "dcmi: dcmi_get_card_list: error -8005 (internal "
                       "error)"));

  UseScript(
      absl::StrCat(kThreeNpus, "fail dcmi_get_device_num_in_card 1 -8009\n"));
  EXPECT_THAT(Dcmi::Load(library_),
              StatusIs(absl::StatusCode::kInternal,
                       "dcmi: dcmi_get_device_num_in_card(card 1): error "
                       "-8009 (ioctl failed)"));
}

TEST_F(DcmiTest, InitFailureIsUnavailable) {
  UseScript(absl::StrCat(kThreeNpus, "init_error -8012\n"));
  EXPECT_THAT(Dcmi::Load(library_),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("dcmi_init"), HasSubstr(library_),
                             HasSubstr("error -8012 (not ready)"))));
}

TEST_F(DcmiTest, InitWithoutDriverIsUnavailable) {
  // No FAKE_DCMI_SCRIPT: the fake behaves like a library without a driver.
  EXPECT_THAT(Dcmi::Load(library_),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("dcmi_init")));
}

TEST_F(DcmiTest, MissingLibraryIsFailedPrecondition) {
  const std::string missing = dir_ + "/libdcmi.so";
  EXPECT_THAT(
      Dcmi::Load(missing),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("cannot load " + missing),
                     HasSubstr("Ascend driver"), HasSubstr("--dcmi-library"))));
}

TEST_F(DcmiTest, LibraryWithoutDcmiIsFailedPrecondition) {
  EXPECT_THAT(Dcmi::Load("libm.so.6"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("libm.so.6"), HasSubstr("dcmi_init"))));
}

TEST_F(DcmiTest, MissingFunctionIsFailedPrecondition) {
  UseScript(kThreeNpus);
  const std::string without_power = BuildPath("fake-dcmi-no-power/libdcmi.so");
  EXPECT_THAT(Dcmi::Load(without_power),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(without_power),
                             HasSubstr("has no function "
                                       "dcmi_get_device_power_info"))));
  // It stopped before dcmi_init.
  EXPECT_EQ(Log(), "");
}

TEST_F(DcmiTest, ListsCardsWithTheV2FunctionOrElseTheV1One) {
  // A failing V1 function shows which one Load called.
  UseScript(absl::StrCat(kThreeNpus, "fail dcmi_get_card_num_list * -8005\n"));
  EXPECT_THAT(Dcmi::Load(library_), IsOk());
  const std::string v1_only = BuildPath("fake-dcmi-v1/libdcmi.so");
  EXPECT_THAT(Dcmi::Load(v1_only),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("dcmi_get_card_num_list: error -8005")));

  UseScript(kThreeNpus);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Dcmi> dcmi, Dcmi::Load(v1_only));
  ASSERT_OK_AND_ASSIGN(std::vector<GpuDevice> devices, dcmi->Devices());
  EXPECT_EQ(devices.size(), 3u);
}

TEST_F(DcmiTest, EveryLoadInitialisesDcmi) {
  UseScript(absl::StrCat(kThreeNpus, "power 1:0 10,20\n"));
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Dcmi> dcmi, Dcmi::Load(library_));
    ASSERT_OK_AND_ASSIGN(DcmiReading npu, dcmi->Read(2));
    EXPECT_EQ(npu.power_mw, 1000) << "load " << i;
  }
  EXPECT_EQ(Log(), "init\ninit\n");
}

// NewDcmiGpus over the fake.
class DcmiGpusTest : public DcmiTest {
 protected:
  // The NPUs of the script, matched to `inventory_text`.
  absl::StatusOr<std::unique_ptr<GpuSource>> Discover(
      const std::string& script, const std::string& inventory_text) {
    UseScript(script);
    absl::StatusOr<std::vector<pb::GpuModel>> parsed =
        ParseInventory(inventory_text);
    if (!parsed.ok()) return parsed.status();
    inventory_ = *std::move(parsed);
    absl::StatusOr<std::unique_ptr<Dcmi>> dcmi = Dcmi::Load(library_);
    if (!dcmi.ok()) return dcmi.status();
    return NewDcmiGpus(*std::move(dcmi), inventory_);
  }

  std::vector<pb::GpuModel> inventory_;
};

TEST_F(DcmiGpusTest, MatchesChipNamesToTheLongestModel) {
  struct Case {
    std::string npu;
    std::string inventory;
    std::string model;  // Empty: no match.
  };
  const std::vector<Case> cases = {
      {"chip_name=910B3", "1x910B:domestic", "910B"},
      {"chip_name=910B3", "1x910B:domestic,1x910B3:domestic", "910B3"},
      {"chip_name=910B3", "1x910:domestic,1x910B:domestic", "910B"},
      {"chip_name=910B3", "1xAscend:domestic", "Ascend"},
      {"chip_type=\"\" chip_name=Ascend910B", "1x910B:domestic", "910B"},
      {"chip_type=\"\" chip_name=Ascend910B", "1xAscend910B:domestic",
       "Ascend910B"},
      {"chip_name=910B3", "1x10B:domestic", ""},
      {"chip_name=910B3", "1x910B4:domestic", ""},
      {"chip_name=310P3", "1x910B:domestic", ""},
  };
  for (const Case& c : cases) {
    const std::string script = absl::StrCat("npu 0:0 ", c.npu, "\n");
    absl::StatusOr<std::unique_ptr<GpuSource>> gpus =
        Discover(script, c.inventory);
    if (c.model.empty()) {
      EXPECT_THAT(gpus, StatusIs(absl::StatusCode::kFailedPrecondition,
                                 HasSubstr("matches no inventory model")))
          << c.npu << " with " << c.inventory;
      continue;
    }
    ASSERT_THAT(gpus, IsOk()) << c.npu << " with " << c.inventory;
    ASSERT_EQ((*gpus)->slots().size(), 1u);
    EXPECT_EQ((*gpus)->slots()[0].model, c.model)
        << c.npu << " with " << c.inventory;
  }
}

TEST_F(DcmiGpusTest, CountsWhatItFindsAndDropsModelsItDoesNot) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<GpuSource> gpus,
      Discover(kThreeNpus, "8x910B:domestic,4xH100:other,2x910B4:domestic"));
  ASSERT_EQ(gpus->slots().size(), 3u);
  std::vector<std::string> models;
  for (size_t i = 0; i < gpus->slots().size(); ++i) {
    EXPECT_EQ(gpus->slots()[i].index, static_cast<int>(i));
    models.push_back(gpus->slots()[i].model);
  }
  EXPECT_THAT(models, ElementsAre("910B", "910B", "910B4"));
  ASSERT_EQ(inventory_.size(), 2u);
  EXPECT_EQ(inventory_[0].model(), "910B");
  EXPECT_EQ(inventory_[0].gpu_count(), 2);
  EXPECT_EQ(inventory_[1].model(), "910B4");
  EXPECT_EQ(inventory_[1].gpu_count(), 1);
}

TEST_F(DcmiGpusTest, NpuMatchingNoModelIsFailedPrecondition) {
  EXPECT_THAT(
      Discover("npu 0:0\nnpu 0:1 chip_name=310P3\n", "1x910B:domestic"),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("dcmi: NPU 1 \"Ascend 310P3\" matches no "
                               "inventory model"),
                     HasSubstr("--inventory 1x<MODEL>:domestic"))));
}

TEST_F(DcmiGpusTest, NodeWithoutNpusIsFailedPrecondition) {
  EXPECT_THAT(Discover("# none\n", "1x910B:domestic"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "dcmi: the node has no NPU"));
}

TEST_F(DcmiGpusTest, IntegratesPowerIntoEnergyOverTheTimesOfReads) {
  // 100 W, 300 W, 300 W, 0 W at 0 s, 1 s, 3 s, 3.5 s: 200 J, then 600 J,
  // then 75 J.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<GpuSource> gpus,
                       Discover(absl::StrCat(kThreeNpus,
                                             "power 3:0 1000,3000,3000,0\n"
                                             "utilization 3:0 50\n"
                                             "hbm_used 3:0 2048\n"),
                                "1x910B:domestic"));
  const absl::Time start = absl::FromUnixSeconds(1'800'000'000);
  const std::vector<absl::Duration> times = {absl::ZeroDuration(),
                                             absl::Seconds(1), absl::Seconds(3),
                                             absl::Milliseconds(3500)};
  std::vector<uint64_t> energy_mj;
  for (absl::Duration t : times) {
    ASSERT_OK_AND_ASSIGN(GpuReading reading, gpus->Read(0, start + t));
    EXPECT_TRUE(reading.energy_supported);
    EXPECT_EQ(reading.utilization_bp, 5000);
    energy_mj.push_back(reading.energy_mj);
  }
  EXPECT_THAT(energy_mj, ElementsAre(0, 200'000, 800'000, 875'000));

  // Each NPU counts from its own first read.
  ASSERT_OK_AND_ASSIGN(GpuReading other, gpus->Read(2, start + absl::Hours(1)));
  EXPECT_TRUE(other.energy_supported);
  EXPECT_EQ(other.energy_mj, 0u);
}

TEST_F(DcmiGpusTest, EnergyCarriesPartMillisecondsAndIgnoresTimeGoingBack) {
  // A constant 1000 W: 1 J a millisecond.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<GpuSource> gpus,
                       Discover(absl::StrCat(kThreeNpus, "power 1:0 10000\n"),
                                "1x910B:domestic"));
  const absl::Time start = absl::FromUnixSeconds(1'800'000'000);
  const std::vector<absl::Duration> times = {
      absl::ZeroDuration(),    absl::Microseconds(400),
      absl::Microseconds(800), absl::Microseconds(1200),
      absl::ZeroDuration(),    absl::Microseconds(2200),
      absl::Microseconds(2200)};
  std::vector<uint64_t> energy_mj;
  for (absl::Duration t : times) {
    ASSERT_OK_AND_ASSIGN(GpuReading reading, gpus->Read(2, start + t));
    energy_mj.push_back(reading.energy_mj);
  }
  EXPECT_THAT(energy_mj, ElementsAre(0, 0, 0, 1000, 1000, 2000, 2000));
}

TEST_F(DcmiGpusTest, ReadErrorsPassThrough) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<GpuSource> gpus,
      Discover(absl::StrCat(kThreeNpus,
                            "fail dcmi_get_device_power_info 3:1 -8008\n"),
               "1x910B:domestic"));
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  EXPECT_THAT(gpus->Read(1, now),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("dcmi_get_device_power_info(npu 1")));
  EXPECT_THAT(gpus->Read(3, now), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("must be 0..2, got 3")));
  EXPECT_THAT(gpus->Read(0, now), IsOk());
}

}  // namespace
}  // namespace computevoucher::agent
