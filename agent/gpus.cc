#include "agent/gpus.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/validate.h"

namespace computevoucher::agent {
namespace {

constexpr int32_t kMaxGpusPerModel = 100'000;

bool ValidModelName(absl::string_view model) {
  if (model.empty() || model.size() > 64) return false;
  return std::all_of(model.begin(), model.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

class SimulatedGpus final : public GpuSource {
 public:
  SimulatedGpus(std::vector<GpuSlot> slots, int32_t utilization_bp,
                int64_t watts, absl::Time start)
      : slots_(std::move(slots)),
        utilization_bp_(utilization_bp),
        watts_(watts),
        start_(start) {}

  const std::vector<GpuSlot>& slots() const override { return slots_; }

  absl::StatusOr<GpuReading> Read(int index, absl::Time now) override {
    if (index < 0 || index >= static_cast<int>(slots_.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gpu index: must be 0..", slots_.size() - 1, ", got ", index));
    }
    GpuReading reading;
    reading.utilization_bp = utilization_bp_;
    // An H100's 80 GB, in use in proportion to the load.
    reading.memory_used_bytes = (int64_t{80} << 30) / 10'000 * utilization_bp_;
    // W × ms = mJ.
    reading.energy_mj = static_cast<uint64_t>(
        watts_ * std::max<int64_t>(0, absl::ToInt64Milliseconds(now - start_)));
    reading.energy_supported = true;
    return reading;
  }

 private:
  const std::vector<GpuSlot> slots_;
  const int32_t utilization_bp_;
  const int64_t watts_;
  const absl::Time start_;
};

class NvmlGpus final : public GpuSource {
 public:
  NvmlGpus(std::unique_ptr<Nvml> nvml, std::vector<GpuSlot> slots)
      : nvml_(std::move(nvml)), slots_(std::move(slots)) {}

  const std::vector<GpuSlot>& slots() const override { return slots_; }

  absl::StatusOr<GpuReading> Read(int index, absl::Time) override {
    return nvml_->Read(index);
  }

 private:
  std::unique_ptr<Nvml> nvml_;
  const std::vector<GpuSlot> slots_;
};

// One NPU's energy, from the power of its reads (see NewDcmiGpus).
class EnergyMeter {
 public:
  // Adds the energy between the previous read and this one, at `now` with
  // `power_mw`, and returns the total, millijoules.
  uint64_t Add(absl::Time now, int64_t power_mw) {
    if (last_ == absl::InfinitePast()) {
      last_ = now;
    } else if (now > last_) {
      const int64_t ms = absl::ToInt64Milliseconds(now - last_);
      // mW × ms = µJ; both ends summed make twice the trapezoid.
      twice_uj_ += static_cast<uint64_t>(last_power_mw_ + power_mw) *
                   static_cast<uint64_t>(ms);
      // The part of a millisecond left over counts with the next read.
      last_ += absl::Milliseconds(ms);
    }
    last_power_mw_ = power_mw;
    return twice_uj_ / 2000;
  }

 private:
  absl::Time last_ = absl::InfinitePast();
  int64_t last_power_mw_ = 0;
  uint64_t twice_uj_ = 0;
};

class DcmiGpus final : public GpuSource {
 public:
  DcmiGpus(std::unique_ptr<Dcmi> dcmi, std::vector<GpuSlot> slots)
      : dcmi_(std::move(dcmi)),
        slots_(std::move(slots)),
        meters_(slots_.size()) {}

  const std::vector<GpuSlot>& slots() const override { return slots_; }

  absl::StatusOr<GpuReading> Read(int index, absl::Time now) override {
    // Dcmi::Read rejects an index out of range, and the slots are its NPUs.
    ASSIGN_OR_RETURN(DcmiReading npu, dcmi_->Read(index));
    GpuReading reading = std::move(npu.reading);
    reading.energy_mj = meters_[index].Add(now, npu.power_mw);
    reading.energy_supported = true;
    return reading;
  }

 private:
  std::unique_ptr<Dcmi> dcmi_;
  const std::vector<GpuSlot> slots_;
  // By index.
  std::vector<EnergyMeter> meters_;
};

// Whether `word` appears in `name` delimited by non-alphanumerics.
bool ContainsWord(absl::string_view name, absl::string_view word) {
  for (size_t at = name.find(word); at != absl::string_view::npos;
       at = name.find(word, at + 1)) {
    const bool left = at == 0 || !absl::ascii_isalnum(name[at - 1]);
    const size_t end = at + word.size();
    const bool right = end == name.size() || !absl::ascii_isalnum(name[end]);
    if (left && right) return true;
  }
  return false;
}

// Whether `prefix` appears in `name` at the start of a word, a word also
// starting where letters turn to digits: "910B" in "Ascend 910B3" and in
// "Ascend910B".
bool StartsWord(absl::string_view name, absl::string_view prefix) {
  for (size_t at = name.find(prefix); at != absl::string_view::npos;
       at = name.find(prefix, at + 1)) {
    if (at == 0 || !absl::ascii_isalnum(name[at - 1])) return true;
    if (absl::ascii_isalpha(name[at - 1]) && absl::ascii_isdigit(name[at])) {
      return true;
    }
  }
  return false;
}

// How a library's device names are matched to inventory models, and the
// words its errors use.
struct Discovery {
  const char* source;  // "nvml"
  const char* unit;    // "GPU"
  // For the hint to add a model: "--inventory 1x<MODEL>:<class> --prices
  // <MODEL>=<price>".
  const char* example_class;
  const char* example_price;
  bool (*matches)(absl::string_view name, absl::string_view model);
};

constexpr Discovery kNvml = {"nvml", "GPU", "other", "25.00", ContainsWord};
constexpr Discovery kDcmi = {"dcmi", "NPU", "domestic", "12.50", StartsWord};

// Matches each of `devices` to the longest inventory model that
// `discovery.matches`, sets each model's gpu_count to its devices and drops
// the models without any. FailedPrecondition when there is no device, or a
// device matches no model.
absl::StatusOr<std::vector<GpuSlot>> AssignModels(
    const Discovery& discovery, const std::vector<GpuDevice>& devices,
    std::vector<pb::GpuModel>& inventory) {
  if (devices.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(discovery.source, ": the node has no ", discovery.unit));
  }
  std::vector<GpuSlot> slots;
  absl::flat_hash_map<std::string, int32_t> found;
  for (const GpuDevice& d : devices) {
    const pb::GpuModel* best = nullptr;
    for (const pb::GpuModel& m : inventory) {
      if (discovery.matches(d.name, m.model()) &&
          (best == nullptr || m.model().size() > best->model().size())) {
        best = &m;
      }
    }
    if (best == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          discovery.source, ": ", discovery.unit, " ", d.index, " ",
          Quoted(d.name),
          " matches no inventory model; add it with its class and price, "
          "e.g. --inventory 1x<MODEL>:",
          discovery.example_class,
          " --prices <MODEL>=", discovery.example_price));
    }
    slots.push_back({d.index, best->model()});
    ++found[best->model()];
  }
  std::vector<pb::GpuModel> present;
  for (pb::GpuModel& m : inventory) {
    auto it = found.find(m.model());
    if (it == found.end()) continue;
    m.set_gpu_count(it->second);
    present.push_back(std::move(m));
  }
  inventory = std::move(present);
  return slots;
}

// A `Source` over the devices `library` lists, matched to `inventory`.
template <typename Source, typename Library>
absl::StatusOr<std::unique_ptr<GpuSource>> Discover(
    const Discovery& discovery, std::unique_ptr<Library> library,
    std::vector<pb::GpuModel>& inventory) {
  ASSIGN_OR_RETURN(std::vector<GpuDevice> devices, library->Devices());
  ASSIGN_OR_RETURN(std::vector<GpuSlot> slots,
                   AssignModels(discovery, devices, inventory));
  return std::make_unique<Source>(std::move(library), std::move(slots));
}

}  // namespace

absl::StatusOr<std::vector<pb::GpuModel>> ParseInventory(
    absl::string_view text) {
  std::vector<pb::GpuModel> inventory;
  absl::flat_hash_set<std::string> seen;
  for (absl::string_view item :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    auto fail = [item](absl::string_view rule) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inventory: item ", Quoted(item), " ", rule,
          "; write COUNTxMODEL:CLASS, e.g. 8xH100:other or 16x910B:domestic"));
    };
    const size_t x = item.find('x');
    const size_t colon = item.rfind(':');
    if (x == absl::string_view::npos || colon == absl::string_view::npos ||
        colon < x) {
      return fail("is malformed");
    }
    int32_t count = 0;
    if (!absl::SimpleAtoi(item.substr(0, x), &count) || count < 1 ||
        count > kMaxGpusPerModel) {
      return fail(absl::StrCat("needs a GPU count of 1..", kMaxGpusPerModel));
    }
    const absl::string_view model = item.substr(x + 1, colon - x - 1);
    if (!ValidModelName(model)) {
      return fail("needs a model of 1..64 letters, digits, '-', '_' or '.'");
    }
    const std::string hw = absl::AsciiStrToLower(item.substr(colon + 1));
    pb::HardwareClass hardware_class;
    if (hw == "domestic") {
      hardware_class = pb::HARDWARE_CLASS_DOMESTIC;
    } else if (hw == "other") {
      hardware_class = pb::HARDWARE_CLASS_OTHER;
    } else {
      return fail("needs a class of domestic or other");
    }
    if (!seen.insert(std::string(model)).second) {
      return fail("repeats a model");
    }
    pb::GpuModel& m = inventory.emplace_back();
    m.set_model(std::string(model));
    m.set_gpu_count(count);
    m.set_hardware_class(hardware_class);
  }
  if (inventory.empty()) {
    return absl::InvalidArgumentError(
        "inventory: must list at least one model, e.g. 8xH100:other");
  }
  return inventory;
}

