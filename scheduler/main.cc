// voucher-scheduler: serves the computevoucher API on its store.
//
//   voucher-scheduler [serve] --data-dir DIR [--store URL] [--listen ADDR]
//       [--config FILE] ...
//   voucher-scheduler verify --data-dir DIR | --store URL [--archive DIR]
//   voucher-scheduler archive --data-dir DIR | --store URL --before DATE
//       --to DIR
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/string_view.h"
#include "common/config.h"
#include "common/flags.h"
#include "common/mutexes.h"
#include "computevoucher/v1/config.pb.h"
#include "scheduler/archive_command.h"
#include "scheduler/server.h"
#include "scheduler/verify_command.h"

namespace {

// The headings of --help, in its order.
constexpr char kConfiguration[] = "Configuration";
constexpr char kStore[] = "Store";
constexpr char kNetwork[] = "Network and TLS";
constexpr char kReplicas[] = "Replicas (PostgreSQL)";
constexpr char kTiming[] = "Timing and retention";
constexpr char kObservability[] = "Observability";
constexpr char kStoreCommands[] = "verify and archive commands";
constexpr absl::string_view kFlagGroups[] = {
    kConfiguration, kStore,         kNetwork,      kReplicas,
    kTiming,        kObservability, kStoreCommands};

}  // namespace

CV_FLAG(kConfiguration, std::string, config, "",
        "textproto SchedulerConfig file; flags override it");
CV_FLAG(kNetwork, std::string, listen, "",
        "gRPC listen address (default 127.0.0.1:7443; port 0 picks one)");
CV_FLAG(kStore, std::string, data_dir, "",
        "data directory: the embedded store and the first admin token");
CV_FLAG(kStore, std::string, store, "",
        "store: sqlite (default, in --data-dir) or "
        "postgresql://user@host:port/dbname");
CV_FLAG(kObservability, std::string, metrics_listen, "",
        "Prometheus /metrics address; empty disables");
CV_FLAG(kNetwork, std::string, tls_cert, "", "PEM certificate chain for TLS");
CV_FLAG(kNetwork, std::string, tls_key, "", "PEM private key for TLS");
CV_FLAG(kNetwork, std::string, tls_client_ca, "",
        "PEM CA bundle that signs agents' client certificates");
CV_FLAG(kNetwork, bool, require_client_cert, false, "require mutual TLS");
CV_FLAG(kTiming, int64_t, tick_interval_ms, 0,
        "how often time-driven changes run (default 1000)");
CV_FLAG(kTiming, int64_t, usage_grace_s, 0,
        "grace for late usage before holds are released (default 300)");
CV_FLAG(kTiming, int64_t, retain_ended_s, 0,
        "how long an ended allocation (or a voucher whose window ended) "
        "stays in memory before it is retired to the store, where it is "
        "still read; later usage for an allocation is refused (default "
        "2592000, 30 days)");
CV_FLAG(kTiming, int64_t, heartbeat_interval_s, 0,
        "heartbeat interval asked of agents (default 10)");
CV_FLAG(kTiming, int64_t, cluster_silence_s, 0,
        "silence after which a cluster's allocations end (default 60)");
CV_FLAG(kReplicas, std::string, advertise, "",
        "host:port clients are told to reach this replica at (default: "
        "the listen address, with the host name for a wildcard host)");
CV_FLAG(kReplicas, int64_t, lease_s, 0,
        "how long the leader's lease lasts unrenewed "
        "(default 5); a follower takes over within lease * 5/4 of the "
        "leader's last renewal, plus replaying what its standby state has "
        "not caught up with");
CV_FLAG(kStore, int64_t, snapshot_every, 0,
        "store a snapshot of the state after this many commands, a usage "
        "report counting one per record (default 100000); start-up "
        "replays only the commands after the newest one");
CV_FLAG(kStore, int64_t, snapshot_interval_s, 0,
        "or after this many seconds with at least one command (default "
        "600)");
CV_FLAG(kNetwork, std::string, port_file, "",
        "file to write the bound port to once serving");
CV_FLAG(kStoreCommands, std::string, before, "",
        "archive: archive the commands applied before this date "
        "(YYYY-MM-DD, Asia/Shanghai), at least 31 days ago");
CV_FLAG(kStoreCommands, std::string, to, "",
        "archive: directory the archive is written into (one "
        "subdirectory per run)");
CV_FLAG(kStoreCommands, std::string, archive, "",
        "verify: directory of the store's archives, replayed before it");

namespace {

constexpr char kUsage[] =
    "voucher-scheduler: the compute-voucher allocation scheduler.\n\n"
    "  voucher-scheduler [serve] --data-dir DIR [--listen 127.0.0.1:7443]\n"
    "      Serves the API on the embedded store in DIR (created if missing).\n"
    "      On first start it writes an admin token to DIR/admin.token.\n"
    "      --store postgresql://user@host:port/dbname keeps the state in\n"
    "      PostgreSQL instead (DIR then holds only the admin token).\n"
    "      Several schedulers may share one database: the one holding the\n"
    "      lease serves; the others answer UNAVAILABLE naming it, and take\n"
    "      over within --lease-s * 5/4 when it stops renewing.\n"
    "  voucher-scheduler verify --data-dir DIR | --store URL [--archive A]\n"
    "      Re-derives every balance from the journal and checks every\n"
    "      invariant; exits 0 when all hold, 1 when one is broken. A store\n"
    "      that was archived is replayed from its archives in A first.\n"
    "  voucher-scheduler archive --data-dir DIR | --store URL\n"
    "      --before YYYY-MM-DD --to A\n"
    "      With no scheduler running on the store: writes the commands\n"
    "      applied before the date (31 days ago at the latest), their\n"
    "      journal entries and usage records to files under A, anchors\n"
    "      their manifest in the journal and drops them from the store.\n"
    "      Statements and settlement of archived days still answer.\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "voucher-scheduler: %s\n", message.c_str());
  return 2;
}

