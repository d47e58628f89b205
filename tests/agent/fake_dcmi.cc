// A stand-in for Huawei's libdcmi.so, built as a shared library of that
// name, so that the agent's real loading path (dlopen, dlsym, the DCMI
// calling conventions) runs on machines without an Ascend NPU. It exports,
// with DCMI's C signatures (agent/internal/dcmi_abi.h), exactly the
// functions agent/dcmi.cc resolves, and returns values from a script.
//
// Built three times: as is; with FAKE_DCMI_V1_ONLY, without
// dcmi_get_card_list (an older driver, with only dcmi_get_card_num_list);
// with FAKE_DCMI_WITHOUT_POWER, without dcmi_get_device_power_info.
//
// Environment:
//   FAKE_DCMI_SCRIPT  the script, read afresh by every dcmi_init call (which
//                     also resets every cursor). Unset or unreadable:
//                     dcmi_init returns -8005 (internal error). A malformed
//                     script: dcmi_init returns -8001 (invalid parameter)
//                     and the reason, with the line number, goes to stderr.
//   FAKE_DCMI_LOG     optional; a line "init" is appended to this file on
//                     every dcmi_init call.
//
// Script: as tests/agent/fake_script.h reads it. <npu> is
// <card id>:<device id>, e.g. 3:0; NPUs are declared with `npu` before any
// other directive names them. Numbers are decimal.
//
//   npu <npu> [chip_type=<text>] [chip_name=<text>] [chip_ver=<text>]
//       [hbm_total=<MB>]
//       Declares an NPU. dcmi_get_card_list lists the cards in the order
//       their first NPU is declared (at most 64 cards); a card's devices
//       are declared in order 0, 1, ... Defaults: chip_type "Ascend",
//       chip_name "910B3", chip_ver "V1", hbm_total 65536 (64 GiB).
//   utilization <npu> <percent>[,<percent>...]
//       Successive dcmi_get_device_utilization_rate calls for the AI Cores
//       (input_type 2) on this NPU return these in turn, starting over after
//       the last; any other input_type returns -8255 (not supported).
//       Default 0.
//   hbm_used <npu> <MB>[,<MB>...]
//       Likewise for dcmi_get_device_hbm_info's memory_usage. Every call
//       advances, including the one Dcmi::Devices() makes per NPU.
//       Default 0.
//   power <npu> <0.1 W>[,<0.1 W>...]
//       Likewise for dcmi_get_device_power_info. Default 0.
//   fail <function> <npu>|<card>|* <code>
//       <function> (any exported name but dcmi_init) returns <code>, a
//       negative DCMI error code, for that NPU, every NPU of that card, or
//       every NPU with `*`; dcmi_get_card_list and dcmi_get_card_num_list
//       take `*`. E.g. `fail dcmi_get_device_power_info 1:0 -8008`.
//   init_error <code>
//       dcmi_init returns <code>, e.g. -8012 (not ready).
//
// Calls before dcmi_init return -8012 (not ready); an unknown card or
// device returns -8007 (invalid device id), a null pointer or short list
// -8001 (invalid parameter). Calls are serialised by one mutex.
//
// Plain C++ whose only project dependencies are header only, the DCMI ABI
// (agent/internal/dcmi_abi.h) and the script reader
// (tests/agent/fake_script.h): it is loaded into the tests and the agent
// with dlopen.

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "agent/internal/dcmi_abi.h"
#include "tests/agent/fake_script.h"

namespace {

namespace abi = computevoucher::agent::dcmi_abi;

constexpr int kInternalError = -8005;
constexpr unsigned long long kDefaultHbmTotalMb = 65536;

// Values that successive calls return in turn.
struct Cycle {
  std::vector<unsigned long long> values{0};
  size_t cursor = 0;

