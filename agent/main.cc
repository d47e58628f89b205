// voucher-agent: meters a GPU cluster for the compute-voucher scheduler.
//
//   voucher-agent --scheduler HOST:PORT[,HOST:PORT...] --token-file FILE
//       --spool-dir DIR [--runtime simulated|process|slurm]
//       [--telemetry simulated|nvml|dcmi] [--inventory 8xH100:other]
//       [--prices H100=25.00] [--config FILE] ...
// Reads the flags into an AgentConfig and hands it to RunAgent (agent/run.h).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "agent/gpus.h"
#include "agent/run.h"
#include "common/config.h"
#include "common/flags.h"
#include "common/mutexes.h"
#include "common/status_macros.h"

namespace {

// The headings of --help, in its order.
constexpr char kConfiguration[] = "Configuration";
constexpr char kScheduler[] = "Scheduler connection";
constexpr char kCluster[] = "Cluster";
constexpr char kSpool[] = "Metering and spool";
constexpr char kRuntime[] = "Runtime";
constexpr char kProcess[] = "Process runtime";
constexpr char kSlurm[] = "Slurm runtime";
constexpr char kTelemetry[] = "Telemetry";
constexpr char kObservability[] = "Observability";
constexpr absl::string_view kFlagGroups[] = {
    kConfiguration, kScheduler, kCluster,   kSpool,        kRuntime,
    kProcess,       kSlurm,     kTelemetry, kObservability};

}  // namespace

CV_FLAG(kConfiguration, std::string, config, "",
        "textproto AgentConfig file; flags override it");
CV_FLAG(kScheduler, std::string, scheduler, "",
        "scheduler address, e.g. 127.0.0.1:7443, or its replicas comma "
        "separated (the agent follows the one that leads)");
CV_FLAG(kScheduler, std::string, token_file, "",
        "file holding the agent's token");
CV_FLAG(kScheduler, std::string, tls_ca, "",
        "PEM CA bundle of the scheduler's certificate; enables TLS");
CV_FLAG(kScheduler, std::string, tls_cert, "",
        "PEM client certificate (mutual TLS)");
CV_FLAG(kScheduler, std::string, tls_key, "",
        "PEM key of the client certificate");
CV_FLAG(kCluster, std::string, region, "", "region reported at registration");
CV_FLAG(kRuntime, std::string, meter, "",
        "deprecated: simulated, nvml or exec; use --runtime and "
        "--telemetry");
CV_FLAG(kRuntime, std::string, runtime, "",
        "how allocations reach tenants: simulated (default), process or "
        "slurm");
CV_FLAG(kTelemetry, std::string, telemetry, "",
        "GPU readings: simulated (default), nvml or dcmi");
CV_FLAG(kTelemetry, std::string, dcmi_library, "",
        "DCMI library for the dcmi telemetry (default libdcmi.so)");
CV_FLAG(kRuntime, std::string, access_template, "",
        "access instructions shown to tenants, with {allocation_id}, "
        "{job_id}, {gpus}, {user}, {account}, {log}, {login_host}");
CV_FLAG(kProcess, std::string, sandbox, "",
        "bwrap (default) or none (unsandboxed)");
CV_FLAG(kProcess, std::string, run_as, "",
        "the unprivileged user workloads run as");
CV_FLAG(kProcess, std::string, work_root, "",
        "directory of the workloads' working directories");
CV_FLAG(kProcess, std::string, bwrap, "", "bubblewrap binary");
CV_FLAG(kSlurm, std::string, slurm_partition, "",
        "the partition whose GPUs the agent sells");
CV_FLAG(kSlurm, std::string, slurm_accounts, "",
        "enterprises' Slurm users and accounts, "
        "E-000001=alice:robots,E-000002=bob");
CV_FLAG(kSlurm, std::string, slurm_gres_models, "",
        "gres types of models not named alike, "
        "h100=H100,910b=910B");
CV_FLAG(kSlurm, std::string, slurm_bin_dir, "",
        "directory of sbatch, squeue, ... (default PATH)");
CV_FLAG(kSlurm, std::string, slurm_login_host, "",
        "login host shown in access instructions");
