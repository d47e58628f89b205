#include "agent/runtime.h"

#include "absl/strings/str_cat.h"
#include "common/validate.h"

namespace computevoucher::agent {
namespace {

constexpr int64_t kMaxAccessChars = 1024;

class Reservation final : public RuntimeAllocation {
 public:
  Reservation(absl::Time now, std::string access)
      : started_at_(now), access_(std::move(access)) {}
  RuntimeStatus Status(absl::Time) override {
    RuntimeStatus s;
    s.started = true;
    s.started_at = started_at_;
    return s;
  }
  std::string Access() const override { return access_; }
  void Extend(absl::Time) override {}
  void Stop(absl::Time, absl::Duration) override {}
  bool Gone(absl::Time) override { return true; }

 private:
  const absl::Time started_at_;
  const std::string access_;
};

class SimulatedRuntime final : public Runtime {
 public:
  explicit SimulatedRuntime(std::string access_template)
      : access_template_(std::move(access_template)) {}
  std::string name() const override { return "simulated"; }
  absl::StatusOr<std::unique_ptr<RuntimeAllocation>> Start(
      const RuntimeSpec& spec, absl::Time now) override {
    std::string access;
    if (!access_template_.empty()) {
      access = ExpandAccess(
          access_template_,
          {{"allocation_id", spec.desired.allocation_id()},
           {"gpus", absl::StrCat(spec.desired.gpu_count(), "x",
                                 spec.desired.gpu_model())}});
    }
    // A reservation's GPUs are the tenant's from the agent's first sight
    // of it (the scheduler bounds the record by assigned_at).
    return std::make_unique<Reservation>(absl::InfinitePast(),
                                         std::move(access));
  }

 private:
  const std::string access_template_;
};

}  // namespace

std::string ExpandAccess(const std::string& text,
                         const std::map<std::string, std::string>& values) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '{') {
      const size_t close = text.find('}', i + 1);
      if (close != std::string::npos) {
        auto it = values.find(text.substr(i + 1, close - i - 1));
        if (it != values.end()) {
          out += it->second;
          i = close + 1;
          continue;
        }
      }
    }
    out += text[i++];
  }
  return CleanText(out, kMaxAccessChars, TextLines::kMany);
}

std::unique_ptr<Runtime> NewSimulatedRuntime(std::string access_template) {
  return std::make_unique<SimulatedRuntime>(std::move(access_template));
}

}  // namespace computevoucher::agent