  unsigned long long Next() { return values[cursor++ % values.size()]; }
};

struct Npu {
  std::string chip_type = "Ascend";
  std::string chip_name = "910B3";
  std::string chip_ver = "V1";
  unsigned long long hbm_total_mb = kDefaultHbmTotalMb;
  Cycle utilization;
  Cycle hbm_used_mb;
  Cycle power_dw;
};

struct Card {
  int id = 0;
  std::vector<Npu> npus;
};

struct Failure {
  std::string function;
  long card = -1;    // -1: every card.
  long device = -1;  // -1: every device of the card.
  int code = 0;
};

struct State {
  bool initialized = false;
  std::vector<Card> cards;
  std::vector<Failure> failures;
};

std::mutex mu;
State state;  // Guarded by mu.

Card* FindCard(State& s, long id) {
  for (Card& card : s.cards) {
    if (card.id == id) return &card;
  }
  return nullptr;
}

// Parses "<card>:<device>"; `device` is -1 when `text` is "<card>" and
// `card_only` allows it.
bool ParseNpu(const std::string& text, bool card_only, long* card,
              long* device) {
  const size_t colon = text.find(':');
  unsigned long long c = 0;
  unsigned long long d = 0;
  if (colon == std::string::npos) {
    if (!card_only || !fake_script::ParseUnsigned(text, &c)) return false;
    *card = static_cast<long>(c);
    *device = -1;
    return c < 100000;
  }
  if (!fake_script::ParseUnsigned(text.substr(0, colon), &c) ||
      !fake_script::ParseUnsigned(text.substr(colon + 1), &d) || c >= 100000 ||
      d >= 100000) {
    return false;
  }
  *card = static_cast<long>(c);
  *device = static_cast<long>(d);
  return true;
}

bool ParseCode(const std::string& text, int* code) {
  long long value = 0;
  if (!fake_script::ParseSigned(text, &value) || value >= 0 ||
      value < -100000) {
    return false;
  }
  *code = static_cast<int>(value);
  return true;
}

std::string ParseNpuLine(const std::vector<std::string>& f, long card_id,
                         long device_id, State& s) {
  Card* card = FindCard(s, card_id);
  if (card == nullptr) {
    if (s.cards.size() == static_cast<size_t>(abi::kMaxCards)) {
      return "npu: at most 64 cards";
    }
    card = &s.cards.emplace_back();
    card->id = static_cast<int>(card_id);
  }
  if (static_cast<size_t>(device_id) != card->npus.size()) {
    return "npu: declare a card's devices in order 0, 1, ...; expected " +
           std::to_string(card->npus.size()) + ", got " + f[1];
  }
  Npu npu;
  for (size_t i = 2; i < f.size(); ++i) {
    const size_t eq = f[i].find('=');
    if (eq == std::string::npos) return "npu: want key=value, got " + f[i];
    const std::string key = f[i].substr(0, eq);
    const std::string value = f[i].substr(eq + 1);
    if (value.size() >= static_cast<size_t>(abi::kMaxChipNameLen)) {
      return "npu: " + key + " must be shorter than 32 bytes";
    }
    if (key == "chip_type") {
      npu.chip_type = value;
    } else if (key == "chip_name") {
      npu.chip_name = value;
    } else if (key == "chip_ver") {
      npu.chip_ver = value;
    } else if (key == "hbm_total") {
      if (!fake_script::ParseUnsigned(value, &npu.hbm_total_mb)) {
        return "npu: bad hbm_total " + value;
      }
    } else {
      return "npu: unknown key " + key;
    }
  }
  card->npus.push_back(npu);
  return "";
}

// Parses one directive into `s`; returns an error text, empty if fine.
std::string ParseLine(const std::vector<std::string>& f, State& s,
                      int* init_error) {
  const std::string& op = f[0];
  if (op == "init_error") {
    if (f.size() != 2 || !ParseCode(f[1], init_error)) {
      return "want `init_error <negative code>`";
    }
    return "";
  }
  if (op == "fail") {
    Failure failure;
    failure.function = f.size() > 1 ? f[1] : "";
    if (f.size() != 4 || !ParseCode(f[3], &failure.code)) {
      return "want `fail <function> <card>:<device>|<card>|* <negative "
             "code>`";
    }
    if (f[2] != "*" &&
        !ParseNpu(f[2], /*card_only=*/true, &failure.card, &failure.device)) {
      return "fail: want <card>:<device>, <card> or *, got " + f[2];
    }
    s.failures.push_back(failure);
    return "";
  }

  long card_id = 0;
  long device_id = 0;
  if (f.size() < 2 ||
      !ParseNpu(f[1], /*card_only=*/false, &card_id, &device_id)) {
    return "want `" + op + " <card>:<device> ...`";
  }
  if (op == "npu") return ParseNpuLine(f, card_id, device_id, s);

  Card* card = FindCard(s, card_id);
  if (card == nullptr || static_cast<size_t>(device_id) >= card->npus.size()) {
    return op + ": npu " + f[1] + " is not declared (declare it with `npu`)";
  }
  Npu& npu = card->npus[device_id];
  Cycle* cycle = op == "utilization" ? &npu.utilization
                 : op == "hbm_used"  ? &npu.hbm_used_mb
                 : op == "power"     ? &npu.power_dw
                                     : nullptr;
  if (cycle == nullptr) return "unknown directive " + op;
  if (f.size() != 3 || !fake_script::ParseList(f[2], &cycle->values)) {
    return "want `" + op + " <card>:<device> <n>[,<n>...]`";
  }
  for (unsigned long long v : cycle->values) {
    if (op == "utilization" && v > 100) {
      return "utilization: percent must be 0..100";
    }
    if (op == "hbm_used" && v > npu.hbm_total_mb) {
      return "hbm_used: exceeds hbm_total";
    }
    if (op == "power" && v > 100000) return "power: at most 10 kW";
  }
  return "";
}

// Replaces `state` from the script; returns what dcmi_init should.
int LoadScript(State& s) {
  State fresh;
  int init_error = abi::kOk;
  switch (fake_script::Read("FAKE_DCMI_SCRIPT", "fake_dcmi",
                            [&](const std::vector<std::string>& fields) {
                              return ParseLine(fields, fresh, &init_error);
                            })) {
    case fake_script::Outcome::kMissing:
      return kInternalError;
    case fake_script::Outcome::kMalformed:
      return abi::kErrInvalidParameter;
    case fake_script::Outcome::kRead:
      break;
  }
  if (init_error != abi::kOk) return init_error;
  fresh.initialized = true;
  s = fresh;
  return abi::kOk;
}

int Injected(const char* function, long card, long device) {
  for (const Failure& failure : state.failures) {
    if (failure.function == function &&
        (failure.card == -1 || failure.card == card) &&
        (failure.device == -1 || failure.device == device)) {
      return failure.code;
    }
  }
  return abi::kOk;
}

// Common checks of the per-NPU calls; sets *npu when they pass.
int Lookup(const char* function, int card_id, int device_id, const void* out,
           Npu** npu) {
  if (!state.initialized) return abi::kErrNotReady;
  Card* card = FindCard(state, card_id);
  if (card == nullptr || device_id < 0 ||
      static_cast<size_t>(device_id) >= card->npus.size()) {
    return abi::kErrInvalidDeviceId;
  }
  const int rc = Injected(function, card_id, device_id);
  if (rc != abi::kOk) return rc;
  if (out == nullptr) return abi::kErrInvalidParameter;
  *npu = &card->npus[device_id];
  return abi::kOk;
}

int ListCards(const char* function, int* card_num, int* card_list,
              int list_len) {
  std::lock_guard<std::mutex> lock(mu);
  if (!state.initialized) return abi::kErrNotReady;
  const int rc = Injected(function, -1, -1);
  if (rc != abi::kOk) return rc;
  if (card_num == nullptr || card_list == nullptr ||
      list_len < static_cast<int>(state.cards.size())) {
    return abi::kErrInvalidParameter;
  }
  for (size_t i = 0; i < state.cards.size(); ++i) {
    card_list[i] = state.cards[i].id;
  }
  *card_num = static_cast<int>(state.cards.size());
  return abi::kOk;
}

void CopyChipString(const std::string& value,
                    unsigned char (&out)[abi::kMaxChipNameLen]) {
  std::memset(out, 0, sizeof(out));
  std::memcpy(out, value.data(), value.size());
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int dcmi_init(void) {
  std::lock_guard<std::mutex> lock(mu);
  fake_script::Log("FAKE_DCMI_LOG", "init");
  return LoadScript(state);
}

#ifndef FAKE_DCMI_V1_ONLY
__attribute__((visibility("default"))) int dcmi_get_card_list(int* card_num,
                                                              int* card_list,
                                                              int list_len) {
  return ListCards("dcmi_get_card_list", card_num, card_list, list_len);
}
#endif

__attribute__((visibility("default"))) int dcmi_get_card_num_list(
    int* card_num, int* card_list, int list_len) {
  return ListCards("dcmi_get_card_num_list", card_num, card_list, list_len);
}

__attribute__((visibility("default"))) int dcmi_get_device_num_in_card(
    int card_id, int* device_num) {
  std::lock_guard<std::mutex> lock(mu);
  if (!state.initialized) return abi::kErrNotReady;
  Card* card = FindCard(state, card_id);
  if (card == nullptr) return abi::kErrInvalidDeviceId;
  const int rc = Injected("dcmi_get_device_num_in_card", card_id, -1);
  if (rc != abi::kOk) return rc;
  if (device_num == nullptr) return abi::kErrInvalidParameter;
  *device_num = static_cast<int>(card->npus.size());
  return abi::kOk;
}

__attribute__((visibility("default"))) int dcmi_get_device_chip_info(
    int card_id, int device_id, struct dcmi_chip_info* chip_info) {
  std::lock_guard<std::mutex> lock(mu);
  Npu* npu = nullptr;
  const int rc =
      Lookup("dcmi_get_device_chip_info", card_id, device_id, chip_info, &npu);
  if (rc != abi::kOk) return rc;
  CopyChipString(npu->chip_type, chip_info->chip_type);
  CopyChipString(npu->chip_name, chip_info->chip_name);
  CopyChipString(npu->chip_ver, chip_info->chip_ver);
  chip_info->aicore_cnt = 24;
  return abi::kOk;
}

__attribute__((visibility("default"))) int dcmi_get_device_utilization_rate(
    int card_id, int device_id, int input_type,
    unsigned int* utilization_rate) {
  std::lock_guard<std::mutex> lock(mu);
  Npu* npu = nullptr;
  const int rc = Lookup("dcmi_get_device_utilization_rate", card_id, device_id,
                        utilization_rate, &npu);
  if (rc != abi::kOk) return rc;
  if (input_type != abi::kUtilizationAiCore) return abi::kErrNotSupport;
  *utilization_rate = static_cast<unsigned int>(npu->utilization.Next());
  return abi::kOk;
}

__attribute__((visibility("default"))) int dcmi_get_device_hbm_info(
    int card_id, int device_id, struct dcmi_hbm_info* hbm_info) {
  std::lock_guard<std::mutex> lock(mu);
  Npu* npu = nullptr;
  const int rc =
      Lookup("dcmi_get_device_hbm_info", card_id, device_id, hbm_info, &npu);
  if (rc != abi::kOk) return rc;
  hbm_info->memory_size = npu->hbm_total_mb;
  hbm_info->freq = 1600;
  hbm_info->memory_usage = npu->hbm_used_mb.Next();
  hbm_info->temp = 40;
  hbm_info->bandwith_util_rate = 0;
  return abi::kOk;
}

#ifndef FAKE_DCMI_WITHOUT_POWER
__attribute__((visibility("default"))) int dcmi_get_device_power_info(
    int card_id, int device_id, int* power) {
  std::lock_guard<std::mutex> lock(mu);
  Npu* npu = nullptr;
  const int rc =
      Lookup("dcmi_get_device_power_info", card_id, device_id, power, &npu);
  if (rc != abi::kOk) return rc;
  *power = static_cast<int>(npu->power_dw.Next());
  return abi::kOk;
}
#endif

}  // extern "C"