CV_FLAG(kSlurm, std::string, slurm_batch_log_dir, "",
        "where batch jobs write their output (default "
        "/var/lib/voucher-agent/batch)");
CV_FLAG(kSlurm, int64_t, slurm_poll_interval_ms, 0,
        "how often Slurm is read (default 5000)");
CV_FLAG(kSlurm, int64_t, slurm_command_timeout_ms, 0,
        "longest a Slurm command may take (default 10000)");
CV_FLAG(kCluster, std::string, inventory, "",
        "GPUs as COUNTxMODEL:CLASS, e.g. 8xH100:other,16x910B:domestic "
        "(nvml discovers counts itself)");
CV_FLAG(kCluster, std::string, prices, "",
        "CNY per GPU-hour per model, e.g. H100=25.00,910B=12.50");
CV_FLAG(kScheduler, int64_t, heartbeat_interval_ms, 0,
        "heartbeat interval (default: what the scheduler asks)");
CV_FLAG(kSpool, int64_t, report_interval_ms, 0,
        "usage record length and report interval (default 10000)");
CV_FLAG(kSpool, std::string, spool_dir, "", "durable spool directory");
CV_FLAG(kSpool, int64_t, spool_max_bytes, 0,
        "spool size limit (default 256 MiB)");
CV_FLAG(kObservability, std::string, metrics_listen, "",
        "Prometheus /metrics address, e.g. 127.0.0.1:9464; empty disables");
CV_FLAG(kSpool, int32_t, idle_threshold_bp, 0,
        "utilisation in basis points under which GPUs count as idle "
        "(default 500 = 5%)");
CV_FLAG(kSpool, int64_t, idle_after_s, 0,
        "idle time before an allocation is flagged (default 600)");
CV_FLAG(kRuntime, int64_t, stop_grace_s, 0,
        "process and slurm runtimes: SIGTERM to SIGKILL (or to scancel) "
        "grace (default 10)");
CV_FLAG(kTelemetry, std::string, nvml_library, "",
        "NVML library for the nvml telemetry (default libnvidia-ml.so.1)");
CV_FLAG(kTelemetry, int32_t, simulated_utilization_bp, 9000,
        "simulated telemetry: utilisation the GPUs show");
CV_FLAG(kTelemetry, int64_t, simulated_watts, 700,
        "simulated telemetry: power each GPU draws");

namespace {

namespace pb = ::computevoucher::v1;

constexpr char kUsage[] =
    "voucher-agent: meters a GPU cluster for the compute-voucher scheduler.\n\n"
    "  voucher-agent --scheduler 127.0.0.1:7443 --token-file agent.token \\\n"
    "      --spool-dir /var/lib/voucher-agent --inventory 8xH100:other \\\n"
    "      --prices H100=25.00 [--runtime simulated|process|slurm]\n"
    "      [--telemetry simulated|nvml|dcmi]\n\n"
    "Registers the cluster, runs what the scheduler allocates to it, meters\n"
    "usage into the spool and reports it until acknowledged.\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "voucher-agent: %s\n", message.c_str());
  return 2;
}

// "E-000001=alice:robots" → enterprise E-000001 runs as Slurm user alice,
// account robots.
absl::Status AddSlurmAccounts(const std::string& text,
                              pb::SlurmRuntimeConfig& slurm) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    std::pair<std::string, std::string> ua =
        absl::StrSplit(kv.second, absl::MaxSplits(':', 1));
    if (kv.first.empty() || ua.first.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slurm_accounts: must be ENTERPRISE=USER[:ACCOUNT], got \"", item,
          "\""));
    }
    pb::SlurmAccountMapping* m = slurm.add_accounts();
    m->set_enterprise_id(kv.first);
    m->set_user(ua.first);
    m->set_account(ua.second);
  }
  return absl::OkStatus();
}

// A flag that, when given, sets one field of the AgentConfig.
struct StringFlag {
  const absl::Flag<std::string>* flag;
  void (*set)(pb::AgentConfig& config, const std::string& value);
};
struct NumberFlag {
  int64_t (*get)();
  void (*set)(pb::AgentConfig& config, int64_t value);
};

