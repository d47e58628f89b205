#include "scheduler/server.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/stop_signals.h"
#include "common/thread_name.h"
#include "common/validate.h"
#include "common/version.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "prometheus/gauge.h"
#include "scheduler/api/leader_hint.h"
#include "scheduler/engine/writer.h"
#include "scheduler/store/open_store.h"

namespace computevoucher::scheduler {
namespace {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const pb::SchedulerConfig& config) {
  if (!config.has_tls()) return grpc::InsecureServerCredentials();
  const pb::TlsConfig& tls = config.tls();
  grpc::SslServerCredentialsOptions options(
      tls.require_client_cert()
          ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ASSIGN_OR_RETURN(const std::string cert, ReadFile(tls.cert_file()));
  ASSIGN_OR_RETURN(const std::string key, ReadFile(tls.key_file()));
  options.pem_key_cert_pairs.push_back({key, cert});
  if (!tls.ca_file().empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs, ReadFile(tls.ca_file()));
  }
  return grpc::SslServerCredentials(options);
}

// Writes one JSON line to stderr for each administrative change once it is
// durable, for log collectors ({"audit": {...}}); the audit log
// (ListAudit) keeps every command people sent.
void LogAdminChange(const pb::AuditEvent& event) {
  if (event.principal().role() != pb::ROLE_ADMIN) return;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(event, &json, options)
           .ok()) {
    return;
  }
  std::fprintf(stderr, "{\"audit\":%s}\n", json.c_str());
  std::fflush(stderr);
}

