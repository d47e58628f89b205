#include "scheduler/core/placement.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/enum_word.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "scheduler/core/limits.h"
#include "scheduler/core/pricing.h"

namespace computevoucher::core {
namespace {

// The idempotency keys of an allocation's entries. Retire forgets them all
// (AllocationKeys), so every key posted about an allocation is made here.
std::string HoldKey(absl::string_view id) { return absl::StrCat("hold/", id); }
std::string ExtendKey(absl::string_view id, int64_t extension) {
  return absl::StrCat("hold/", id, "/extend/", extension);
}
std::string ReleaseKey(absl::string_view id) {
  return absl::StrCat("release/", id);
}
std::string PlacedReleaseKey(absl::string_view id) {
  return absl::StrCat("release/", id, "/placed");
}
// What a revoked or expired voucher passes on to the budget when a release
// under `release_key` comes back to it.
std::string ReturnKey(absl::string_view release_key) {
  return absl::StrCat("return/", release_key);
}
}  // namespace

std::vector<std::string> AllocationKeys(absl::string_view id,
                                        int64_t extensions) {
  std::vector<std::string> keys = {
      HoldKey(id), ReleaseKey(id), ReturnKey(ReleaseKey(id)),
      PlacedReleaseKey(id), ReturnKey(PlacedReleaseKey(id))};
  for (int64_t n = 1; n <= extensions; ++n) keys.push_back(ExtendKey(id, n));
  return keys;
}

// --- Allocation lifecycle ---

absl::StatusOr<Response> Placement::Allocate(const pb::Principal& p,
                                             const std::string& request_id,
                                             const pb::AllocateRequest& r) {
  if (p.role() != pb::ROLE_ENTERPRISE) {
    return absl::PermissionDeniedError(
        "allocate: only an enterprise token may allocate");
  }
  RETURN_IF_ERROR(
      CheckRange("workload_command", r.workload_command_size(), 0, 64));
  for (const std::string& arg : r.workload_command()) {
    RETURN_IF_ERROR(CheckLength("workload_command", arg, 0, 4096));
  }
  ASSIGN_OR_RETURN(const Plan plan,
                   PlanAllocation(p.enterprise_id(), r.resources()));
  if (plan.voucher == nullptr) {
    int64_t total = 0;
    for (const pb::VoucherOption& option : plan.voucher_options)
      total += option.available_fen();
    return absl::FailedPreconditionError(absl::StrCat(
        "enterprise ", p.enterprise_id(), ": insufficient balance: need ",
        FormatFen(plan.hold_fen), " on one voucher, have ", FormatFen(total),
        " across ", plan.voucher_options.size(), " usable voucher(s)"));
  }
  if (!plan.placement && !r.queue_if_busy()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no free capacity now for ", Describe(r.resources()),
                     "; it may wait in the queue (queue_if_busy)"));
  }
  VoucherRec& payer = vouchers_.voucher(plan.voucher->voucher.voucher_id());
  const pb::Voucher& voucher = payer.voucher;
  const std::string id = NextId("AL", &state_.next_allocation, 8);
  AllocationRec& rec = state_.allocations[id];
  rec.queue_order = state_.next_allocation;
  pb::Allocation& a = rec.allocation;
  a.set_allocation_id(id);
  a.set_enterprise_id(p.enterprise_id());
  a.set_voucher_id(voucher.voucher_id());
  a.set_program_id(voucher.program_id());
  a.set_requested_model(r.resources().gpu_model());
  a.set_requested_model_any_case(r.resources().model_any_case());
  a.set_requested_class(r.resources().hardware_class());
  a.set_gpu_count(r.resources().gpu_count());
  a.set_max_duration_s(r.resources().max_duration_s());
  a.set_price_fen_per_gpu_hour(plan.price_fen_per_gpu_hour);
  a.set_hardware_class(plan.hardware_class);
  a.set_ratio_bp(plan.ratio_bp);
  a.set_state(pb::ALLOCATION_STATE_PENDING);
  *a.mutable_created_at() = ToProto(books_.now());
  *a.mutable_workload_command() = r.workload_command();
  a.set_request_id(request_id);
  state_.voucher_allocations[voucher.voucher_id()].push_back(id);
  // A program with a 0% ratio subsidises nothing, so there is nothing to
  // hold.
  if (plan.hold_fen > 0) {
    RETURN_IF_ERROR(
        books_.Post(AllocationEntry(pb::ENTRY_KIND_HOLD, HoldAccount(id),
                                    VoucherAccount(voucher.voucher_id()),
                                    plan.hold_fen, HoldKey(id), a),
                    &payer.voucher, &a));
  }
  vouchers_.UpdateExhausted(payer);
  if (plan.placement) {
    RETURN_IF_ERROR(Place(rec, *plan.placement));
  } else {
    state_.queue.insert({rec.queue_order, id});
  }
  return Share(AllocationViewOf(rec));
}