// `verify` or `archive`, which work on the store and serve nothing.
int RunOnStore(const std::string& command,
               const computevoucher::v1::SchedulerConfig& config) {
  if (config.data_dir().empty() && config.store().empty())
    return Fail(command + ": --data-dir or --store is required");
  if (command == "verify") {
    return computevoucher::scheduler::RunVerify(
        config, absl::GetFlag(FLAGS_archive), std::cout);
  }
  return computevoucher::scheduler::RunArchive(
      config, absl::GetFlag(FLAGS_before), absl::GetFlag(FLAGS_to), std::cout);
}

}  // namespace

int main(int argc, char** argv) {
  computevoucher::UseReleaseMutexChecks();
  absl::SetProgramUsageMessage(kUsage);
  const std::vector<std::string> args =
      computevoucher::ParseFlags(argc, argv, kFlagGroups);
  const std::string command = args.size() > 1 ? args[1] : "serve";
  if (args.size() > 2)
    return Fail("one command at a time: serve, verify or archive");

  computevoucher::v1::SchedulerConfig config;
  if (!absl::GetFlag(FLAGS_config).empty()) {
    absl::Status s =
        computevoucher::LoadTextProto(absl::GetFlag(FLAGS_config), &config);
    if (!s.ok()) return Fail(std::string(s.message()));
  }
  auto override_string = [](const std::string& flag, auto setter) {
    if (!flag.empty()) setter(flag);
  };
  override_string(absl::GetFlag(FLAGS_listen),
                  [&](auto v) { config.set_listen_address(v); });
  override_string(absl::GetFlag(FLAGS_data_dir),
                  [&](auto v) { config.set_data_dir(v); });
  override_string(absl::GetFlag(FLAGS_store),
                  [&](auto v) { config.set_store(v); });
  override_string(absl::GetFlag(FLAGS_metrics_listen),
                  [&](auto v) { config.set_metrics_address(v); });
  override_string(absl::GetFlag(FLAGS_advertise),
                  [&](auto v) { config.set_advertise_address(v); });
  override_string(absl::GetFlag(FLAGS_port_file),
                  [&](auto v) { config.set_port_file(v); });
  override_string(absl::GetFlag(FLAGS_tls_cert),
                  [&](auto v) { config.mutable_tls()->set_cert_file(v); });
  override_string(absl::GetFlag(FLAGS_tls_key),
                  [&](auto v) { config.mutable_tls()->set_key_file(v); });
  override_string(absl::GetFlag(FLAGS_tls_client_ca),
                  [&](auto v) { config.mutable_tls()->set_ca_file(v); });
  if (absl::GetFlag(FLAGS_require_client_cert)) {
    config.mutable_tls()->set_require_client_cert(true);
  }
  if (absl::GetFlag(FLAGS_tick_interval_ms) != 0) {
    config.set_tick_interval_ms(absl::GetFlag(FLAGS_tick_interval_ms));
  }
  if (absl::GetFlag(FLAGS_usage_grace_s) != 0) {
    config.set_usage_grace_s(absl::GetFlag(FLAGS_usage_grace_s));
  }
  if (absl::GetFlag(FLAGS_retain_ended_s) != 0) {
    config.set_retain_ended_s(absl::GetFlag(FLAGS_retain_ended_s));
  }
  if (absl::GetFlag(FLAGS_heartbeat_interval_s) != 0) {
    config.set_heartbeat_interval_s(absl::GetFlag(FLAGS_heartbeat_interval_s));
  }
  if (absl::GetFlag(FLAGS_snapshot_every) != 0) {
    config.set_snapshot_every(absl::GetFlag(FLAGS_snapshot_every));
  }
  if (absl::GetFlag(FLAGS_snapshot_interval_s) != 0) {
    config.set_snapshot_interval_s(absl::GetFlag(FLAGS_snapshot_interval_s));
  }
  if (absl::GetFlag(FLAGS_lease_s) != 0) {
    config.set_lease_s(absl::GetFlag(FLAGS_lease_s));
  }
  if (absl::GetFlag(FLAGS_cluster_silence_s) != 0) {
    config.set_cluster_silence_s(absl::GetFlag(FLAGS_cluster_silence_s));
  }

  if (command == "verify" || command == "archive") {
    return RunOnStore(command, config);
  }
  if (command != "serve") {
    return Fail("unknown command \"" + command +
                "\"; use serve, verify or archive (--help)");
  }
  absl::Status valid = computevoucher::scheduler::NormalizeConfig(config);
  if (!valid.ok()) return Fail(std::string(valid.message()));
  return computevoucher::scheduler::RunScheduler(std::move(config));
}
