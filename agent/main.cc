// voucher-agent: meters a GPU cluster for the compute-voucher scheduler.
//
//   voucher-agent --scheduler HOST:PORT[,HOST:PORT...] --token-file FILE
//       --spool-dir DIR
//       [--meter simulated|nvml|exec] [--inventory 8xH100:other]
//       [--prices H100=25.00] [--config FILE] ...
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/gpus.h"
#include "agent/nvml.h"
#include "agent/spool.h"
#include "common/config.h"
#include "common/flags.h"
#include "common/status_macros.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

ABSL_FLAG(std::string, config, "",
          "textproto AgentConfig file; flags override it");
ABSL_FLAG(std::string, scheduler, "",
          "scheduler address, e.g. 127.0.0.1:7443, or its replicas comma "
          "separated (the agent follows the one that leads)");
ABSL_FLAG(std::string, token_file, "", "file holding the agent's token");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle of the scheduler's certificate; enables TLS");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mutual TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM key of the client certificate");
ABSL_FLAG(std::string, region, "", "region reported at registration");
ABSL_FLAG(std::string, meter, "", "simulated (default), nvml or exec");
ABSL_FLAG(std::string, inventory, "",
          "GPUs as COUNTxMODEL:CLASS, e.g. 8xH100:other,16x910B:domestic "
          "(nvml discovers counts itself)");
ABSL_FLAG(std::string, prices, "",
          "CNY per GPU-hour per model, e.g. H100=25.00,910B=12.50");
ABSL_FLAG(int64_t, heartbeat_interval_ms, 0,
          "heartbeat interval (default: what the scheduler asks)");
ABSL_FLAG(int64_t, report_interval_ms, 0,
          "usage record length and report interval (default 10000)");
ABSL_FLAG(std::string, spool_dir, "", "durable spool directory");
ABSL_FLAG(int64_t, spool_max_bytes, 0, "spool size limit (default 256 MiB)");
ABSL_FLAG(std::string, metrics_listen, "",
          "Prometheus /metrics address, e.g. 127.0.0.1:9464; empty disables");
ABSL_FLAG(int32_t, idle_threshold_bp, 0,
          "utilisation in basis points under which GPUs count as idle "
          "(default 500 = 5%)");
ABSL_FLAG(int64_t, idle_after_s, 0,
          "idle time before an allocation is flagged (default 600)");
ABSL_FLAG(int64_t, stop_grace_s, 0,
          "exec meter: SIGTERM to SIGKILL grace (default 10)");
ABSL_FLAG(std::string, nvml_library, "",
          "NVML library for the nvml meter (default libnvidia-ml.so.1)");
ABSL_FLAG(int32_t, simulated_utilization_bp, 9000,
          "simulated and exec meters: utilisation the GPUs show");
ABSL_FLAG(int64_t, simulated_watts, 700,
          "simulated and exec meters: power each GPU draws");

namespace {

namespace pb = ::computevoucher::v1;

constexpr char kUsage[] =
    "voucher-agent: meters a GPU cluster for the compute-voucher scheduler.\n\n"
    "  voucher-agent --scheduler 127.0.0.1:7443 --token-file agent.token \\\n"
    "      --spool-dir /var/lib/voucher-agent --inventory 8xH100:other \\\n"
    "      --prices H100=25.00 [--meter simulated|nvml|exec]\n\n"
    "Registers the cluster, runs what the scheduler allocates to it, meters\n"
    "usage into the spool and reports it until acknowledged.\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "voucher-agent: %s\n", message.c_str());
  return 2;
}

