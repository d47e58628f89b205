#include "agent/dcmi.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/internal/dcmi_abi.h"
#include "agent/internal/shared_library.h"
#include "common/status_macros.h"

namespace computevoucher::agent {
namespace {

namespace abi = dcmi_abi;

// DCMI has no error-string function; the meaning of the codes of
// dcmi_interface_api.h that a read can meet.
struct CodeName {
  int code;
  const char* name;
};
constexpr CodeName kCodeNames[] = {
    {-8001, "invalid parameter"},
    {-8002, "operation not permitted"},
    {-8003, "memory operation failed"},
    {-8004, "secure function failed"},
    {-8005, "internal error"},
    {-8006, "timed out"},
    {-8007, "invalid device id"},
    {-8008, "device does not exist"},
    {-8009, "ioctl failed"},
    {-8010, "sending a message failed"},
    {-8011, "receiving a message failed"},
    {-8012, "not ready"},
    {-8013, "not supported in a container"},
    {-8014, "file operation failed"},
    {-8015, "reset failed"},
    {-8016, "operation aborted"},
    {-8017, "upgrading"},
    {-8020, "resource occupied"},
    {-8255, "not supported"},
};

// "error -8008 (device does not exist)".
std::string DescribeCode(int code) {
  for (const CodeName& c : kCodeNames) {
    if (c.code == code) return absl::StrFormat("error %d (%s)", code, c.name);
  }
  return absl::StrFormat("error %d", code);
}

// A NUL-padded chip_info field as a string.
std::string ChipString(const unsigned char (&field)[abi::kMaxChipNameLen]) {
  const char* text = reinterpret_cast<const char*>(field);
  return std::string(text, strnlen(text, sizeof(field)));
}

constexpr int64_t kBytesPerMb = int64_t{1} << 20;

}  // namespace

struct Dcmi::Api {
  decltype(&::dcmi_init) init = nullptr;
  decltype(&::dcmi_get_card_list) get_card_list = nullptr;
  decltype(&::dcmi_get_device_num_in_card) get_device_num_in_card = nullptr;
  decltype(&::dcmi_get_device_chip_info) get_device_chip_info = nullptr;
  decltype(&::dcmi_get_device_utilization_rate) get_device_utilization_rate =
      nullptr;
  decltype(&::dcmi_get_device_hbm_info) get_device_hbm_info = nullptr;
  decltype(&::dcmi_get_device_power_info) get_device_power_info = nullptr;
  // Which of the two names get_card_list was found under.
  const char* card_list_name = "dcmi_get_card_list";

  absl::Status ResolveAll(const SharedLibrary& library) {
    RETURN_IF_ERROR(library.Resolve("dcmi_init", init));
    if (!library.Resolve(card_list_name, get_card_list).ok()) {
      card_list_name = "dcmi_get_card_num_list";
      RETURN_IF_ERROR(library.Resolve(card_list_name, get_card_list));
    }
    RETURN_IF_ERROR(
        library.Resolve("dcmi_get_device_num_in_card", get_device_num_in_card));
    RETURN_IF_ERROR(
        library.Resolve("dcmi_get_device_chip_info", get_device_chip_info));
    RETURN_IF_ERROR(library.Resolve("dcmi_get_device_utilization_rate",
                                    get_device_utilization_rate));
    RETURN_IF_ERROR(
        library.Resolve("dcmi_get_device_hbm_info", get_device_hbm_info));
    RETURN_IF_ERROR(
        library.Resolve("dcmi_get_device_power_info", get_device_power_info));
    return absl::OkStatus();
  }

