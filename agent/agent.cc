// The agent's loop (Run, Step) and what every step shares: the clock, the
// log, free GPUs, refusals logged once, and the gauges. The steps live by
// concern: calls to the scheduler in agent_rpc.cc, converging on the
// desired allocations in agent_converge.cc, metering and reporting usage in
// agent_usage.cc, the configuration in agent_config.cc.
#include "agent/agent.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/internal/agent_state.h"
#include "common/leader.h"
#include "common/log.h"
#include "common/time_util.h"
#include "prometheus/gauge.h"

namespace computevoucher::agent {
namespace {

constexpr absl::Duration kMaxSampleInterval = absl::Seconds(1);

}  // namespace

namespace internal {

std::string RequestId(std::mt19937_64& random) {
  return absl::StrCat("agent-", absl::Hex(random(), absl::kZeroPad16));
}

absl::Time DeadlineOf(const pb::DesiredAllocation& d) {
  if (!d.has_deadline()) return absl::InfiniteFuture();
  return FromProto("deadline", d.deadline()).value_or(absl::InfiniteFuture());
}

}  // namespace internal

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

void Agent::Log(const std::string& line) { LogLine("voucher-agent", line); }

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
