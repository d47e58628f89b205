// libFuzzer target: what the agent reads from Slurm's commands
// (agent/internal/slurm_text.h). Slurm's output holds names tenants choose
// (jobs, steps): no line may crash the agent, and what parses keeps its
// shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "agent/internal/slurm_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  namespace slurm = computevoucher::agent::slurm;
  if (auto jobs = slurm::ParseJobs(text); jobs.ok()) {
    for (const slurm::Job& j : *jobs) {
      (void)slurm::IsTerminal(j.state);
    }
  }
  (void)slurm::ParseSteps(text);
  if (auto nodes = slurm::ParseNodes(text); nodes.ok()) {
    for (const slurm::Node& n : *nodes) {
      for (const auto& gpus : {n.gpus, n.gpus_used}) {
        for (const auto& [type, count] : gpus) {
          if (count < 0) std::abort();
        }
      }
      (void)slurm::IsUsable(n.state);
    }
  }
  (void)slurm::ParseGpuGres(text);
  (void)slurm::ParseElapsed(text);
  (void)slurm::ParseExitCode(text);
  return 0;
}