absl::Status Placement::Place(AllocationRec& rec, const Option& option) {
  pb::Allocation& a = rec.allocation;
  const pb::Program& program = registry_.state().programs.at(a.program_id());
  const bool sme = registry_.state().enterprises.at(a.enterprise_id()).sme();
  ASSIGN_OR_RETURN(
      const int64_t hold,
      HoldFor(option, program, sme, a.gpu_count(), a.max_duration_s()));
  const int64_t excess = a.held_fen() - hold;
  if (excess < 0) {
    return absl::InternalError(
        absl::StrCat("allocation ", a.allocation_id(),
                     ": placement needs more than its hold"));
  }
  state_.queue.erase({rec.queue_order, a.allocation_id()});
  a.set_cluster_id(std::string(option.cluster_id));
  a.set_provider_id(std::string(option.provider_id));
  a.set_gpu_model(std::string(option.model));
  a.set_hardware_class(option.hardware_class);
  a.set_price_fen_per_gpu_hour(option.price_fen_per_gpu_hour);
  a.set_ratio_bp(RatioBp(program, option.hardware_class, sme));
  a.set_state(pb::ALLOCATION_STATE_ASSIGNED);
  *a.mutable_assigned_at() = ToProto(books_.now());
  registry_.AddUsedGpus(a.cluster_id(), a.gpu_model(), a.gpu_count());
  state_.cluster_allocations[a.cluster_id()].insert(a.allocation_id());
  state_.enterprise_gpus[a.enterprise_id()] += a.gpu_count();
  state_.deadline_index.insert(
      {books_.now() + absl::Seconds(a.max_duration_s()), a.allocation_id()});
  if (excess > 0) {
    RETURN_IF_ERROR(
        ReleaseHold(rec, excess, PlacedReleaseKey(a.allocation_id())));
  }
  return absl::OkStatus();
}

absl::Status Placement::ReleaseHold(AllocationRec& rec, int64_t amount,
                                    const std::string& key) {
  if (amount <= 0) return absl::OkStatus();
  pb::Allocation& a = rec.allocation;
  VoucherRec& voucher = vouchers_.voucher(a.voucher_id());
  RETURN_IF_ERROR(books_.Post(
      AllocationEntry(pb::ENTRY_KIND_RELEASE, VoucherAccount(a.voucher_id()),
                      HoldAccount(a.allocation_id()), amount, key, a),
      &voucher.voucher, &a));
  // A revoked or expired voucher passes what comes back on to the budget.
  const pb::VoucherState state = voucher.voucher.state();
  if (state == pb::VOUCHER_STATE_REVOKED ||
      state == pb::VOUCHER_STATE_EXPIRED) {
    const pb::EntryKind kind = state == pb::VOUCHER_STATE_REVOKED
                                   ? pb::ENTRY_KIND_REVOKE
                                   : pb::ENTRY_KIND_EXPIRE;
    RETURN_IF_ERROR(
        vouchers_.ReturnToBudget(voucher, kind, amount, ReturnKey(key)));
  }
  vouchers_.UpdateExhausted(voucher);
  return absl::OkStatus();
}

absl::Status Placement::EndAllocation(AllocationRec& rec,
                                      pb::EndReason reason) {
  pb::Allocation& a = rec.allocation;
  if (a.state() == pb::ALLOCATION_STATE_ENDED) return absl::OkStatus();
  const pb::AllocationState was = a.state();
  a.set_state(pb::ALLOCATION_STATE_ENDED);
  a.set_end_reason(reason);
  *a.mutable_ended_at() = ToProto(books_.now());
  if (was == pb::ALLOCATION_STATE_PENDING) {
    // Never ran, so no usage can follow: release everything now.
    state_.queue.erase({rec.queue_order, a.allocation_id()});
    HoldReleased(rec);
    return ReleaseHold(rec, a.held_fen(), ReleaseKey(a.allocation_id()));
  }
  ASSIGN_OR_RETURN(const absl::Time assigned,
                   FromProto("assigned_at", a.assigned_at()));
  state_.deadline_index.erase(
      {assigned + absl::Seconds(a.max_duration_s()), a.allocation_id()});
  registry_.AddUsedGpus(a.cluster_id(), a.gpu_model(), -a.gpu_count());
  state_.cluster_allocations[a.cluster_id()].erase(a.allocation_id());
  state_.enterprise_gpus[a.enterprise_id()] -= a.gpu_count();
  state_.release_index.insert({books_.now(), a.allocation_id()});
  return absl::OkStatus();
}