// Given flags override the config file; an empty string or a zero is not
// given.
const StringFlag kStringFlags[] = {
    {&FLAGS_scheduler,
     [](pb::AgentConfig& c, const std::string& v) {
       c.set_scheduler_address(v);
     }},
    {&FLAGS_token_file,
     [](pb::AgentConfig& c, const std::string& v) { c.set_token_file(v); }},
    {&FLAGS_tls_ca,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_tls()->set_ca_file(v);
     }},
    {&FLAGS_tls_cert,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_tls()->set_cert_file(v);
     }},
    {&FLAGS_tls_key,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_tls()->set_key_file(v);
     }},
    {&FLAGS_region,
     [](pb::AgentConfig& c, const std::string& v) { c.set_region(v); }},
    {&FLAGS_meter,
     [](pb::AgentConfig& c, const std::string& v) { c.set_meter(v); }},
    {&FLAGS_spool_dir,
     [](pb::AgentConfig& c, const std::string& v) { c.set_spool_dir(v); }},
    {&FLAGS_metrics_listen,
     [](pb::AgentConfig& c, const std::string& v) {
       c.set_metrics_address(v);
     }},
    {&FLAGS_nvml_library,
     [](pb::AgentConfig& c, const std::string& v) { c.set_nvml_library(v); }},
    {&FLAGS_runtime,
     [](pb::AgentConfig& c, const std::string& v) { c.set_runtime(v); }},
    {&FLAGS_telemetry,
     [](pb::AgentConfig& c, const std::string& v) { c.set_telemetry(v); }},
    {&FLAGS_dcmi_library,
     [](pb::AgentConfig& c, const std::string& v) { c.set_dcmi_library(v); }},
    {&FLAGS_access_template,
     [](pb::AgentConfig& c, const std::string& v) {
       c.set_access_template(v);
     }},
    {&FLAGS_sandbox,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_process()->set_sandbox(v);
     }},
    {&FLAGS_run_as,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_process()->set_run_as_user(v);
     }},
    {&FLAGS_work_root,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_process()->set_work_root(v);
     }},
    {&FLAGS_bwrap,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_process()->set_bwrap_path(v);
     }},
    {&FLAGS_slurm_partition,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_slurm()->set_partition(v);
     }},
    {&FLAGS_slurm_bin_dir,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_slurm()->set_bin_dir(v);
     }},
    {&FLAGS_slurm_login_host,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_slurm()->set_login_host(v);
     }},
    {&FLAGS_slurm_batch_log_dir,
     [](pb::AgentConfig& c, const std::string& v) {
       c.mutable_slurm()->set_batch_log_dir(v);
     }},
};

const NumberFlag kNumberFlags[] = {
    {[] { return absl::GetFlag(FLAGS_heartbeat_interval_ms); },
     [](pb::AgentConfig& c, int64_t v) { c.set_heartbeat_interval_ms(v); }},
    {[] { return absl::GetFlag(FLAGS_report_interval_ms); },
     [](pb::AgentConfig& c, int64_t v) { c.set_report_interval_ms(v); }},
    {[] { return absl::GetFlag(FLAGS_spool_max_bytes); },
     [](pb::AgentConfig& c, int64_t v) { c.set_spool_max_bytes(v); }},
    {[] { return int64_t{absl::GetFlag(FLAGS_idle_threshold_bp)}; },
     [](pb::AgentConfig& c, int64_t v) {
       c.set_idle_threshold_bp(static_cast<int32_t>(v));
     }},
    {[] { return absl::GetFlag(FLAGS_idle_after_s); },
     [](pb::AgentConfig& c, int64_t v) { c.set_idle_after_s(v); }},
    {[] { return absl::GetFlag(FLAGS_stop_grace_s); },
     [](pb::AgentConfig& c, int64_t v) { c.set_stop_grace_s(v); }},
    {[] { return absl::GetFlag(FLAGS_slurm_poll_interval_ms); },
     [](pb::AgentConfig& c, int64_t v) {
       c.mutable_slurm()->set_poll_interval_ms(v);
     }},
    {[] { return absl::GetFlag(FLAGS_slurm_command_timeout_ms); },
     [](pb::AgentConfig& c, int64_t v) {
       c.mutable_slurm()->set_command_timeout_ms(v);
     }},
};

