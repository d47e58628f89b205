#include "agent/process_runtime.h"

#include "absl/strings/str_cat.h"
#include "agent/sandbox.h"
#include "agent/workload.h"
#include "common/status_macros.h"

namespace computevoucher::agent {
namespace {

class ProcessAllocation final : public RuntimeAllocation {
 public:
  ProcessAllocation(std::unique_ptr<Workload> workload, absl::Time started_at,
                    std::optional<int> failed_code, std::string access)
      : workload_(std::move(workload)),
        started_at_(started_at),
        failed_code_(failed_code),
        access_(std::move(access)) {}

  RuntimeStatus Status(absl::Time now) override {
    RuntimeStatus s;
    s.started = true;
    s.started_at = started_at_;
    if (failed_code_) {
      s.ended = RuntimeEnd{started_at_, failed_code_, "the workload could not start"};
    } else if (workload_ != nullptr && !workload_->stopping()) {
      // Its end is when the agent learns of it (InfiniteFuture: the
      // agent's now, read after this call), as a shell would see it.
      if (std::optional<int> code = workload_->Poll(now)) {
        s.ended = RuntimeEnd{absl::InfiniteFuture(), code,
                             absl::StrCat("the workload exited with code ",
                                          *code)};
      }
    }
    return s;
  }
  std::string Access() const override { return access_; }
  void Extend(absl::Time) override {}
  void Stop(absl::Time now, absl::Duration grace) override {
    if (workload_ != nullptr) workload_->RequestStop(now, grace);
  }
  bool Gone(absl::Time now) override {
    return workload_ == nullptr || workload_->Poll(now).has_value();
  }

 private:
  const std::unique_ptr<Workload> workload_;
  const absl::Time started_at_;
  const std::optional<int> failed_code_;
  const std::string access_;
};

class ProcessRuntime final : public Runtime {
 public:
  ProcessRuntime(ProcessSettings settings, std::string log_dir,
                 std::string access_template)
      : settings_(std::move(settings)),
        log_dir_(std::move(log_dir)),
        access_template_(std::move(access_template)) {}

  std::string name() const override { return "process"; }

  absl::StatusOr<std::unique_ptr<RuntimeAllocation>> Start(
      const RuntimeSpec& spec, absl::Time now) override {
    const pb::DesiredAllocation& d = spec.desired;
    const std::string log = absl::StrCat(log_dir_, "/", d.allocation_id(), ".log");
    const std::string access = ExpandAccess(
        access_template_.empty()
            ? std::string(d.workload_command().empty()
                              ? "GPUs {gpus} reserved on this cluster"
                              : "workload output in {log} on the cluster")
            : access_template_,
        {{"allocation_id", d.allocation_id()},
         {"gpus", absl::StrCat(d.gpu_count(), "x", d.gpu_model())},
         {"log", log}});
    if (d.workload_command().empty()) {
      return std::make_unique<ProcessAllocation>(nullptr, absl::InfinitePast(),
                                                 std::nullopt, access);
    }
    // The sandbox's own faults (a GPU device file missing) are the
    // cluster's: the allocation is refused.
    ASSIGN_OR_RETURN(
        std::optional<SandboxSpec> sandbox,
        PrepareSandbox(settings_, d.allocation_id(), spec.gpu_indices));
    WorkloadSpec w;
    w.sandbox = std::move(sandbox);
    w.allocation_id = d.allocation_id();
    w.argv.assign(d.workload_command().begin(), d.workload_command().end());
    w.gpu_indices = spec.gpu_indices;
    w.log_path = log;
    absl::StatusOr<std::unique_ptr<Workload>> started = Workload::Start(w);
    if (!started.ok()) {
      // The tenant's command, not the cluster, is at fault: the allocation
      // ends as a workload that could not be executed would.
      return std::make_unique<ProcessAllocation>(nullptr, now, 127, access);
    }
    return std::make_unique<ProcessAllocation>(*std::move(started),
                                               absl::InfinitePast(),
                                               std::nullopt, access);
  }

 private:
  const ProcessSettings settings_;
  const std::string log_dir_;
  const std::string access_template_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Runtime>> NewProcessRuntime(
    const pb::ProcessRuntimeConfig& config, std::string log_dir,
    std::string default_work_root, std::string access_template) {
  ASSIGN_OR_RETURN(ProcessSettings settings,
                   ResolveProcessSettings(config, default_work_root));
  return std::make_unique<ProcessRuntime>(std::move(settings),
                                          std::move(log_dir),
                                          std::move(access_template));
}

}  // namespace computevoucher::agent
