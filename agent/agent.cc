#include "agent/agent.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/config.h"
#include "agent/meter.h"
#include "agent/slurm_runtime.h"
#include "common/grpc_channel.h"
#include "common/leader.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace computevoucher::agent {
namespace {

constexpr char kVersion[] = "computevoucher-agent/1";
constexpr size_t kMaxRecordsPerReport = 1000;
constexpr absl::Duration kMaxSampleInterval = absl::Seconds(1);
constexpr absl::Duration kRpcDeadline = absl::Seconds(10);
constexpr absl::Duration kMinBackoff = absl::Milliseconds(200);
constexpr absl::Duration kMaxBackoff = absl::Seconds(10);

std::string RequestId(std::mt19937_64& random) {
  return absl::StrCat("agent-", absl::Hex(random(), absl::kZeroPad16));
}

std::string Describe(const grpc::Status& s) {
  static constexpr const char* kCodes[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int code = static_cast<int>(s.error_code());
  return absl::StrCat(code >= 0 && code <= 16 ? kCodes[code] : "CODE", ": ",
                      s.error_message());
}

// When the allocation must stop; never for one without a deadline (one that
// ended while the agent was down).
absl::Time DeadlineOf(const pb::DesiredAllocation& d) {
  if (!d.has_deadline()) return absl::InfiniteFuture();
  return FromProto("deadline", d.deadline()).value_or(absl::InfiniteFuture());
}

std::string JoinIndices(const std::vector<int>& indices) {
  return absl::StrJoin(indices, ",");
}

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
    return absl::InvalidArgumentError(absl::StrCat(
        "runtime: must be simulated, process or slurm, got ",
        Quoted(c.runtime())));
  }
  if (c.telemetry().empty()) c.set_telemetry("simulated");
  if (c.telemetry() != "simulated" && c.telemetry() != "nvml" &&
      c.telemetry() != "dcmi") {
    return absl::InvalidArgumentError(absl::StrCat(
        "telemetry: must be simulated, nvml or dcmi, got ",
        Quoted(c.telemetry())));
  }
  return absl::OkStatus();
}

}  // namespace

struct Agent::Running {
  Running(absl::Time interval_start, absl::Duration idle_after)
      : meter(interval_start), idle(idle_after) {}
  pb::DesiredAllocation desired;
  std::vector<int> gpu_indices;
  // Null for an allocation that ended while the agent was down.
  std::unique_ptr<RuntimeAllocation> handle;
  // The runtime has given the GPUs (a Slurm job left PENDING).
  bool started = true;
  // The runtime's evidence at the last look, for the records, and whether
  // it saw the tenant's work running (nullopt: it cannot tell).
  std::string evidence;
  std::optional<bool> busy;
  UsageMeter meter;
  IdleTracker idle;
  // Metering ends here once the allocation is stopping.
  std::optional<absl::Time> stop_at;
  bool final_spooled = false;
  // The workload exited by itself with this code.
  std::optional<int> exit_code;
  // The cluster ended it on its own, saying this.
  std::optional<std::string> ended_on_cluster;
  // Listed in the scheduler's last desired set.
  bool wanted = true;
  // Stopped because its deadline passed (the scheduler may extend it).
  bool stopped_at_deadline = false;
};

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
  if (c.runtime() == "slurm") RETURN_IF_ERROR(NormalizeSlurmConfig(*c.mutable_slurm()));
  return absl::OkStatus();
}

absl::StatusOr<StubFactory> NewAgentStubFactory(const pb::TlsConfig& tls) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                   SchedulerCredentials(tls));
  return [credentials](const std::string& address) {
    return std::unique_ptr<pb::AgentService::StubInterface>(
        pb::AgentService::NewStub(NewSchedulerChannel(address, credentials)));
  };
}

Agent::Agent(pb::AgentConfig config, StubFactory stubs, std::string token,
             std::unique_ptr<GpuSource> gpus, std::unique_ptr<Runtime> runtime,
             std::unique_ptr<Spool> spool, Clock& clock,
             prometheus::Registry* registry)
    : config_(std::move(config)),
      stubs_(std::move(stubs)),
      addresses_(
          ParseAddressList("scheduler_address", config_.scheduler_address())
              .value_or(std::vector<std::string>{config_.scheduler_address()})),
      token_(std::move(token)),
      gpus_(std::move(gpus)),
      runtime_(std::move(runtime)),
      spool_(std::move(spool)),
      clock_(clock),
      heartbeat_interval_(
          config_.heartbeat_interval_ms() > 0
              ? absl::Milliseconds(config_.heartbeat_interval_ms())
              : absl::Seconds(10)),
      random_(std::random_device{}()) {
  if (registry != nullptr) {
    metrics_ = std::make_unique<AgentMetrics>(*registry);
  }
  SwitchTo(addresses_.front());
  for (const std::string& id : spool_->Allocations()) resumable_.insert(id);
  next_cut_ = Now() + absl::Milliseconds(config_.report_interval_ms());
}