// The address clients are told to reach this replica at: the configured
// one, or the listen address with the port bound (the host name in place
// of a wildcard host).
std::string AdvertisedAddress(const pb::SchedulerConfig& config, int port) {
  if (!config.advertise_address().empty()) return config.advertise_address();
  std::string host = config.listen_address();
  const size_t colon = host.rfind(':');
  if (colon != std::string::npos) host.resize(colon);
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    char name[256] = {};
    gethostname(name, sizeof(name) - 1);
    host = name;
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

absl::Status NormalizeConfig(pb::SchedulerConfig& config) {
  if (config.listen_address().empty())
    config.set_listen_address("127.0.0.1:7443");
  // The admin token goes to the data directory whichever the store.
  if (config.data_dir().empty()) {
    return absl::InvalidArgumentError("data_dir: required (--data-dir DIR)");
  }
  RETURN_IF_ERROR(store::ValidateStoreConfig(config));
  if (config.tick_interval_ms() == 0) config.set_tick_interval_ms(1000);
  RETURN_IF_ERROR(
      CheckRange("tick_interval_ms", config.tick_interval_ms(), 10, 60'000));
  if (config.usage_grace_s() == 0) config.set_usage_grace_s(300);
  RETURN_IF_ERROR(
      CheckRange("usage_grace_s", config.usage_grace_s(), 0, 7 * 24 * 3600));
  if (config.retain_ended_s() == 0)
    config.set_retain_ended_s(core::kDefaultRetainEndedS);
  // Retired before its hold went back, an allocation would never be: the
  // retention counts from the end, as the grace does.
  RETURN_IF_ERROR(CheckRange("retain_ended_s (at least usage_grace_s)",
                             config.retain_ended_s(), config.usage_grace_s(),
                             core::kMaxRetainEndedS));
  if (config.heartbeat_interval_s() == 0) config.set_heartbeat_interval_s(10);
  RETURN_IF_ERROR(CheckRange("heartbeat_interval_s",
                             config.heartbeat_interval_s(), 1, 3600));
  if (config.cluster_silence_s() == 0) config.set_cluster_silence_s(60);
  RETURN_IF_ERROR(CheckRange("cluster_silence_s", config.cluster_silence_s(),
                             config.heartbeat_interval_s(), 24 * 3600));
  // The writer's own defaults, so that each has one home.
  const engine::WriterOptions writer_defaults;
  if (config.max_batch_commands() == 0) {
    config.set_max_batch_commands(writer_defaults.max_batch_commands);
  }
  RETURN_IF_ERROR(CheckRange("max_batch_commands", config.max_batch_commands(),
                             1, 1'000'000));
  // 0 stays: the writer takes the store's DefaultBatchRecords().
  if (config.max_batch_records() != 0) {
    RETURN_IF_ERROR(CheckRange("max_batch_records", config.max_batch_records(),
                               1, 1'000'000));
  }
  if (config.snapshot_every() == 0) {
    config.set_snapshot_every(writer_defaults.snapshots.every);
  }
  RETURN_IF_ERROR(
      CheckRange("snapshot_every", config.snapshot_every(), 1, 1'000'000'000));
  if (config.snapshot_interval_s() == 0) {
    config.set_snapshot_interval_s(
        absl::ToInt64Seconds(writer_defaults.snapshots.interval));
  }
  RETURN_IF_ERROR(CheckRange("snapshot_interval_s",
                             config.snapshot_interval_s(), 1, 7 * 24 * 3600));
  if (config.lease_s() == 0) config.set_lease_s(5);
  RETURN_IF_ERROR(CheckRange("lease_s", config.lease_s(), 1, 300));
  if (!config.advertise_address().empty()) {
    RETURN_IF_ERROR(
        CheckLength("advertise_address", config.advertise_address(), 3, 256));
    if (config.advertise_address().find(':') == std::string::npos ||
        config.advertise_address().find(',') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "advertise_address: ", Quoted(config.advertise_address()),
          " must be one host:port"));
    }
  }
  if (config.has_tls()) {
    RETURN_IF_ERROR(
        CheckLength("tls.cert_file", config.tls().cert_file(), 1, 4096));
    RETURN_IF_ERROR(
        CheckLength("tls.key_file", config.tls().key_file(), 1, 4096));
    if (config.tls().require_client_cert() && config.tls().ca_file().empty()) {
      return absl::InvalidArgumentError(
          "tls.ca_file: required to verify client certificates");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SchedulerServer>> SchedulerServer::Start(
    pb::SchedulerConfig config, Clock& clock) {
  RETURN_IF_ERROR(NormalizeConfig(config));
  std::unique_ptr<SchedulerServer> s(new SchedulerServer());
  s->config_ = std::move(config);
  s->clock_ = &clock;
  RETURN_IF_ERROR(s->OpenReplica());
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   Credentials(s->config_));
  s->MakeServices();
  if (!s->config_.metrics_address().empty()) {
    // Before the API, so that a scheduler that cannot serve its metrics
    // never starts serving calls.
    s->state_metrics_ = std::make_shared<StateCollector>(
        *s->replica_, *s->liveness_, clock,
        absl::Seconds(s->config_.cluster_silence_s()));
    ASSIGN_OR_RETURN(s->metrics_exposer_,
                     ServeMetrics(s->config_.metrics_address(),
                                  {s->registry_, s->state_metrics_}));
    s->metrics_port_ = MetricsPort(*s->metrics_exposer_);
  }
  RETURN_IF_ERROR(s->Listen(credentials));
  s->UpdateHealth();
  // Listening first: the address a replica campaigns with has the port.
  if (absl::Status started =
          s->replica_->Start(AdvertisedAddress(s->config_, s->port_));
      !started.ok()) {
    s->Shutdown(absl::ZeroDuration());
    return started;
  }
  if (!s->config_.port_file().empty()) {
    const std::string tmp = absl::StrCat(s->config_.port_file(), ".tmp");
    std::ofstream(tmp) << s->port_ << "\n";
    std::rename(tmp.c_str(), s->config_.port_file().c_str());
  }
  s->ticker_ =
      StartNamedThread("cv-tick", [raw = s.get()] { raw->TickLoop(); });
  return s;
}

absl::Status SchedulerServer::OpenReplica() {
  ASSIGN_OR_RETURN(store_,
                   store::OpenStore(config_, store::OpenMode::kReplica));
  registry_ = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("computevoucher_build_info")
      .Help("The scheduler's version and git revision; always 1.")
      .Register(*registry_)
      .Add({{"version", Version()}, {"revision", Revision()}})
      .Set(1);
  writer_metrics_ = std::make_unique<WriterMetrics>(*registry_);
  grpc_metrics_ = std::make_unique<api::GrpcMetrics>(*registry_);
  usage_metrics_ = std::make_unique<api::UsageMetrics>(*registry_);
  engine::ReplicaOptions options;
  options.lease = absl::Seconds(config_.lease_s());
  options.writer.max_batch_commands = config_.max_batch_commands();
  options.writer.max_batch_records = config_.max_batch_records();
  options.writer.snapshots.every = config_.snapshot_every();
  options.writer.snapshots.interval =
      absl::Seconds(config_.snapshot_interval_s());
  options.writer.on_commit = writer_metrics_->OnCommit();
  options.writer.on_audit = LogAdminChange;
  options.on_lead = [this](engine::Writer& w) { return OnLead(w); };
  options.on_change = [this](bool) { UpdateHealth(); };
  replica_ = std::make_unique<engine::Replica>(*store_, *clock_, options);
  return absl::OkStatus();
}

void SchedulerServer::MakeServices() {
  liveness_ = std::make_unique<api::Liveness>(clock_->Now());
  services_context_.replica = replica_.get();
  services_context_.log = store_.get();
  services_context_.usage = store_.get();
  services_context_.retired = store_.get();
  services_context_.archived = store_.get();
  services_context_.clock = clock_;
  services_context_.liveness = liveness_.get();
  services_context_.calls = &calls_;
  services_context_.token_uses = &token_uses_;
  services_context_.usage_metrics = usage_metrics_.get();
  services_context_.config = config_;
  admin_service_ = std::make_unique<api::AdminServiceImpl>(services_context_);
  enterprise_service_ =
      std::make_unique<api::EnterpriseServiceImpl>(services_context_);
  agent_service_ = std::make_unique<api::AgentServiceImpl>(services_context_);
}

// gRPC's synchronous server answers each call on a thread of its own. A
// thread that has answered one waits for the next only while fewer than
// MAX_POLLERS threads wait (gRPC's default: 2); any other ends, and a call
// that finds no thread waiting starts a new one. Agents' ReportUsage calls
// overlap (each waits for its commit), so nearly every call started a
// thread and ended it: under scheduler_load, threads that ended used a
// third of the process's CPU (the calls they answered included), and
// keeping them cut the CPU per record by 0.3 to 3.5 us in three paired runs
// (docs/performance.md). Up to this many stay waiting for the life of the
// process, each idle one waking every 10 s; above this many calls in
// flight, threads start and end per call again.
constexpr int kWaitingThreads = 128;

void SetServerThreads(grpc::ServerBuilder& builder) {
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kWaitingThreads);
}

absl::Status SchedulerServer::Listen(
    const std::shared_ptr<grpc::ServerCredentials>& credentials) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second scheduler on the same
  // address would start and take half the connections. One listener per
  // address; a port in use is an error at start.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(config_.listen_address(), credentials, &port_);
  // Tested by ServerThreads.ThreadsThatAnsweredCallsAnswerTheNextOnes.
  SetServerThreads(builder);
  builder.RegisterService(admin_service_.get());
  builder.RegisterService(enterprise_service_.get());
  builder.RegisterService(agent_service_.get());
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(calls_.InterceptorFactory());
  interceptors.push_back(grpc_metrics_->InterceptorFactory());
  interceptors.push_back(api::LeaderHintInterceptorFactory(*replica_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "listen_address: cannot listen on ", config_.listen_address(),
        " (in use by another process, or not an address of this host)"));
  }
  return absl::OkStatus();
}

SchedulerServer::~SchedulerServer() { Shutdown(); }

absl::Status SchedulerServer::OnLead(engine::Writer& writer) {
  // Agents heartbeat only to the leader: give each a full grace period from
  // now before its allocations are declared lost.
  liveness_->Restart(clock_->Now());
  return BootstrapAdminToken(writer);
}

absl::Status SchedulerServer::BootstrapAdminToken(engine::Writer& writer) {
  if (!admin_token_path_.empty()) return absl::OkStatus();
  const bool has_tokens = writer.Read(
      [](const core::StateMachine& state) { return !state.tokens().empty(); });
  if (has_tokens) return absl::OkStatus();
  ASSIGN_OR_RETURN(const std::string secret, api::NewSecret());
  // With PostgreSQL nothing else has created the directory.
  if (mkdir(config_.data_dir().c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data_dir: ", config_.data_dir(), ": ", std::strerror(errno)));
  }
  const std::string path = absl::StrCat(config_.data_dir(), "/admin.token");
  // A token file left by a start that died before committing is stale.
  std::remove(path.c_str());
  RETURN_IF_ERROR(WritePrivateFile(path, secret + "\n"));
  pb::Command command;
  command.mutable_bootstrap_admin()->set_secret_sha256(Sha256(secret));
  absl::StatusOr<core::Outcome> outcome = writer.Submit(std::move(command));
  if (!outcome.ok()) {
    std::remove(path.c_str());
    return outcome.status();
  }
  admin_token_path_ = path;
  return absl::OkStatus();
}

void SchedulerServer::TickLoop() {
  const absl::Duration interval =
      absl::Milliseconds(config_.tick_interval_ms());
  while (!stop_ticker_.WaitForNotificationWithTimeout(interval)) TickNow();
}

void SchedulerServer::TickNow() {
  absl::StatusOr<std::shared_ptr<engine::Writer>> writer = replica_->writer();
  if (writer.ok()) {
    pb::Command command;
    command.mutable_tick()->set_usage_grace_s(config_.usage_grace_s());
    command.mutable_tick()->set_retain_ended_s(config_.retain_ended_s());
    command.mutable_tick()->set_retire_at_most(core::kRetiredPerTick);
    command.mutable_tick()->set_retire_vouchers_at_most(core::kRetiredPerTick);
    for (pb::TokenUse& use : token_uses_.Take(core::kMaxTokenUsesPerTick)) {
      *command.mutable_tick()->add_token_uses() = std::move(use);
    }
    absl::StatusOr<core::Outcome> outcome =
        (*writer)->Submit(std::move(command));
    if (!outcome.ok() &&
        outcome.status().code() != absl::StatusCode::kUnavailable) {
      LogLine("voucher-scheduler",
              absl::StrCat("tick failed: ", outcome.status().ToString()));
    }
    DeclareSilentClustersLost(**writer);
  }
  UpdateHealth();
}

void SchedulerServer::UpdateHealth() {
  // The standard health service says NOT_SERVING on a follower, while the
  // store's commits fail and once it has failed beyond recovery, so that
  // load balancers and operators see which replica serves.
  absl::StatusOr<std::shared_ptr<engine::Writer>> writer = replica_->writer();
  if (grpc::HealthCheckServiceInterface* health =
          server_->GetHealthCheckService()) {
    health->SetServingStatus(writer.ok() && !(*writer)->degraded());
  }
}

void SchedulerServer::DeclareSilentClustersLost(engine::Writer& writer) {
  const absl::Time now = clock_->Now();
  const absl::Duration silence = absl::Seconds(config_.cluster_silence_s());
  const std::vector<std::string> busy =
      writer.Read([](const core::StateMachine& state) {
        std::vector<std::string> ids;
        for (const auto& [id, rec] : state.clusters()) {
          if (!state.ActiveAllocationIds(id).empty()) ids.push_back(id);
        }
        return ids;
      });
  for (const std::string& id : busy) {
    if (liveness_->Connected(id, now, silence)) continue;
    pb::Command command;
    command.mutable_cluster_lost()->set_cluster_id(id);
    absl::StatusOr<core::Outcome> outcome = writer.Submit(std::move(command));
    if (outcome.ok() && outcome->changed) {
      std::printf(
          "voucher-scheduler: cluster %s silent for more than %llds; its "
          "allocations "
          "ended\n",
          id.c_str(), static_cast<long long>(config_.cluster_silence_s()));
      std::fflush(stdout);
    }
  }
}

void SchedulerServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_) {
    // Refuse new calls, let those in progress finish, then close the
    // connections: gRPC alone would wait out the whole grace period for
    // clients that merely keep an idle connection open.
    const absl::Time deadline = absl::Now() + grace;
    calls_.Drain();
    calls_.WaitIdle(deadline);
    // Calls that arrive meanwhile are refused at once (ServiceBase::Caller)
    // and have done nothing; one that arrives as the transport closes may
    // be cancelled by gRPC, with nothing done either. A handler that has
    // returned may still have its answer to send: what is left of the grace
    // period, up to kFlushAnswers, lets it go out, so that a client is not
    // told UNAVAILABLE for a command that was committed.
    const absl::Duration flush =
        std::clamp(deadline - absl::Now(), absl::ZeroDuration(), kFlushAnswers);
    server_->Shutdown(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(flush));
  }
  if (!stop_ticker_.HasBeenNotified()) stop_ticker_.Notify();
  if (ticker_.joinable()) ticker_.join();
  // Answers the queued commands and gives the lease up, so that a follower
  // takes over at once.
  if (replica_) replica_->Stop();
  metrics_exposer_.reset();
}

int RunScheduler(pb::SchedulerConfig config) {
  // Block the stop signals in every thread; this one waits for them.
  const sigset_t signals = BlockStopSignals();

  RealClock clock;
  absl::StatusOr<std::unique_ptr<SchedulerServer>> server =
      SchedulerServer::Start(std::move(config), clock);
  if (!server.ok()) {
    LogLine("voucher-scheduler", server.status().ToString());
    return 1;
  }
  std::printf("voucher-scheduler: serving on port %d\n", (*server)->port());
  if ((*server)->metrics_port() != 0) {
    std::printf("voucher-scheduler: metrics on port %d at /metrics\n",
                (*server)->metrics_port());
  }
  if (!(*server)->admin_token_path().empty()) {
    std::printf(
        "voucher-scheduler: first admin token written to %s (mode 0600)\n",
        (*server)->admin_token_path().c_str());
  }
  std::fflush(stdout);
  NotifySystemd(
      absl::StrCat("READY=1\nSTATUS=serving on port ", (*server)->port()));
  const int signal_number = WaitForStopSignal(signals);
  NotifySystemd("STOPPING=1");
  std::printf("voucher-scheduler: signal %d, shutting down\n", signal_number);
  std::fflush(stdout);
  (*server)->Shutdown();
  std::printf("voucher-scheduler: stopped\n");
  return 0;
}

}  // namespace computevoucher::scheduler