absl::Status Placement::EndVoucherAllocations(const std::string& voucher_id,
                                              pb::EndReason reason) {
  auto ids = state_.voucher_allocations.find(voucher_id);
  if (ids == state_.voucher_allocations.end()) return absl::OkStatus();
  for (const std::string& id : ids->second) {
    RETURN_IF_ERROR(EndAllocation(state_.allocations.at(id), reason));
  }
  return ProcessQueue();
}

absl::StatusOr<AllocationRec*> Placement::FindOwnAllocation(
    const pb::Principal& p, const std::string& id) {
  RETURN_IF_ERROR(CheckIdRef("allocation_id", id));
  auto it = state_.allocations.find(id);
  if (it == state_.allocations.end()) {
    return absl::NotFoundError(
        absl::StrCat("allocation_id: allocation ", id, " not found"));
  }
  // Another enterprise's allocation is answered as a missing one.
  if (p.role() != pb::ROLE_ENTERPRISE ||
      it->second.allocation.enterprise_id() != p.enterprise_id()) {
    return absl::NotFoundError(
        absl::StrCat("allocation_id: allocation ", id, " not found"));
  }
  return &it->second;
}

absl::StatusOr<Response> Placement::ReleaseAllocation(
    const pb::Principal& p, const pb::ReleaseAllocationRequest& r) {
  ASSIGN_OR_RETURN(AllocationRec * rec,
                   FindOwnAllocation(p, r.allocation_id()));
  if (rec->allocation.state() == pb::ALLOCATION_STATE_ENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("allocation ", r.allocation_id(), ": already ended (",
                     EnumWord(rec->allocation.end_reason()), ")"));
  }
  RETURN_IF_ERROR(EndAllocation(*rec, pb::END_REASON_RELEASED));
  RETURN_IF_ERROR(ProcessQueue());
  return Share(AllocationViewOf(*rec));
}

absl::StatusOr<Response> Placement::ExtendAllocation(
    const pb::Principal& p, const pb::ExtendAllocationRequest& r) {
  ASSIGN_OR_RETURN(AllocationRec * rec,
                   FindOwnAllocation(p, r.allocation_id()));
  pb::Allocation& a = rec->allocation;
  if (a.state() == pb::ALLOCATION_STATE_ENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("allocation ", r.allocation_id(), ": already ended"));
  }
  RETURN_IF_ERROR(CheckRange("extra_duration_s", r.extra_duration_s(),
                             kMinDurationS, kMaxDurationS));
  const int64_t new_duration = a.max_duration_s() + r.extra_duration_s();
  RETURN_IF_ERROR(CheckRange("max_duration_s after extension", new_duration,
                             kMinDurationS, kMaxDurationS));
  VoucherRec& voucher = vouchers_.voucher(a.voucher_id());
  if (voucher.voucher.state() != pb::VOUCHER_STATE_ACTIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("voucher ", a.voucher_id(), ": is ",
                     EnumWord(voucher.voucher.state()), ", cannot hold more"));
  }
  // Hold the difference of the cumulative figures so that rounding of the
  // whole duration stays exact.
  ASSIGN_OR_RETURN(const int64_t old_ms,
                   GpuMs(a.gpu_count(), a.max_duration_s()));
  ASSIGN_OR_RETURN(const int64_t new_ms, GpuMs(a.gpu_count(), new_duration));
  ASSIGN_OR_RETURN(
      const pb::Amounts before,
      AmountsFor(old_ms, a.price_fen_per_gpu_hour(), a.ratio_bp()));
  ASSIGN_OR_RETURN(
      const pb::Amounts after,
      AmountsFor(new_ms, a.price_fen_per_gpu_hour(), a.ratio_bp()));
  const int64_t extra = after.subsidy_fen() - before.subsidy_fen();
  const int64_t available = books_.Balance(VoucherAccount(a.voucher_id()));
  if (extra > available) {
    return absl::FailedPreconditionError(absl::StrCat(
        "voucher ", a.voucher_id(), ": insufficient balance: need ",
        FormatFen(extra), ", have ", FormatFen(available)));
  }
  if (extra > 0) {
    RETURN_IF_ERROR(books_.Post(
        AllocationEntry(pb::ENTRY_KIND_HOLD, HoldAccount(a.allocation_id()),
                        VoucherAccount(a.voucher_id()), extra,
                        ExtendKey(a.allocation_id(), rec->extensions + 1), a),
        &voucher.voucher, &a));
  }
  ++rec->extensions;
  if (IsActive(a)) {
    ASSIGN_OR_RETURN(const absl::Time assigned,
                     FromProto("assigned_at", a.assigned_at()));
    state_.deadline_index.erase(
        {assigned + absl::Seconds(a.max_duration_s()), a.allocation_id()});
    state_.deadline_index.insert(
        {assigned + absl::Seconds(new_duration), a.allocation_id()});
  }
  a.set_max_duration_s(new_duration);
  vouchers_.UpdateExhausted(voucher);
  return Share(AllocationViewOf(*rec));
}

