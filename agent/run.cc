#include "agent/run.h"

#include <signal.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/agent.h"
#include "agent/dcmi.h"
#include "agent/gpus.h"
#include "agent/internal/command.h"
#include "agent/nvml.h"
#include "agent/process_runtime.h"
#include "agent/slurm_runtime.h"
#include "agent/spool.h"
#include "common/config.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/status_macros.h"
#include "common/stop_signals.h"
#include "common/version.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace computevoucher::agent {
namespace {

int Fail(const std::string& message) {
  LogLine("voucher-agent", message);
  return 2;
}

absl::Status CheckInventory(const pb::AgentConfig& config) {
  if (config.inventory().empty()) {
    return absl::InvalidArgumentError(
        "inventory: required: the cluster's GPU models with classes and "
        "prices, e.g. --inventory 8xH100:other --prices H100=25.00");
  }
  for (const pb::GpuModel& m : config.inventory()) {
    if (m.price_fen_per_gpu_hour() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("prices: no price for model ", m.model(),
                       "; add --prices ", m.model(), "=<CNY per GPU-hour>"));
    }
  }
  return absl::OkStatus();
}

// The telemetry source; nvml (and dcmi) set the inventory's counts from
// the devices they find.
absl::StatusOr<std::unique_ptr<GpuSource>> NewTelemetry(
    const pb::AgentConfig& config, const SimulatedTelemetry& simulated,
    std::vector<pb::GpuModel>& inventory, absl::Time now) {
  if (config.telemetry() == "nvml") {
    ASSIGN_OR_RETURN(std::unique_ptr<Nvml> nvml,
                     Nvml::Load(config.nvml_library()));
    return NewNvmlGpus(std::move(nvml), inventory);
  }
  if (config.telemetry() == "dcmi") {
    ASSIGN_OR_RETURN(std::unique_ptr<Dcmi> dcmi,
                     Dcmi::Load(config.dcmi_library()));
    return NewDcmiGpus(std::move(dcmi), inventory);
  }
  return NewSimulatedGpus(inventory, simulated.utilization_bp, simulated.watts,
                          now);
}

absl::StatusOr<std::unique_ptr<Runtime>> NewRuntime(
    const pb::AgentConfig& config, const std::vector<pb::GpuModel>& inventory) {
  if (config.runtime() == "slurm") {
    return NewSlurmRuntime(config.slurm(), config.access_template(),
                           SystemCommandRunner(), inventory);
  }
  if (config.runtime() == "process") {
    // Beside the spool, not in it: the spool is the agent's alone (0700),
    // the working directories' parents must be searchable by the tenant.
    const std::filesystem::path spool = std::filesystem::absolute(
        std::string(absl::StripSuffix(config.spool_dir(), "/")));
    return NewProcessRuntime(config.process(), config.spool_dir(),
                             spool.parent_path() / "work",
                             config.access_template());
  }
  return NewSimulatedRuntime(config.access_template());
}

// The agent's token from `path`, or what is wrong with it, naming the
// flag.
absl::StatusOr<std::string> ReadToken(const std::string& path) {
  absl::StatusOr<std::string> token = ReadFile(path);
  if (!token.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--token-file: ", token.status().message()));
  }
  const std::string bearer(absl::StripAsciiWhitespace(*token));
  if (bearer.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--token-file: ", path, " is empty"));
  }
  return bearer;
}

// The agent's metrics registry, with computevoucher_agent_build_info: the
// version and git revision, as Prometheus exporters label theirs.
std::shared_ptr<prometheus::Registry> NewRegistry() {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("computevoucher_agent_build_info")
      .Help("The agent's version and git revision; always 1.")
      .Register(*registry)
      .Add({{"version", Version()}, {"revision", Revision()}})
      .Set(1);
  return registry;
}

}  // namespace

int RunAgent(pb::AgentConfig config, const SimulatedTelemetry& simulated) {
  const std::string meter = config.meter();
  if (absl::Status s = NormalizeAgentConfig(config); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  if (!meter.empty()) {
    LogLine(
        "voucher-agent",
        absl::StrCat("meter \"", meter,
                     "\" is deprecated and will go in the next release; "
                     "it means --runtime ",
                     config.runtime(), " --telemetry ", config.telemetry()));
  }
  if (absl::Status s = CheckInventory(config); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  absl::StatusOr<std::string> bearer = ReadToken(config.token_file());
  if (!bearer.ok()) return Fail(std::string(bearer.status().message()));

  const sigset_t signals = BlockStopSignals();

  RealClock clock;
  std::vector<pb::GpuModel> inventory(config.inventory().begin(),
                                      config.inventory().end());
  if (config.runtime() == "slurm") {
    if (absl::Status s = DiscoverSlurmInventory(
            config.slurm(), SystemCommandRunner(), inventory);
        !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  absl::StatusOr<std::unique_ptr<GpuSource>> gpus =
      NewTelemetry(config, simulated, inventory, clock.Now());
  if (!gpus.ok()) return Fail(std::string(gpus.status().message()));
  config.clear_inventory();
  for (pb::GpuModel& m : inventory) *config.add_inventory() = std::move(m);
  absl::StatusOr<std::unique_ptr<Runtime>> runtime =
      NewRuntime(config, {config.inventory().begin(), config.inventory().end()});
  if (!runtime.ok()) return Fail(std::string(runtime.status().message()));

  Spool::Options spool_options;
  spool_options.dir = config.spool_dir();
  spool_options.max_bytes = config.spool_max_bytes();
  absl::StatusOr<std::unique_ptr<Spool>> spool = Spool::Open(spool_options);
  if (!spool.ok()) return Fail(std::string(spool.status().message()));

  absl::StatusOr<StubFactory> stubs = NewAgentStubFactory(config.tls());
  if (!stubs.ok()) return Fail(std::string(stubs.status().message()));

  std::shared_ptr<prometheus::Registry> registry = NewRegistry();
  std::unique_ptr<prometheus::Exposer> exposer;
  if (!config.metrics_address().empty()) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(config.metrics_address());
    } catch (const std::exception& e) {
      return Fail(absl::StrCat("metrics_address: cannot listen on ",
                               config.metrics_address(), ": ", e.what()));
    }
    exposer->RegisterCollectable(registry);
    for (int port : exposer->GetListeningPorts()) {
      LogLine("voucher-agent",
              absl::StrCat("metrics on port ", port, " at /metrics"));
    }
  }

  Agent agent(config, *std::move(stubs), *bearer, *std::move(gpus),
              *std::move(runtime), *std::move(spool), clock, registry.get());
  std::thread waiter([&agent, &signals] {
    WaitForStopSignal(signals);
    NotifySystemd("STOPPING=1");
    agent.Stop();
  });
  // Spool, runtime and telemetry are up: the agent meters from here on,
  // whether or not the scheduler answers yet.
  NotifySystemd("READY=1");
  agent.Run();
  waiter.join();
  return 0;
}

}  // namespace computevoucher::agent