// The Slurm lists, which replace those of the config file when given.
absl::Status ApplySlurmListFlags(pb::SlurmRuntimeConfig& slurm) {
  if (!absl::GetFlag(FLAGS_slurm_gres_models).empty()) {
    slurm.clear_gres_models();
    for (absl::string_view m : absl::StrSplit(
             absl::GetFlag(FLAGS_slurm_gres_models), ',', absl::SkipEmpty())) {
      slurm.add_gres_models(std::string(m));
    }
  }
  if (!absl::GetFlag(FLAGS_slurm_accounts).empty()) {
    slurm.clear_accounts();
    RETURN_IF_ERROR(
        AddSlurmAccounts(absl::GetFlag(FLAGS_slurm_accounts), slurm));
  }
  return absl::OkStatus();
}

// --inventory replaces the config file's inventory; --prices then prices
// it.
absl::Status ApplyInventoryFlags(pb::AgentConfig& config) {
  if (!absl::GetFlag(FLAGS_inventory).empty()) {
    ASSIGN_OR_RETURN(
        std::vector<pb::GpuModel> models,
        computevoucher::agent::ParseInventory(absl::GetFlag(FLAGS_inventory)));
    config.clear_inventory();
    for (pb::GpuModel& m : models) *config.add_inventory() = std::move(m);
  }
  if (!absl::GetFlag(FLAGS_prices).empty()) {
    std::vector<pb::GpuModel> models(config.inventory().begin(),
                                     config.inventory().end());
    RETURN_IF_ERROR(computevoucher::agent::ApplyPrices(
        absl::GetFlag(FLAGS_prices), models));
    config.clear_inventory();
    for (pb::GpuModel& m : models) *config.add_inventory() = std::move(m);
  }
  return absl::OkStatus();
}

absl::Status CheckSimulatedTelemetryFlags() {
  const int32_t util = absl::GetFlag(FLAGS_simulated_utilization_bp);
  if (util < 0 || util > 10'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("simulated_utilization_bp: must be 0..10000, got ", util));
  }
  const int64_t watts = absl::GetFlag(FLAGS_simulated_watts);
  if (watts < 0 || watts > 100'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("simulated_watts: must be 0..100000, got ", watts));
  }
  return absl::OkStatus();
}

absl::Status LoadConfig(pb::AgentConfig& config) {
  if (!absl::GetFlag(FLAGS_config).empty()) {
    RETURN_IF_ERROR(
        computevoucher::LoadTextProto(absl::GetFlag(FLAGS_config), &config));
  }
  // The runtimes' settings are present whether or not a flag sets them.
  config.mutable_process();
  config.mutable_slurm();
  for (const StringFlag& f : kStringFlags) {
    const std::string value = absl::GetFlag(*f.flag);
    if (!value.empty()) f.set(config, value);
  }
  RETURN_IF_ERROR(ApplySlurmListFlags(*config.mutable_slurm()));
  for (const NumberFlag& f : kNumberFlags) {
    const int64_t value = f.get();
    if (value != 0) f.set(config, value);
  }
  RETURN_IF_ERROR(ApplyInventoryFlags(config));
  return CheckSimulatedTelemetryFlags();
}

}  // namespace

int main(int argc, char** argv) {
  computevoucher::UseReleaseMutexChecks();
  // The synchronous client only retries a broken connection when gRPC's
  // backup poller runs (every 5 s by default); the agent wants to be back
  // within a fraction of a second of the scheduler. Must precede any gRPC
  // use; an operator's own setting wins.
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "200", 0);
  absl::SetProgramUsageMessage(kUsage);
  const std::vector<std::string> args =
      computevoucher::ParseFlags(argc, argv, kFlagGroups);
  if (args.size() > 1) {
    return Fail(absl::StrCat("unexpected argument \"", args[1],
                             "\"; everything is a flag (--help)"));
  }
  pb::AgentConfig config;
  if (absl::Status s = LoadConfig(config); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  computevoucher::agent::SimulatedTelemetry simulated;
  simulated.utilization_bp = absl::GetFlag(FLAGS_simulated_utilization_bp);
  simulated.watts = absl::GetFlag(FLAGS_simulated_watts);
  return computevoucher::agent::RunAgent(std::move(config), simulated);
}
