// The agent as a reconciler: it converges on the allocations a heartbeat
// answer wants (after checking the answer), starts and stops them through
// the runtime, observes what the runtime says of them, and forgets them
// once all their usage is acknowledged.
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/agent.h"
#include "agent/internal/agent_state.h"
#include "common/time_util.h"
#include "common/validate.h"

namespace computevoucher::agent {
namespace {

using internal::DeadlineOf;

std::string JoinIndices(const std::vector<int>& indices) {
  return absl::StrJoin(indices, ",");
}

}  // namespace

// A heartbeat answer's allocations, checked: those listed once with a valid
// id, and how often each id was listed.
struct Agent::DesiredSet {
  int Listed(const std::string& id) const {
    auto it = listed.find(id);
    return it == listed.end() ? 0 : it->second;
  }

  std::map<std::string, int> listed;
  std::map<std::string, const pb::DesiredAllocation*> wanted;
};

void Agent::Converge(const pb::HeartbeatResponse& response, absl::Time now) {
  if (response.cluster_state() != cluster_state_) {
    cluster_state_ = response.cluster_state();
    Log(absl::StrCat("cluster is ", pb::ClusterState_Name(cluster_state_)));
  }
  // The answer is checked before anything is done with it: the agent runs
  // what it can verify and refuses the rest, whatever the scheduler sends.
  const DesiredSet desired = CheckDesired(response);
  UpdateRunning(desired, now);
  AdoptEndedWhileDown(desired, now);
  // Refusals of allocations the scheduler has let go are forgotten.
  for (auto it = rejected_.begin(); it != rejected_.end();) {
    it = desired.wanted.count(it->first) > 0 ? std::next(it)
                                             : rejected_.erase(it);
  }
  StartWanted(desired, now);
  StopStrays(now);
}

Agent::DesiredSet Agent::CheckDesired(const pb::HeartbeatResponse& response) {
  DesiredSet desired;
  for (const pb::DesiredAllocation& d : response.allocations()) {
    ++desired.listed[d.allocation_id()];
  }
  for (const pb::DesiredAllocation& d : response.allocations()) {
    const int listed = desired.Listed(d.allocation_id());
    if (listed > 1) {
      Refuse(d.allocation_id(),
             absl::StrCat("refused allocation ", Quoted(d.allocation_id()),
                          ": listed ", listed, " times in one answer"));
      continue;
    }
    if (absl::Status s = CheckIdRef("allocation_id", d.allocation_id());
        !s.ok()) {
      Refuse(d.allocation_id(),
             absl::StrCat("refused an allocation: ", s.message()));
      continue;
    }
    desired.wanted[d.allocation_id()] = &d;
  }
  return desired;
}

void Agent::UpdateRunning(const DesiredSet& desired, absl::Time now) {
  for (auto it = running_.begin(); it != running_.end();) {
    const std::string& id = it->first;
    Running& r = *it->second;
    auto w = desired.wanted.find(id);
    // An id listed twice is garbage, not a request to stop what runs.
    r.wanted = w != desired.wanted.end() || desired.Listed(id) > 1;
    if (w == desired.wanted.end()) {
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
    // record is spooled and its workload gone, it starts again (StartWanted)
    // and resumes from its cursor, where that record ended.
    if (r.stopped_at_deadline && r.final_spooled && deadline > now &&
        (r.handle == nullptr || r.handle->Gone(now))) {
      Log(absl::StrCat(id, ": its deadline was extended to ",
                       FormatInstant(deadline, true), "; starting it again"));
      it = running_.erase(it);
      continue;
    }
    ++it;
  }
}

void Agent::AdoptEndedWhileDown(const DesiredSet& desired, absl::Time now) {
  // Cursors left by a previous run: allocations still wanted resume
  // (StartWanted). The others ended while the agent was down: their last
  // interval, from where metering stopped until now, is reported (the
  // scheduler subsidises only what falls within their life) and then they
  // are forgotten.
  for (const std::string& id : resumable_) {
    std::optional<Spool::Cursor> cursor = spool_->CursorOf(id);
    if (desired.wanted.count(id) > 0 || !cursor) continue;
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
}

void Agent::StartWanted(const DesiredSet& desired, absl::Time now) {
  std::map<std::string, int> free = FreeGpus();
  std::set<int> used;
  for (const auto& [id, r] : running_) {
    used.insert(r->gpu_indices.begin(), r->gpu_indices.end());
  }
  for (const auto& [id, dp] : desired.wanted) {
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
    std::vector<int> indices = PickGpus(d, used);
    used.insert(indices.begin(), indices.end());
    model->second -= d.gpu_count();
    StartAllocation(d, std::move(indices), now);
  }
}

std::vector<int> Agent::PickGpus(const pb::DesiredAllocation& d,
                                 const std::set<int>& used) const {
  std::vector<int> indices;
  for (const GpuSlot& slot : gpus_->slots()) {
    if (static_cast<int>(indices.size()) == d.gpu_count()) break;
    if (slot.model == d.gpu_model() && used.count(slot.index) == 0) {
      indices.push_back(slot.index);
    }
  }
  return indices;
}

void Agent::StopStrays(absl::Time now) {
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
      Refuse(id, absl::StrCat("cannot start ", id,
                              " yet: ", handle.status().message(),
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
  Log(absl::StrCat(
      resumed ? "resumed " : "started ", id, ": ", d.gpu_count(), "x",
      d.gpu_model(), " on GPUs ", JoinIndices(r->gpu_indices), " until ",
      FormatInstant(*FromProto("deadline", d.deadline()), true),
      ", metered from ", FormatInstant(r->meter.interval_start(), true),
      r->started ? "" : " once the cluster starts it", " as record #",
      cursor->next_sequence, "; ", r->handle->Access()));
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
            r.exit_code
                ? absl::StrCat("its workload exited with code ", *r.exit_code)
                : absl::StrCat("the cluster ended it: ", status.ended->detail));
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

}  // namespace computevoucher::agent