  // Every NPU, cards in DCMI's order and devices in order within a card.
  absl::StatusOr<std::vector<Npu>> ListNpus() const {
    int card_num = 0;
    int cards[abi::kMaxCards] = {};
    int rc = get_card_list(&card_num, cards, abi::kMaxCards);
    if (rc != abi::kOk) {
      return absl::InternalError(
          absl::StrFormat("dcmi: %s: %s", card_list_name, DescribeCode(rc)));
    }
    if (card_num < 0 || card_num > abi::kMaxCards) {
      return absl::InternalError(
          absl::StrFormat("dcmi: %s: card count must be 0..%d, got %d",
                          card_list_name, abi::kMaxCards, card_num));
    }
    std::vector<Npu> npus;
    for (int i = 0; i < card_num; ++i) {
      int device_num = 0;
      rc = get_device_num_in_card(cards[i], &device_num);
      if (rc != abi::kOk) {
        return absl::InternalError(
            absl::StrFormat("dcmi: dcmi_get_device_num_in_card(card %d): %s",
                            cards[i], DescribeCode(rc)));
      }
      if (device_num < 0) {
        return absl::InternalError(absl::StrFormat(
            "dcmi: dcmi_get_device_num_in_card(card %d): device count must "
            "not be negative, got %d",
            cards[i], device_num));
      }
      for (int device = 0; device < device_num; ++device) {
        npus.push_back({cards[i], device});
      }
    }
    return npus;
  }
};

Dcmi::Dcmi(std::unique_ptr<Api> api, std::vector<Npu> npus)
    : api_(std::move(api)), npus_(std::move(npus)) {}

Dcmi::~Dcmi() = default;

absl::StatusOr<std::unique_ptr<Dcmi>> Dcmi::Load(const std::string& library) {
  ASSIGN_OR_RETURN(
      SharedLibrary opened,
      SharedLibrary::Open(
          library,
          {"dcmi",
           "is the Ascend driver installed? the dcmi telemetry needs it; use "
           "--dcmi-library to name it, or another --telemetry",
           "driver too old, or not DCMI?"}));
  auto api = std::make_unique<Api>();
  RETURN_IF_ERROR(api->ResolveAll(opened));
  const int rc = api->init();
  if (rc != abi::kOk) {
    return absl::UnavailableError(
        absl::StrFormat("dcmi: dcmi_init (%s): %s", library, DescribeCode(rc)));
  }
  // dcmi_init has set up state in the library that nothing tears down.
  opened.Release();
  ASSIGN_OR_RETURN(std::vector<Npu> npus, api->ListNpus());
  return std::unique_ptr<Dcmi>(new Dcmi(std::move(api), std::move(npus)));
}

absl::Status Dcmi::CallError(const char* function, int index, int code) const {
  const Npu& npu = npus_[index];
  return absl::InternalError(
      absl::StrFormat("dcmi: %s(npu %d: card %d, device %d): %s", function,
                      index, npu.card_id, npu.device_id, DescribeCode(code)));
}

absl::StatusOr<std::vector<GpuDevice>> Dcmi::Devices() {
  std::vector<GpuDevice> devices;
  devices.reserve(npus_.size());
  for (size_t i = 0; i < npus_.size(); ++i) {
    const int index = static_cast<int>(i);
    const Npu& npu = npus_[i];
    GpuDevice device;
    device.index = index;

    dcmi_chip_info chip = {};
    int rc = api_->get_device_chip_info(npu.card_id, npu.device_id, &chip);
    if (rc != abi::kOk) {
      return CallError("dcmi_get_device_chip_info", index, rc);
    }
    std::vector<std::string> words;
    for (std::string word :
         {ChipString(chip.chip_type), ChipString(chip.chip_name)}) {
      if (!word.empty()) words.push_back(std::move(word));
    }
    device.name = absl::StrJoin(words, " ");

    dcmi_hbm_info hbm = {};
    rc = api_->get_device_hbm_info(npu.card_id, npu.device_id, &hbm);
    if (rc != abi::kOk) return CallError("dcmi_get_device_hbm_info", index, rc);
    device.memory_total_bytes =
        static_cast<int64_t>(hbm.memory_size) * kBytesPerMb;
    devices.push_back(std::move(device));
  }
  return devices;
}

absl::StatusOr<DcmiReading> Dcmi::Read(int index) {
  if (index < 0 || static_cast<size_t>(index) >= npus_.size()) {
    if (npus_.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "dcmi: npu index: DCMI lists no NPUs, got %d", index));
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "dcmi: npu index must be 0..%d, got %d", npus_.size() - 1, index));
  }
  const Npu& npu = npus_[index];
  DcmiReading result;

  unsigned int percent = 0;
  int rc = api_->get_device_utilization_rate(npu.card_id, npu.device_id,
                                             abi::kUtilizationAiCore, &percent);
  if (rc != abi::kOk) {
    return CallError("dcmi_get_device_utilization_rate", index, rc);
  }
  result.reading.utilization_bp =
      static_cast<int32_t>(std::min(percent, 100u) * 100);

  dcmi_hbm_info hbm = {};
  rc = api_->get_device_hbm_info(npu.card_id, npu.device_id, &hbm);
  if (rc != abi::kOk) return CallError("dcmi_get_device_hbm_info", index, rc);
  result.reading.memory_used_bytes =
      static_cast<int64_t>(hbm.memory_usage) * kBytesPerMb;

  int power_dw = 0;
  rc = api_->get_device_power_info(npu.card_id, npu.device_id, &power_dw);
  if (rc != abi::kOk) {
    return CallError("dcmi_get_device_power_info", index, rc);
  }
  result.power_mw = int64_t{std::max(power_dw, 0)} * 100;
  return result;
}

}  // namespace computevoucher::agent