absl::Status LoadConfig(pb::AgentConfig& config) {
  if (!absl::GetFlag(FLAGS_config).empty()) {
    RETURN_IF_ERROR(cv::LoadTextProto(absl::GetFlag(FLAGS_config), &config));
  }
  auto set = [](const std::string& flag, auto setter) {
    if (!flag.empty()) setter(flag);
  };
  set(absl::GetFlag(FLAGS_scheduler),
      [&](auto v) { config.set_scheduler_address(v); });
  set(absl::GetFlag(FLAGS_token_file),
      [&](auto v) { config.set_token_file(v); });
  set(absl::GetFlag(FLAGS_tls_ca),
      [&](auto v) { config.mutable_tls()->set_ca_file(v); });
  set(absl::GetFlag(FLAGS_tls_cert),
      [&](auto v) { config.mutable_tls()->set_cert_file(v); });
  set(absl::GetFlag(FLAGS_tls_key),
      [&](auto v) { config.mutable_tls()->set_key_file(v); });
  set(absl::GetFlag(FLAGS_region), [&](auto v) { config.set_region(v); });
  set(absl::GetFlag(FLAGS_meter), [&](auto v) { config.set_meter(v); });
  set(absl::GetFlag(FLAGS_spool_dir), [&](auto v) { config.set_spool_dir(v); });
  set(absl::GetFlag(FLAGS_metrics_listen),
      [&](auto v) { config.set_metrics_address(v); });
  set(absl::GetFlag(FLAGS_nvml_library),
      [&](auto v) { config.set_nvml_library(v); });
  auto set_number = [](auto flag, auto setter) {
    if (flag != 0) setter(flag);
  };
  set_number(absl::GetFlag(FLAGS_heartbeat_interval_ms),
             [&](auto v) { config.set_heartbeat_interval_ms(v); });
  set_number(absl::GetFlag(FLAGS_report_interval_ms),
             [&](auto v) { config.set_report_interval_ms(v); });
  set_number(absl::GetFlag(FLAGS_spool_max_bytes),
             [&](auto v) { config.set_spool_max_bytes(v); });
  set_number(absl::GetFlag(FLAGS_idle_threshold_bp),
             [&](auto v) { config.set_idle_threshold_bp(v); });
  set_number(absl::GetFlag(FLAGS_idle_after_s),
             [&](auto v) { config.set_idle_after_s(v); });
  set_number(absl::GetFlag(FLAGS_stop_grace_s),
             [&](auto v) { config.set_stop_grace_s(v); });
  if (!absl::GetFlag(FLAGS_inventory).empty()) {
    ASSIGN_OR_RETURN(std::vector<pb::GpuModel> models,
                     cv::agent::ParseInventory(absl::GetFlag(FLAGS_inventory)));
    config.clear_inventory();
    for (pb::GpuModel& m : models) *config.add_inventory() = std::move(m);
  }
  if (!absl::GetFlag(FLAGS_prices).empty()) {
    std::vector<pb::GpuModel> models(config.inventory().begin(),
                                     config.inventory().end());
    RETURN_IF_ERROR(
        cv::agent::ApplyPrices(absl::GetFlag(FLAGS_prices), models));
    config.clear_inventory();
    for (pb::GpuModel& m : models) *config.add_inventory() = std::move(m);
  }
  RETURN_IF_ERROR(cv::agent::NormalizeAgentConfig(config));
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

}  // namespace

int main(int argc, char** argv) {
  // The synchronous client only retries a broken connection when gRPC's
  // backup poller runs (every 5 s by default); the agent wants to be back
  // within a fraction of a second of the scheduler. Must precede any gRPC
  // use; an operator's own setting wins.
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "200", 0);
  absl::SetProgramUsageMessage(kUsage);
  const std::vector<std::string> args = cv::ParseFlags(argc, argv);
  if (args.size() > 1) {
    return Fail(absl::StrCat("unexpected argument \"", args[1],
                             "\"; everything is a flag (--help)"));
  }
  pb::AgentConfig config;
  if (absl::Status s = LoadConfig(config); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  absl::StatusOr<std::string> token = cv::ReadFile(config.token_file());
  if (!token.ok()) return Fail(std::string(token.status().message()));
  const std::string bearer(absl::StripAsciiWhitespace(*token));
  if (bearer.empty()) {
    return Fail(absl::StrCat("token_file: ", config.token_file(), " is empty"));
  }

  // Signals are taken by sigwait below, not by handlers; workloads get
  // default dispositions back (agent/workload.h).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  cv::RealClock clock;
  std::vector<pb::GpuModel> inventory(config.inventory().begin(),
                                      config.inventory().end());
  std::unique_ptr<cv::agent::GpuSource> gpus;
  if (config.meter() == "nvml") {
    absl::StatusOr<std::unique_ptr<cv::agent::Nvml>> nvml =
        cv::agent::Nvml::Load(config.nvml_library());
    if (!nvml.ok()) return Fail(std::string(nvml.status().message()));
    absl::StatusOr<std::unique_ptr<cv::agent::GpuSource>> found =
        cv::agent::NewNvmlGpus(*std::move(nvml), inventory);
    if (!found.ok()) return Fail(std::string(found.status().message()));
    gpus = *std::move(found);
    config.clear_inventory();
    for (pb::GpuModel& m : inventory) *config.add_inventory() = std::move(m);
  } else {
    gpus = cv::agent::NewSimulatedGpus(
        inventory, absl::GetFlag(FLAGS_simulated_utilization_bp),
        absl::GetFlag(FLAGS_simulated_watts), clock.Now());
  }

  cv::agent::Spool::Options spool_options;
  spool_options.dir = config.spool_dir();
  spool_options.max_bytes = config.spool_max_bytes();
  absl::StatusOr<std::unique_ptr<cv::agent::Spool>> spool =
      cv::agent::Spool::Open(spool_options);
  if (!spool.ok()) return Fail(std::string(spool.status().message()));

  absl::StatusOr<cv::agent::StubFactory> stubs =
      cv::agent::NewAgentStubFactory(config.tls());
  if (!stubs.ok()) return Fail(std::string(stubs.status().message()));

  auto registry = std::make_shared<prometheus::Registry>();
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
      std::fprintf(stderr, "voucher-agent: metrics on port %d at /metrics\n",
                   port);
    }
  }

  cv::agent::Agent agent(config, *std::move(stubs), bearer, std::move(gpus),
                         *std::move(spool), clock, registry.get());
  std::thread waiter([&agent, &signals] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    agent.Stop();
  });
  agent.Run();
  waiter.join();
  return 0;
}