int64_t Placement::EnterpriseGpusInUse(const std::string& enterprise_id) const {
  auto it = state_.enterprise_gpus.find(enterprise_id);
  return it == state_.enterprise_gpus.end() ? 0 : it->second;
}

absl::Status Placement::ProcessQueue() {
  if (state_.queue.empty()) return absl::OkStatus();
  // Priority, then fair share (fewest GPUs in use now), then age.
  struct Waiting {
    int32_t priority;
    int64_t gpus_in_use;
    int64_t order;
    std::string id;
  };
  std::vector<Waiting> waiting;
  for (const auto& [order, id] : state_.queue) {
    const pb::Allocation& a = state_.allocations.at(id).allocation;
    waiting.push_back(
        Waiting{vouchers_.voucher(a.voucher_id()).voucher.priority(),
                EnterpriseGpusInUse(a.enterprise_id()), order, id});
  }
  std::sort(waiting.begin(), waiting.end(),
            [](const Waiting& x, const Waiting& y) {
              return std::make_tuple(-x.priority, x.gpus_in_use, x.order) <
                     std::make_tuple(-y.priority, y.gpus_in_use, y.order);
            });
  for (const Waiting& w : waiting) {
    AllocationRec& rec = state_.allocations.at(w.id);
    const pb::Allocation& a = rec.allocation;
    pb::ResourceRequest request;
    request.set_gpu_model(a.requested_model());
    request.set_model_any_case(a.requested_model_any_case());
    request.set_hardware_class(a.requested_class());
    request.set_gpu_count(a.gpu_count());
    const pb::Program& program = registry_.state().programs.at(a.program_id());
    const pb::Enterprise& enterprise =
        registry_.state().enterprises.at(a.enterprise_id());
    std::optional<Option> best;
    for (const Option& option : Options(enterprise, request)) {
      if (option.free_gpus < a.gpu_count()) continue;
      // Never place where the hold taken at admission would not cover it.
      ASSIGN_OR_RETURN(const int64_t hold,
                       HoldFor(option, program, enterprise.sme(), a.gpu_count(),
                               a.max_duration_s()));
      if (hold > a.held_fen()) continue;
      if (!best || BetterPlacement(option, *best)) best = option;
    }
    if (best) RETURN_IF_ERROR(Place(rec, *best));
  }
  return absl::OkStatus();
}

// --- Agents ---

