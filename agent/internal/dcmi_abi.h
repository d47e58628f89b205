// The part of Huawei's dcmi_interface_api.h (Ascend driver 23.x and later)
// the agent uses, with the driver's ABI and the header's names, declared
// once for the loader (agent/dcmi.cc) and the fake library the tests build
// (tests/agent/fake_dcmi.cc). Header only, no dependencies.
//
// Every DCMI function returns an int: 0 (DCMI_OK) or a negative
// DCMI_ERR_CODE_*. NPUs are addressed by card id (from dcmi_get_card_list)
// and device id within the card (0 .. dcmi_get_device_num_in_card - 1).
//
// The functions are declared for their types only: the loader takes
// pointers of these types from dlsym (it never links against them), and the
// fake defines them, so the compiler holds both to one signature.
//
// The structs sit at global scope under the header's tags, not in an
// anonymous namespace, because clang's -fsanitize=function checks every
// call through a pointer against the callee's type by name.
#ifndef COMPUTEVOUCHER_AGENT_INTERNAL_DCMI_ABI_H_
#define COMPUTEVOUCHER_AGENT_INTERNAL_DCMI_ABI_H_

namespace computevoucher::agent::dcmi_abi {

// Return codes: DCMI_OK and some of DCMI_ERR_CODE_* (DCMI_ERROR_CODE_BASE
// -8000 minus n).
constexpr int kOk = 0;
constexpr int kErrInvalidParameter = -8001;
constexpr int kErrInvalidDeviceId = -8007;
constexpr int kErrDeviceNotExist = -8008;
constexpr int kErrNotReady = -8012;
constexpr int kErrNotSupport = -8255;

// MAX_CHIP_NAME_LEN: the size of dcmi_chip_info's strings.
constexpr int kMaxChipNameLen = 32;

// MAX_CARD_NUM: dcmi_get_card_list lists at most this many cards.
constexpr int kMaxCards = 64;

// dcmi_get_device_utilization_rate's input_type for the AI Cores
// (DCMI_UTILIZATION_RATE_AICORE), where the NPU computes.
constexpr int kUtilizationAiCore = 2;

}  // namespace computevoucher::agent::dcmi_abi

extern "C" {

// dcmi_get_device_chip_info: NUL-padded strings, e.g. chip_type "Ascend",
// chip_name "910B3", chip_ver "V1".
struct dcmi_chip_info {
  unsigned char chip_type[computevoucher::agent::dcmi_abi::kMaxChipNameLen];
  unsigned char chip_name[computevoucher::agent::dcmi_abi::kMaxChipNameLen];
  unsigned char chip_ver[computevoucher::agent::dcmi_abi::kMaxChipNameLen];
  unsigned int aicore_cnt;
};

// dcmi_get_device_hbm_info: the NPU's on-chip memory.
struct dcmi_hbm_info {
  unsigned long long memory_size;   // MB (MiB).
  unsigned int freq;                // MHz.
  unsigned long long memory_usage;  // MB (MiB).
  int temp;                         // Celsius.
  unsigned int bandwith_util_rate;  // Percent.
};

int dcmi_init(void);
// The V2 name, and the V1 name it replaced (older drivers have only that).
int dcmi_get_card_list(int* card_num, int* card_list, int list_len);
int dcmi_get_card_num_list(int* card_num, int* card_list, int list_len);
int dcmi_get_device_num_in_card(int card_id, int* device_num);
int dcmi_get_device_chip_info(int card_id, int device_id,
                              struct dcmi_chip_info* chip_info);
// `utilization_rate`: percent.
int dcmi_get_device_utilization_rate(int card_id, int device_id, int input_type,
                                     unsigned int* utilization_rate);
int dcmi_get_device_hbm_info(int card_id, int device_id,
                             struct dcmi_hbm_info* hbm_info);
// `power`: 0.1 W.
int dcmi_get_device_power_info(int card_id, int device_id, int* power);

}  // extern "C"

static_assert(sizeof(dcmi_chip_info) == 100, "dcmi_chip_info's ABI");
static_assert(sizeof(dcmi_hbm_info) == 32, "dcmi_hbm_info's ABI");

#endif  // COMPUTEVOUCHER_AGENT_INTERNAL_DCMI_ABI_H_