absl::Status ApplyPrices(absl::string_view text,
                         std::vector<pb::GpuModel>& inventory) {
  absl::flat_hash_map<std::string, int64_t> prices;
  for (absl::string_view item :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(absl::StripAsciiWhitespace(item), '=');
    absl::StatusOr<int64_t> fen = ParseMoney(kv.second);
    if (kv.first.empty() || !fen.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prices: item ", Quoted(item),
          " must be MODEL=CNY per GPU-hour, e.g. H100=25.00",
          fen.ok() ? "" : absl::StrCat(" (", fen.status().message(), ")")));
    }
    if (*fen < 1 || *fen > 100'000'000) {
      return absl::InvalidArgumentError(
          absl::StrCat("prices: ", kv.first,
                       ": must be 0.01..1000000.00 CNY "
                       "per GPU-hour, got ",
                       kv.second));
    }
    prices[std::string(kv.first)] = *fen;
  }
  absl::flat_hash_set<std::string> models;
  for (pb::GpuModel& m : inventory) {
    models.insert(m.model());
    auto it = prices.find(m.model());
    if (it == prices.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("prices: no price for model ", m.model(), "; add ",
                       m.model(), "=<CNY per GPU-hour>"));
    }
    m.set_price_fen_per_gpu_hour(it->second);
  }
  for (const auto& [model, fen] : prices) {
    if (models.count(model) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("prices: model ", model, " is not in the inventory (",
                       absl::StrJoin(models, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

std::unique_ptr<GpuSource> NewSimulatedGpus(
    const std::vector<pb::GpuModel>& inventory, int32_t utilization_bp,
    int64_t watts, absl::Time start) {
  std::vector<GpuSlot> slots;
  for (const pb::GpuModel& m : inventory) {
    for (int32_t i = 0; i < m.gpu_count(); ++i) {
      slots.push_back({static_cast<int>(slots.size()), m.model()});
    }
  }
  return std::make_unique<SimulatedGpus>(std::move(slots), utilization_bp,
                                         watts, start);
}

absl::StatusOr<std::unique_ptr<GpuSource>> NewNvmlGpus(
    std::unique_ptr<Nvml> nvml, std::vector<pb::GpuModel>& inventory) {
  return Discover<NvmlGpus>(kNvml, std::move(nvml), inventory);
}

absl::StatusOr<std::unique_ptr<GpuSource>> NewDcmiGpus(
    std::unique_ptr<Dcmi> dcmi, std::vector<pb::GpuModel>& inventory) {
  return Discover<DcmiGpus>(kDcmi, std::move(dcmi), inventory);
}

}  // namespace computevoucher::agent