Agent::~Agent() = default;

absl::Duration Agent::IdleAfter() const {
  return absl::Seconds(config_.idle_after_s());
}

absl::Time Agent::Now() {
  // Whole milliseconds, so that GPU-ms are exact sums of interval lengths.
  return absl::FromUnixMillis(absl::ToUnixMillis(clock_.Now()));
}

void Agent::Log(const std::string& line) {
  std::fprintf(stderr, "%s voucher-agent: %s\n",
               FormatInstant(clock_.Now(), true).c_str(), line.c_str());
  std::fflush(stderr);
}

void Agent::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
}

void Agent::Run() {
  Log(absl::StrCat("starting: runtime ", runtime_->name(), ", telemetry ",
                   config_.telemetry(), ", ",
                   gpus_->slots().size(), " GPUs, scheduler ",
                   config_.scheduler_address(), ", spool ", config_.spool_dir(),
                   " (", spool_->depth(), " records pending, ",
                   resumable_.size(), " allocations to resume)"));
  while (true) {
    const absl::Time wake = Step();
    absl::MutexLock lock(&mu_);
    const absl::Duration wait = std::clamp(
        wake - clock_.Now(), absl::Milliseconds(1), kMaxSampleInterval);
    if (mu_.AwaitWithTimeout(absl::Condition(&stop_), wait)) break;
  }
  // Spool what was metered, stop workloads (unless the runtime keeps them
  // without the agent), and try once to send.
  const absl::Time now = Now();
  if (runtime_->AllocationsOutliveAgent()) {
    Log("allocations keep running on the cluster; a restarted agent finds "
        "them again");
    Cut(now, true);
  } else {
    for (auto& [id, r] : running_) {
      if (!r->stop_at) BeginStop(*r, now, "the agent is stopping");
    }
    Cut(now, false);
  }
  const absl::Time give_up =
      absl::Now() + absl::Seconds(config_.stop_grace_s()) + absl::Seconds(1);
  for (auto& [id, r] : running_) {
    while (r->stop_at && r->handle != nullptr && !r->handle->Gone(Now()) &&
           absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  next_rpc_ = absl::InfinitePast();
  if (registered_ && spool_->depth() > 0) SendUsage(Now());
  Log(absl::StrCat("stopped; ", spool_->depth(),
                   " records left in the spool for the next start"));
}

absl::Time Agent::Step() {
  const absl::Time now = Now();
  runtime_->Poll(now);
  if (absl::Status health = runtime_->Health(); health.ok() != runtime_up_) {
    runtime_up_ = health.ok();
    Log(runtime_up_ ? absl::StrCat("runtime ", runtime_->name(), " answers")
                    : absl::StrCat(health.message(),
                                   "; metering what it last saw, retrying"));
  }
  const absl::Duration sample_interval = std::min(
      kMaxSampleInterval, absl::Milliseconds(config_.report_interval_ms()));
  if (now >= next_sample_) {
    Sample(now);
    next_sample_ = now + sample_interval;
  }
  const bool cut_due = now >= next_cut_;
  Cut(now, cut_due);
  if (cut_due)
    next_cut_ = now + absl::Milliseconds(config_.report_interval_ms());
  if (Reachable(now) && !registered_) Register(now);
  if (Reachable(now) && registered_ && now >= next_heartbeat_) {
    if (SendHeartbeat(now)) {
      next_heartbeat_ = now + heartbeat_interval_;
      Cut(Now(), false);  // final records of what the answer stopped
    }
  }
  if (Reachable(now) && registered_) {
    while (spool_->depth() > 0 && SendUsage(now)) {
    }
  }
  Reap(now);
  UpdateGauges(now);
  absl::Time wake = std::min(next_sample_, next_cut_);
  if (registered_) wake = std::min(wake, next_heartbeat_);
  if (next_rpc_ > now) wake = std::min(wake, next_rpc_);
  if (retry_now_) {
    retry_now_ = false;
    wake = now;
  }
  return wake;
}

void Agent::Sample(absl::Time now) {
  absl::flat_hash_map<int, GpuReading> readings;
  for (const GpuSlot& slot : gpus_->slots()) {
    absl::StatusOr<GpuReading> reading = gpus_->Read(slot.index, now);
    if (!reading.ok()) {
      Refuse(absl::StrCat("gpu-", slot.index),
             absl::StrCat("cannot read GPU ", slot.index, ": ",
                          reading.status().message()));
      continue;
    }
    if (metrics_ != nullptr) {
      const prometheus::Labels labels{{"gpu_index", absl::StrCat(slot.index)},
                                      {"model", slot.model}};
      metrics_->utilization.Add(labels).Set(reading->utilization_bp / 1e4);
      metrics_->memory.Add(labels).Set(
          static_cast<double>(reading->memory_used_bytes));
      if (reading->energy_supported) {
        auto [it, fresh] =
            metrics_->energy_seen.emplace(slot.index, reading->energy_mj);
        if (!fresh && reading->energy_mj >= it->second) {
          metrics_->energy.Add(labels).Increment(
              static_cast<double>(reading->energy_mj - it->second) / 1e3);
        }
        it->second = reading->energy_mj;
      }
    }
    readings.emplace(slot.index, *std::move(reading));
  }
  for (auto& [id, rp] : running_) {
    Running& r = *rp;
    if (r.stop_at) continue;
    Observe(r, now);
    if (r.stop_at || !r.started) continue;
    const absl::Time deadline = DeadlineOf(r.desired);
    if (now >= deadline) {
      r.stopped_at_deadline = true;
      BeginStop(r, deadline, "it reached its deadline");
      continue;
    }
    const std::optional<int32_t> util_bp =
        r.meter.AddReadings(r.gpu_indices, readings);
    if (!util_bp) continue;
    // The runtime, where it can tell (a Slurm job running no step of the
    // tenant's), decides; otherwise the GPUs' utilisation does.
    const bool idle_now =
        r.busy ? !*r.busy : *util_bp < config_.idle_threshold_bp();
    switch (r.idle.Observe(idle_now, now)) {
      case IdleTracker::Change::kBecameIdle:
        Log(absl::StrCat(id, ": idle: ",
                         r.busy ? "no step of the tenant's has run on its GPUs"
                                : absl::StrCat("its GPUs have been under ",
                                               config_.idle_threshold_bp() /
                                                   100.0,
                                               "% utilisation"),
                         " for ",
                         absl::FormatDuration(
                             absl::Seconds(config_.idle_after_s()))));
        break;
      case IdleTracker::Change::kBusyAgain:
        Log(absl::StrCat(id, ": busy again"));
        break;
      case IdleTracker::Change::kNone:
        break;
    }
  }
}

void Agent::Cut(absl::Time now, bool all) {
  std::vector<pb::UsageRecord> records;
  std::vector<Running*> cut;
  for (auto& [id, rp] : running_) {
    Running& r = *rp;
    if (r.final_spooled || (!all && !r.stop_at)) continue;
    if (!r.stop_at) Observe(r, now);
    // Never past the deadline, even before a sample has seen it pass.
    absl::Time end = std::min(now, DeadlineOf(r.desired));
    if (r.stop_at) end = std::min(end, *r.stop_at);
    // Time before the runtime gave the GPUs is nobody's usage: nothing is
    // cut until then, and metering starts where it gave them (Observe).
    if (!r.started) {
      if (r.stop_at) r.final_spooled = true;
      continue;
    }
    std::optional<Spool::Cursor> cursor = spool_->CursorOf(id);
    std::optional<pb::UsageRecord> record;
    if (cursor) {  // StartAllocation always sets one
      record = r.meter.Record(id, cursor->next_sequence, r.desired.gpu_count(),
                              end, r.evidence);
    }
    if (!record) {
      if (r.stop_at) r.final_spooled = true;
      continue;
    }
    records.push_back(*std::move(record));
    cut.push_back(&r);
  }
  if (records.empty()) return;
  absl::Status appended = spool_->Append(records);
  if (!appended.ok()) {
    // Nothing is lost: the open intervals grow until the spool has room.
    if (!spool_full_logged_) {
      Log(absl::StrCat("cannot spool usage, metering continues in memory: ",
                       appended.message()));
      spool_full_logged_ = true;
    }
    return;
  }
  if (spool_full_logged_) {
    Log("spooling usage again");
    spool_full_logged_ = false;
  }
  for (size_t i = 0; i < cut.size(); ++i) {
    Running& r = *cut[i];
    const absl::Time end = *FromProto("end", records[i].end());
    if (metrics_ != nullptr) {
      metrics_->metered.Add({{"model", r.desired.gpu_model()}})
          .Increment(records[i].gpu_ms() / 1e3);
    }
    r.meter.Advance(end);
    if (r.stop_at && end >= *r.stop_at) r.final_spooled = true;
  }
}

bool Agent::Reachable(absl::Time now) const { return now >= next_rpc_; }

std::unique_ptr<grpc::ClientContext> Agent::NewContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  context->set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
  return context;
}

void Agent::SwitchTo(const std::string& address) {
  stub_ = stubs_(address);
  address_ = address;
}

void Agent::RpcFailed(const char* rpc, const grpc::Status& status,
                      const grpc::ClientContext& context, absl::Time now) {
  if (metrics_ != nullptr)
    metrics_->rpc_errors.Add({{"method", rpc}}).Increment();
  // A scheduler that comes back may have restarted, and a leader named by a
  // follower has never seen the agent: register again.
  registered_ = false;
  const bool unavailable = status.error_code() == grpc::StatusCode::UNAVAILABLE;
  const std::string leader = unavailable ? LeaderHint(context) : "";
  const bool names_another = !leader.empty() && leader != address_;
  if (names_another && leader_hops_ < kMaxLeaderHops) {
    ++leader_hops_;
    Log(absl::StrCat("scheduler: following leader at ", leader));
    SwitchTo(leader);
    next_rpc_ = now;
    retry_now_ = true;
    return;
  }
  leader_hops_ = 0;
  backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  const absl::Duration wait = backoff_ * jitter(random_);
  next_rpc_ = now + wait;
  if (failures_++ == 0) {
    Log(absl::StrCat(rpc, " failed: ", Describe(status),
                     "; metering continues, retrying with backoff"));
  }
  // Nobody answered as the leader here: the next try goes to the next
  // replica, or back to the list from a leader that was named.
  const bool no_leader_here =
      (unavailable && !names_another) ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  if (!no_leader_here) return;
  if (address_ == addresses_[list_position_]) {
    list_position_ = (list_position_ + 1) % addresses_.size();
  }
  const std::string& next = addresses_[list_position_];
  if (next == address_) return;
  // One line per replica in the first round of an outage, not per retry.
  if (failures_ <= static_cast<int>(addresses_.size())) {
    Log(absl::StrCat("scheduler ", address_, " unreachable; trying ", next));
  }
  SwitchTo(next);
}

void Agent::RpcSucceeded() {
  if (failures_ > 0) {
    Log(absl::StrCat("scheduler answers again after ", failures_,
                     " failed calls",
                     addresses_.size() > 1 || address_ != addresses_.front()
                         ? absl::StrCat(", at ", address_)
                         : ""));
  }
  failures_ = 0;
  leader_hops_ = 0;
  backoff_ = absl::ZeroDuration();
  heard_from_scheduler_ = true;
}

bool Agent::Register(absl::Time now) {
  pb::RegisterRequest request;
  request.set_request_id(RequestId(random_));
  request.set_region(config_.region());
  *request.mutable_inventory() = config_.inventory();
  request.set_agent_version(kVersion);
  request.set_meter(absl::StrCat(runtime_->name(), "+", config_.telemetry()));
  pb::RegisterResponse response;
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  const grpc::Status status =
      stub_->Register(context.get(), request, &response);
  if (!status.ok()) {
    RpcFailed("Register", status, *context, now);
    return false;
  }
  RpcSucceeded();
  registered_ = true;
  if (config_.heartbeat_interval_ms() == 0 &&
      response.heartbeat_interval_s() > 0) {
    heartbeat_interval_ = absl::Seconds(response.heartbeat_interval_s());
  }
  Log(absl::StrCat("registered cluster ", response.cluster().cluster_id(), " (",
                   pb::ClusterState_Name(response.cluster().state()), ")"));
  next_heartbeat_ = now;
  return true;
}

bool Agent::SendHeartbeat(absl::Time now) {
  pb::HeartbeatRequest request;
  request.set_request_id(RequestId(random_));
  for (const auto& [id, r] : running_) {
    pb::ObservedAllocation* o = request.add_allocations();
    o->set_allocation_id(id);
    o->set_running(!r->stop_at.has_value() && r->started);
    if (r->exit_code) {
      o->set_exited(true);
      o->set_exit_code(*r->exit_code);
    } else if (r->ended_on_cluster) {
      o->set_ended_on_cluster(true);
      o->set_end_detail(*r->ended_on_cluster);
    }
    if (r->handle != nullptr) o->set_access(r->handle->Access());
    for (int index : r->gpu_indices) o->add_gpu_indices(index);
    o->set_idle(r->idle.idle());
  }
  for (const auto& [id, why] : rejected_) {
    pb::ObservedAllocation* o = request.add_allocations();
    o->set_allocation_id(id);
    o->set_ended_on_cluster(true);
    o->set_end_detail(CleanText(why, 256, TextLines::kOne));
  }
  for (const auto& [model, free] :
       runtime_->FreeGpus().value_or(FreeGpus())) {
    (*request.mutable_free_gpus())[model] = free;
  }
  request.set_healthy(!spool_full_logged_ && runtime_->Health().ok());
  request.set_spool_depth(spool_->depth());
  pb::HeartbeatResponse response;
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  const grpc::Status status =
      stub_->Heartbeat(context.get(), request, &response);
  if (!status.ok()) {
    RpcFailed("Heartbeat", status, *context, now);
    return false;
  }
  RpcSucceeded();
  if (config_.heartbeat_interval_ms() == 0 &&
      response.heartbeat_interval_s() > 0) {
    heartbeat_interval_ = absl::Seconds(response.heartbeat_interval_s());
  }
  // The answer says what the scheduler wants as of some moment up to its
  // arrival: act on it as of its arrival, not as of the sending. An
  // allocation that ended meanwhile (one that ended while the agent was
  // down) is metered up to there, which covers its end; what lies past the
  // end is recorded unsubsidised by the scheduler.
  Converge(response, Now());
  return true;
}

std::map<std::string, int> Agent::FreeGpus() const {
  std::map<std::string, int> free;
  std::set<int> used;
  for (const auto& [id, r] : running_) {
    used.insert(r->gpu_indices.begin(), r->gpu_indices.end());
  }
  for (const GpuSlot& slot : gpus_->slots()) {
    free[slot.model] += used.count(slot.index) > 0 ? 0 : 1;
  }
  return free;
}

void Agent::Refuse(const std::string& allocation_id, const std::string& why) {
  // Remembered so that a refusal repeated by every heartbeat is logged once;
  // bounded, so that a scheduler inventing new ids cannot grow it forever.
  if (refused_.size() >= 1000) refused_.clear();
  auto [it, fresh] = refused_.emplace(allocation_id, why);
  if (!fresh && it->second == why) return;
  it->second = why;
  Log(why);
}

void Agent::Converge(const pb::HeartbeatResponse& response, absl::Time now) {
  if (response.cluster_state() != cluster_state_) {
    cluster_state_ = response.cluster_state();
    Log(absl::StrCat("cluster is ", pb::ClusterState_Name(cluster_state_)));
  }
  // The answer is checked before anything is done with it: the agent runs
  // what it can verify and refuses the rest, whatever the scheduler sends.
  std::map<std::string, int> listed;
  for (const pb::DesiredAllocation& d : response.allocations()) {
    ++listed[d.allocation_id()];
  }
  std::map<std::string, const pb::DesiredAllocation*> wanted;
  for (const pb::DesiredAllocation& d : response.allocations()) {
    if (listed[d.allocation_id()] > 1) {
      Refuse(d.allocation_id(),
             absl::StrCat("refused allocation ", Quoted(d.allocation_id()),
                          ": listed ", listed[d.allocation_id()],
                          " times in one answer"));
      continue;
    }
    if (absl::Status s = CheckIdRef("allocation_id", d.allocation_id());
        !s.ok()) {
      Refuse(d.allocation_id(),
             absl::StrCat("refused an allocation: ", s.message()));
      continue;
    }
    wanted[d.allocation_id()] = &d;
  }
  for (auto it = running_.begin(); it != running_.end();) {
    const std::string& id = it->first;
    Running& r = *it->second;
    auto w = wanted.find(id);
    // An id listed twice is garbage, not a request to stop what runs.
    r.wanted = w != wanted.end() || listed[id] > 1;
    if (w == wanted.end()) {
      if (!r.wanted && !r.stop_at) {
        BeginStop(r, absl::InfiniteFuture(),
                  "the scheduler no longer wants it");
      }
      ++it;
      continue;
    }
    *r.desired.mutable_deadline() = w->second->deadline();
    const absl::Time deadline = DeadlineOf(r.desired);
    if (!r.stop_at && r.handle != nullptr) r.handle->Extend(deadline);
    // Stopped at a deadline that was extended meanwhile: once its last
    // record is spooled and its workload gone, it starts again below and
    // resumes from its cursor, where that record ended.
    if (r.stopped_at_deadline && r.final_spooled && deadline > now &&
        (r.handle == nullptr || r.handle->Gone(now))) {
      Log(absl::StrCat(id, ": its deadline was extended to ",
                       FormatInstant(deadline, true), "; starting it again"));
      it = running_.erase(it);
      continue;
    }
    ++it;
  }
  // Cursors left by a previous run: allocations still wanted resume below.
  // The others ended while the agent was down: their last interval, from
  // where metering stopped until now, is reported (the scheduler subsidises
  // only what falls within their life) and then they are forgotten.
  for (const std::string& id : resumable_) {
    std::optional<Spool::Cursor> cursor = spool_->CursorOf(id);
    if (wanted.count(id) > 0 || !cursor) continue;
    auto r = std::make_unique<Running>(cursor->resume_at, IdleAfter());
    r->desired.set_allocation_id(id);
    r->desired.set_gpu_count(cursor->gpu_count);
    r->wanted = false;
    r->stop_at = now;
    r->final_spooled =
        cursor->gpu_count < 1 || cursor->resume_at == absl::InfinitePast();
    Log(absl::StrCat(id,
                     ": ended while the agent was down; reporting its "
                     "usage from ",
                     FormatInstant(cursor->resume_at, true), " until now"));
    running_[id] = std::move(r);
  }
  resumable_.clear();
  // Refusals of allocations the scheduler has let go are forgotten.
  for (auto it = rejected_.begin(); it != rejected_.end();) {
    it = wanted.count(it->first) > 0 ? std::next(it) : rejected_.erase(it);
  }
  std::map<std::string, int> free = FreeGpus();
  std::set<int> used;
  for (const auto& [id, r] : running_) {
    used.insert(r->gpu_indices.begin(), r->gpu_indices.end());
  }
  for (const auto& [id, dp] : wanted) {
    if (running_.count(id) > 0 || rejected_.count(id) > 0) continue;
    const pb::DesiredAllocation& d = *dp;
    auto model = free.find(d.gpu_model());
    if (model == free.end()) {
      Refuse(id,
             absl::StrCat("refused allocation ", id, ": gpu_model ",
                          Quoted(d.gpu_model()), " is not on this cluster"));
      continue;
    }
    if (d.gpu_count() < 1 || d.gpu_count() > model->second) {
      Refuse(id, absl::StrCat("refused allocation ", id, ": gpu_count ",
                              d.gpu_count(), " of ", d.gpu_model(),
                              " does not fit the ", model->second, " free"));
      continue;
    }
    absl::StatusOr<absl::Time> deadline = FromProto("deadline", d.deadline());
    absl::StatusOr<absl::Time> assigned =
        FromProto("assigned_at", d.assigned_at());
    if (!deadline.ok() || !assigned.ok()) {
      Refuse(id,
             absl::StrCat(
                 "refused allocation ", id, ": ",
                 (!deadline.ok() ? deadline : assigned).status().message()));
      continue;
    }
    if (*deadline <= now) continue;  // ended meanwhile; it will drop out
    std::vector<int> indices;
    for (const GpuSlot& slot : gpus_->slots()) {
      if (static_cast<int>(indices.size()) == d.gpu_count()) break;
      if (slot.model == d.gpu_model() && used.count(slot.index) == 0) {
        indices.push_back(slot.index);
      }
    }
    used.insert(indices.begin(), indices.end());
    model->second -= d.gpu_count();
    StartAllocation(d, std::move(indices), now);
  }
  // What the runtime left on the cluster for anything else — allocations
  // that ended while the agent was down included — is stopped.
  std::set<std::string> known;
  for (const auto& [id, r] : running_) {
    if (r->handle != nullptr) known.insert(id);
  }
  runtime_->ForgetOthers(known, now);
}

void Agent::StartAllocation(const pb::DesiredAllocation& d,
                            std::vector<int> gpu_indices, absl::Time now) {
  const std::string& id = d.allocation_id();
  const absl::Time assigned = *FromProto("assigned_at", d.assigned_at());
  std::optional<Spool::Cursor> cursor = spool_->CursorOf(id);
  const bool resumed = cursor.has_value();
  // The runtime first: a crash between the two leaves something on the
  // cluster that the next start finds again, never a cursor without it.
  RuntimeSpec spec;
  spec.desired = d;
  spec.gpu_indices = gpu_indices;
  spec.resumed = resumed;
  absl::StatusOr<std::unique_ptr<RuntimeAllocation>> handle =
      runtime_->Start(spec, now);
  if (!handle.ok()) {
    if (absl::IsUnavailable(handle.status())) {
      Refuse(id, absl::StrCat("cannot start ", id, " yet: ",
                              handle.status().message(),
                              "; trying again at the next heartbeat"));
    } else {
      Log(absl::StrCat("refused allocation ", id, ": ",
                       handle.status().message()));
      rejected_[id] = std::string(handle.status().message());
    }
    return;
  }
  Spool::Cursor wanted;
  wanted.next_sequence = std::max<int64_t>(d.next_sequence(), 1);
  wanted.gpu_count = d.gpu_count();
  wanted.resume_at =
      resumed ? std::max(cursor->resume_at, assigned) : std::max(now, assigned);
  if (absl::Status s = spool_->SetCursor(id, wanted); !s.ok()) {
    Refuse(id, absl::StrCat("cannot start ", id, ": ", s.message()));
    (*handle)->Stop(now, absl::Seconds(config_.stop_grace_s()));
    return;
  }
  cursor = spool_->CursorOf(id);
  auto r = std::make_unique<Running>(cursor->resume_at, IdleAfter());
  r->desired = d;
  r->gpu_indices = std::move(gpu_indices);
  r->handle = *std::move(handle);
  r->started = false;  // until the runtime says it gave the GPUs
  Observe(*r, now);
  Log(absl::StrCat(resumed ? "resumed " : "started ", id, ": ", d.gpu_count(),
                   "x", d.gpu_model(), " on GPUs ", JoinIndices(r->gpu_indices),
                   " until ",
                   FormatInstant(*FromProto("deadline", d.deadline()), true),
                   ", metered from ",
                   FormatInstant(r->meter.interval_start(), true),
                   r->started ? "" : " once the cluster starts it",
                   " as record #", cursor->next_sequence, "; ",
                   r->handle->Access()));
  refused_.erase(id);
  running_[id] = std::move(r);
}

void Agent::Observe(Running& r, absl::Time now) {
  if (r.handle == nullptr) return;
  const RuntimeStatus status = r.handle->Status(now);
  r.evidence = status.evidence;
  r.busy = status.busy;
  if (status.started && !r.started) {
    // Given at started_at (never before the cursor: what was spooled is
    // final).
    r.meter.StartNoEarlierThan(status.started_at);
  }
  r.started = status.started;
  if (!status.ended || r.stop_at) return;
  if (status.ended->exit_code) {
    r.exit_code = status.ended->exit_code;
  } else {
    r.ended_on_cluster = CleanText(status.ended->detail, 256, TextLines::kOne);
  }
  BeginStop(r, status.ended->at,
            r.exit_code ? absl::StrCat("its workload exited with code ",
                                       *r.exit_code)
                        : absl::StrCat("the cluster ended it: ",
                                       status.ended->detail));
}

void Agent::BeginStop(Running& r, absl::Time at, const std::string& why) {
  const absl::Time now = Now();
  r.stop_at = std::min(at, now);
  if (r.handle != nullptr) {
    r.handle->Stop(now, absl::Seconds(config_.stop_grace_s()));
  }
  Log(absl::StrCat("stopping ", r.desired.allocation_id(), ": ", why));
}

void Agent::Reap(absl::Time now) {
  for (auto it = running_.begin(); it != running_.end();) {
    Running& r = *it->second;
    const bool exited = r.handle == nullptr || r.handle->Gone(now);
    if (r.stop_at && r.final_spooled && exited && !r.wanted &&
        spool_->PendingOf(it->first) == 0) {
      if (absl::Status s = spool_->Forget(it->first); !s.ok()) {
        Refuse(it->first, absl::StrCat(it->first, ": ", s.message()));
        ++it;
        continue;
      }
      Log(absl::StrCat(it->first, ": done; all its usage is acknowledged"));
      refused_.erase(it->first);
      it = running_.erase(it);
      continue;
    }
    ++it;
  }
}

bool Agent::SendUsage(absl::Time now) {
  pb::ReportUsageRequest request;
  request.set_request_id(RequestId(random_));
  for (pb::UsageRecord& u : spool_->Pending(kMaxRecordsPerReport)) {
    *request.add_records() = std::move(u);
  }
  if (request.records().empty()) return false;
  pb::ReportUsageResponse response;
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  const grpc::Status status =
      stub_->ReportUsage(context.get(), request, &response);
  if (!status.ok()) {
    RpcFailed("ReportUsage", status, *context, now);
    return false;
  }
  RpcSucceeded();
  if (response.acks_size() != request.records_size()) {
    Refuse("report-usage", absl::StrCat("ignored a ReportUsage answer with ",
                                        response.acks_size(), " acks for ",
                                        request.records_size(), " records"));
    return false;
  }
  std::vector<std::pair<std::string, int64_t>> done;
  bool retry = false;
  for (int i = 0; i < request.records_size(); ++i) {
    const pb::UsageRecord& u = request.records(i);
    const pb::UsageAck& ack = response.acks(i);
    if (ack.allocation_id() != u.allocation_id() ||
        ack.sequence() != u.sequence()) {
      Refuse("report-usage",
             absl::StrCat("ignored an ack for ", Quoted(ack.allocation_id()),
                          " #", ack.sequence(), " in the place of ",
                          u.allocation_id(), " #", u.sequence()));
      retry = true;
      continue;
    }
    if (metrics_ != nullptr) {
      const std::string result = absl::AsciiStrToLower(absl::StripPrefix(
          pb::UsageResult_Name(ack.result()), "USAGE_RESULT_"));
      metrics_->records.Add({{"result", result}}).Increment();
    }
    switch (ack.result()) {
      case pb::USAGE_RESULT_ACCEPTED:
      case pb::USAGE_RESULT_DUPLICATE:
        done.emplace_back(u.allocation_id(), u.sequence());
        break;
      case pb::USAGE_RESULT_REJECTED:
        Log(absl::StrCat("usage record ", u.allocation_id(), " #", u.sequence(),
                         " refused by the scheduler: ", ack.reason(),
                         "; dropped"));
        done.emplace_back(u.allocation_id(), u.sequence());
        break;
      default:
        Refuse(absl::StrCat("retry-", u.allocation_id()),
               absl::StrCat("usage record ", u.allocation_id(), " #",
                            u.sequence(), " deferred by the scheduler: ",
                            ack.reason(), "; resending later"));
        retry = true;
        break;
    }
    if (ack.stop()) {
      auto it = running_.find(u.allocation_id());
      if (it != running_.end() && !it->second->stop_at) {
        BeginStop(*it->second, absl::InfiniteFuture(),
                  "the scheduler ended it");
      }
    }
  }
  if (absl::Status s = spool_->Acknowledge(done); !s.ok()) {
    Log(absl::StrCat("cannot record acknowledgements in the spool: ",
                     s.message()));
    return false;
  }
  if (retry) {
    // Give the scheduler time before the deferred records go again.
    next_rpc_ = now + std::max(kMinBackoff, heartbeat_interval_ / 2);
    return false;
  }
  return true;
}

void Agent::UpdateGauges(absl::Time now) {
  if (metrics_ == nullptr) return;
  metrics_->connected.Set(failures_ == 0 && heard_from_scheduler_ ? 1 : 0);
  metrics_->runtime_up.Add({{"runtime", runtime_->name()}})
      .Set(runtime_->Health().ok() ? 1 : 0);
  int running = 0, stopping = 0, idle = 0, pending = 0;
  for (const auto& [id, r] : running_) {
    (r->stop_at ? stopping : running) += 1;
    idle += r->idle.idle() ? 1 : 0;
    pending += !r->stop_at && !r->started ? 1 : 0;
  }
  metrics_->pending.Set(pending);
  metrics_->allocations.Add({{"state", "running"}}).Set(running);
  metrics_->allocations.Add({{"state", "stopping"}}).Set(stopping);
  metrics_->idle.Set(idle);
  std::map<std::string, int> total;
  for (const GpuSlot& slot : gpus_->slots()) ++total[slot.model];
  for (const auto& [model, free] : FreeGpus()) {
    metrics_->gpus.Add({{"model", model}, {"state", "free"}}).Set(free);
    metrics_->gpus.Add({{"model", model}, {"state", "used"}})
        .Set(total[model] - free);
  }
  metrics_->spool_records.Set(static_cast<double>(spool_->depth()));
  metrics_->spool_bytes.Set(static_cast<double>(spool_->live_bytes()));
  std::optional<absl::Time> oldest = spool_->oldest_pending_end();
  metrics_->spool_age.Set(
      oldest ? std::max(0.0, absl::ToDoubleSeconds(now - *oldest)) : 0.0);
}

}  // namespace computevoucher::agent
