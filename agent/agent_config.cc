// The agent's configuration: defaults and checks (NormalizeAgentConfig).
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/slurm_runtime.h"
#include "common/leader.h"
#include "common/status_macros.h"
#include "common/validate.h"

namespace computevoucher::agent {
namespace {

// Fills runtime and telemetry, from the deprecated `meter` where that is
// what the operator gave.
absl::Status NormalizeRuntimeChoice(pb::AgentConfig& c) {
  if (!c.meter().empty()) {
    if (!c.runtime().empty() || !c.telemetry().empty()) {
      return absl::InvalidArgumentError(
          "meter: a deprecated alias of runtime and telemetry; give either "
          "meter or runtime and telemetry, not both");
    }
    if (c.meter() == "simulated") {
      c.set_runtime("simulated");
      c.set_telemetry("simulated");
    } else if (c.meter() == "nvml") {
      c.set_runtime("simulated");
      c.set_telemetry("nvml");
    } else if (c.meter() == "exec") {
      // As before: the workload as the agent's own user, unsandboxed.
      c.set_runtime("process");
      c.set_telemetry("simulated");
      c.mutable_process()->set_sandbox("none");
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "meter: must be simulated, nvml or exec, got ", Quoted(c.meter())));
    }
    c.clear_meter();
  }
  if (c.runtime().empty()) c.set_runtime("simulated");
  if (c.runtime() != "simulated" && c.runtime() != "process" &&
      c.runtime() != "slurm") {
    return absl::InvalidArgumentError(
        absl::StrCat("runtime: must be simulated, process or slurm, got ",
                     Quoted(c.runtime())));
  }
  if (c.telemetry().empty()) c.set_telemetry("simulated");
  if (c.telemetry() != "simulated" && c.telemetry() != "nvml" &&
      c.telemetry() != "dcmi") {
    return absl::InvalidArgumentError(
        absl::StrCat("telemetry: must be simulated, nvml or dcmi, got ",
                     Quoted(c.telemetry())));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status NormalizeAgentConfig(pb::AgentConfig& c) {
  if (c.scheduler_address().empty()) {
    return absl::InvalidArgumentError(
        "scheduler_address: required, e.g. --scheduler 127.0.0.1:7443");
  }
  RETURN_IF_ERROR(
      ParseAddressList("scheduler_address", c.scheduler_address()).status());
  if (c.token_file().empty()) {
    return absl::InvalidArgumentError(
        "token_file: required: the file holding the cluster's agent token "
        "(voucherctl admin token create --role agent)");
  }
  if (c.spool_dir().empty()) {
    return absl::InvalidArgumentError(
        "spool_dir: required: a directory on durable storage, e.g. "
        "/var/lib/voucher-agent/spool");
  }
  RETURN_IF_ERROR(NormalizeRuntimeChoice(c));
  if (c.region().empty()) c.set_region("local");
  RETURN_IF_ERROR(CheckLength("region", c.region(), 1, 64));
  if (c.report_interval_ms() == 0) c.set_report_interval_ms(10'000);
  RETURN_IF_ERROR(
      CheckRange("report_interval_ms", c.report_interval_ms(), 100, 3'600'000));
  if (c.heartbeat_interval_ms() != 0) {
    RETURN_IF_ERROR(CheckRange("heartbeat_interval_ms",
                               c.heartbeat_interval_ms(), 100, 600'000));
  }
  if (c.spool_max_bytes() == 0) c.set_spool_max_bytes(int64_t{256} << 20);
  RETURN_IF_ERROR(CheckRange("spool_max_bytes", c.spool_max_bytes(), 64 << 10,
                             int64_t{1} << 40));
  if (c.idle_threshold_bp() == 0) c.set_idle_threshold_bp(500);
  RETURN_IF_ERROR(
      CheckRange("idle_threshold_bp", c.idle_threshold_bp(), 1, 10'000));
  if (c.idle_after_s() == 0) c.set_idle_after_s(600);
  RETURN_IF_ERROR(CheckRange("idle_after_s", c.idle_after_s(), 1, 7 * 86'400));
  if (c.stop_grace_s() == 0) c.set_stop_grace_s(10);
  RETURN_IF_ERROR(CheckRange("stop_grace_s", c.stop_grace_s(), 1, 3600));
  if (c.nvml_library().empty()) c.set_nvml_library("libnvidia-ml.so.1");
  if (c.dcmi_library().empty()) c.set_dcmi_library("libdcmi.so");
  RETURN_IF_ERROR(CheckLength("access_template", c.access_template(), 0, 1024));
  if (c.runtime() == "slurm")
    RETURN_IF_ERROR(NormalizeSlurmConfig(*c.mutable_slurm()));
  return absl::OkStatus();
}

}  // namespace computevoucher::agent