std::vector<std::string> Placement::ActiveAllocationIds(
    const std::string& cluster_id) const {
  auto it = state_.cluster_allocations.find(cluster_id);
  if (it == state_.cluster_allocations.end()) return {};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

pb::HeartbeatResponse Placement::DesiredState(
    const std::string& cluster_id) const {
  pb::HeartbeatResponse response;
  auto cluster = registry_.state().clusters.find(cluster_id);
  if (cluster == registry_.state().clusters.end()) return response;
  response.set_cluster_state(cluster->second.cluster.state());
  for (const std::string& id : ActiveAllocationIds(cluster_id)) {
    const pb::Allocation& a = state_.allocations.at(id).allocation;
    pb::DesiredAllocation* d = response.add_allocations();
    d->set_allocation_id(id);
    d->set_gpu_model(a.gpu_model());
    d->set_gpu_count(a.gpu_count());
    const absl::Time assigned = *FromProto("assigned_at", a.assigned_at());
    *d->mutable_deadline() =
        ToProto(assigned + absl::Seconds(a.max_duration_s()));
    *d->mutable_workload_command() = a.workload_command();
    d->set_next_sequence(a.last_sequence() + 1);
    *d->mutable_assigned_at() = a.assigned_at();
    d->set_enterprise_id(a.enterprise_id());
  }
  return response;
}

absl::StatusOr<Reply> Placement::Heartbeat(const pb::Principal& p,
                                           const pb::HeartbeatRequest& r) {
  if (p.role() != pb::ROLE_AGENT || p.cluster_id().empty()) {
    return absl::PermissionDeniedError(
        "heartbeat: only an agent token may send heartbeats");
  }
  if (!registry_.state().clusters.contains(p.cluster_id())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster ", p.cluster_id(), ": not registered; call Register first"));
  }
  RETURN_IF_ERROR(
      CheckRange("allocations", r.allocations_size(), 0, kMaxUsageRecords));
  // Every text first, so that a bad one changes nothing.
  for (int i = 0; i < r.allocations_size(); ++i) {
    const pb::ObservedAllocation& o = r.allocations(i);
    RETURN_IF_ERROR(CheckText(absl::StrCat("allocations[", i, "].access"),
                              o.access(), 0, kMaxAccessChars,
                              TextLines::kMany));
    RETURN_IF_ERROR(CheckText(absl::StrCat("allocations[", i, "].end_detail"),
                              o.end_detail(), 0, kMaxEndDetailChars,
                              TextLines::kOne));
  }
  bool changed = false;
  bool ended = false;
  for (const pb::ObservedAllocation& o : r.allocations()) {
    auto it = state_.allocations.find(o.allocation_id());
    // What the agent reports about allocations that are not its own is
    // ignored: the answer below tells it what it should run.
    if (it == state_.allocations.end() ||
        it->second.allocation.cluster_id() != p.cluster_id()) {
      continue;
    }
    AllocationRec& rec = it->second;
    pb::Allocation& a = rec.allocation;
    if (!IsActive(a)) continue;
    // As the agent reports it now, so that the tenant sees what works now
    // (kept after the end, for a log path).
    if (o.access() != a.access()) {
      a.set_access(o.access());
      changed = true;
    }
    if (o.exited()) {
      a.set_exit_code(o.exit_code());
      RETURN_IF_ERROR(EndAllocation(rec, pb::END_REASON_WORKLOAD_EXITED));
      changed = ended = true;
      continue;
    }
    if (o.ended_on_cluster()) {
      a.set_end_detail(o.end_detail());
      RETURN_IF_ERROR(EndAllocation(rec, pb::END_REASON_ENDED_ON_CLUSTER));
      changed = ended = true;
      continue;
    }
    if (o.running() && a.state() == pb::ALLOCATION_STATE_ASSIGNED) {
      a.set_state(pb::ALLOCATION_STATE_RUNNING);
      changed = true;
    }
    if (o.idle() != a.idle()) {
      a.set_idle(o.idle());
      changed = true;
    }
  }
  if (ended) RETURN_IF_ERROR(ProcessQueue());
  return Reply{Share(DesiredState(p.cluster_id())), changed};
}

absl::StatusOr<Reply> Placement::ClusterLost(const pb::ClusterLostCommand& r) {
  RETURN_IF_ERROR(CheckIdRef("cluster_id", r.cluster_id()));
  if (!registry_.state().clusters.contains(r.cluster_id())) {
    return absl::NotFoundError(
        absl::StrCat("cluster_id: cluster ", r.cluster_id(), " not found"));
  }
  const std::vector<std::string> ids = ActiveAllocationIds(r.cluster_id());
  for (const std::string& id : ids) {
    RETURN_IF_ERROR(
        EndAllocation(state_.allocations.at(id), pb::END_REASON_CLUSTER_LOST));
  }
  if (!ids.empty()) RETURN_IF_ERROR(ProcessQueue());
  return Reply{Share(pb::ClusterLostCommand(r)), !ids.empty()};
}

absl::StatusOr<bool> Placement::EndDue() {
  bool any = false;
  while (!state_.deadline_index.empty() &&
         state_.deadline_index.begin()->first <= books_.now()) {
    AllocationRec& rec =
        state_.allocations.at(state_.deadline_index.begin()->second);
    RETURN_IF_ERROR(EndAllocation(rec, pb::END_REASON_DURATION_REACHED));
    any = true;
  }
  return any;
}

absl::StatusOr<bool> Placement::ReleaseDueHolds(absl::Duration grace) {
  bool any = false;
  while (!state_.release_index.empty() &&
         state_.release_index.begin()->first + grace <= books_.now()) {
    AllocationRec& rec =
        state_.allocations.at(state_.release_index.begin()->second);
    state_.release_index.erase(state_.release_index.begin());
    HoldReleased(rec);
    RETURN_IF_ERROR(ReleaseHold(rec, rec.allocation.held_fen(),
                                ReleaseKey(rec.allocation.allocation_id())));
    any = true;
  }
  return any;
}

void Placement::HoldReleased(AllocationRec& rec) {
  rec.hold_released = true;
  // Ended at books_.now(), or (ReleaseDueHolds) at its key in the release
  // index, which is its end time too.
  const pb::Allocation& a = rec.allocation;
  state_.retire_index.insert(
      {FromProto("ended_at", a.ended_at()).value_or(books_.now()),
       a.allocation_id()});
}

absl::StatusOr<bool> Placement::RetireDue(absl::Duration retain, int at_most) {
  // By voucher, the ids retired, taken off its index in one pass.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> by_voucher;
  int retired = 0;
  while (!state_.retire_index.empty() && retired < at_most &&
         state_.retire_index.begin()->first + retain <= books_.now()) {
    const std::string id = state_.retire_index.begin()->second;
    state_.retire_index.erase(state_.retire_index.begin());
    RETURN_IF_ERROR(Retire(id));
    by_voucher[retired_.back().voucher_id()].insert(id);
    ++retired;
  }
  for (const auto& entry : by_voucher) {
    const absl::flat_hash_set<std::string>& ids = entry.second;
    auto list = state_.voucher_allocations.find(entry.first);
    if (list == state_.voucher_allocations.end()) continue;
    std::vector<std::string>& v = list->second;
    v.erase(std::remove_if(
                v.begin(), v.end(),
                [&ids](const std::string& id) { return ids.contains(id); }),
            v.end());
    if (v.empty()) state_.voucher_allocations.erase(list);
  }
  return retired > 0;
}

absl::Status Placement::Retire(const std::string& id) {
  auto it = state_.allocations.find(id);
  if (it == state_.allocations.end()) {
    return absl::InternalError(
        absl::StrCat("allocation ", id, ": retired but not in the state"));
  }
  const AllocationRec& rec = it->second;
  pb::Allocation view = AllocationViewOf(rec);
  if (view.state() != pb::ALLOCATION_STATE_ENDED || !rec.hold_released ||
      view.held_fen() != 0 || books_.Balance(HoldAccount(id)) != 0) {
    return absl::InternalError(absl::StrCat(
        "allocation ", id, ": retired while ", EnumWord(view.state()),
        " holding ", FormatFen(books_.Balance(HoldAccount(id)))));
  }
  RETURN_IF_ERROR(books_.ledger().Forget(
      HoldAccount(id), AllocationKeys(id, rec.extensions), id));
  RetiredSums& sums =
      state_.retired[{view.program_id(), view.enterprise_id(),
                      view.provider_id(), view.hardware_class()}];
  ++sums.allocations;
  sums.used_gpu_ms += view.used_gpu_ms();
  sums.cost_fen += view.cost_fen();
  sums.charged_fen += view.charged_fen();
  *view.mutable_retired_at() = ToProto(books_.now());
  state_.allocations.erase(it);
  retired_.push_back(std::move(view));
  return absl::OkStatus();
}

AllocationRec* Placement::Find(const std::string& id) {
  return const_cast<AllocationRec*>(std::as_const(*this).Find(id));
}

const AllocationRec* Placement::Find(const std::string& id) const {
  auto it = state_.allocations.find(id);
  return it == state_.allocations.end() ? nullptr : &it->second;
}

std::vector<std::string> Placement::AllocationIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, rec] : state_.allocations) ids.push_back(id);
  return ids;
}

pb::Allocation Placement::AllocationViewOf(const AllocationRec& rec) const {
  pb::Allocation view = rec.allocation;
  auto cost = CostFen(view.used_gpu_ms(), view.price_fen_per_gpu_hour());
  view.set_cost_fen(cost.ok() ? *cost : 0);
  return view;
}

absl::StatusOr<pb::Allocation> Placement::AllocationView(
    const std::string& allocation_id) const {
  const AllocationRec* rec = Find(allocation_id);
  if (rec == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("allocation ", allocation_id, " not found"));
  }
  return AllocationViewOf(*rec);
}

}  // namespace computevoucher::core
