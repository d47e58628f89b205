// Clusters, allocations (hold, placement, queue, release, extension), usage
// charging and the tick.
#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "scheduler/core/pricing.h"
#include "scheduler/core/state_machine.h"

namespace computevoucher::core {
namespace {

constexpr int kMaxGpus = 1024;
constexpr int64_t kMinDurationS = 60;
constexpr int64_t kMaxDurationS = 365 * 24 * 3600;
constexpr int kMaxUsageRecords = 10'000;
constexpr int kMaxModels = 64;
// Texts from agents (docs/features.md, "Agent protocol"; docs/limits.md): how many characters each
// may have and whether it may span lines.
constexpr int kMaxMeterChars = 64;
constexpr int kMaxAccessChars = 1024;
constexpr int kMaxEndDetailChars = 256;
constexpr int kMaxEvidenceChars = 512;

template <typename T>
std::shared_ptr<const google::protobuf::Message> Share(T message) {
  return std::make_shared<const T>(std::move(message));
}

bool IsActive(const pb::Allocation& a) {
  return a.state() == pb::ALLOCATION_STATE_ASSIGNED ||
         a.state() == pb::ALLOCATION_STATE_RUNNING;
}

std::string Describe(const pb::ResourceRequest& r) {
  return absl::StrCat(
      r.gpu_count(), " × ",
      r.gpu_model().empty()
          ? absl::StrCat("any ", pb::HardwareClass_Name(r.hardware_class()))
          : r.gpu_model());
}

absl::Status CheckResources(const pb::ResourceRequest& r) {
  const bool has_model = !r.gpu_model().empty();
  const bool has_class = r.hardware_class() != pb::HARDWARE_CLASS_UNSPECIFIED;
  if (has_model == has_class) {
    return absl::InvalidArgumentError(
        "gpu_model, hardware_class: exactly one must be set");
  }
  if (has_model)
    RETURN_IF_ERROR(CheckLength("gpu_model", r.gpu_model(), 1, 64));
  if (has_class && !pb::HardwareClass_IsValid(r.hardware_class())) {
    return absl::InvalidArgumentError(
        absl::StrCat("hardware_class: unknown value ", r.hardware_class()));
  }
  RETURN_IF_ERROR(CheckRange("gpu_count", r.gpu_count(), 1, kMaxGpus));
  RETURN_IF_ERROR(CheckRange("max_duration_s", r.max_duration_s(),
                             kMinDurationS, kMaxDurationS));
  if (!r.voucher_id().empty())
    RETURN_IF_ERROR(CheckIdRef("voucher_id", r.voucher_id()));
  return absl::OkStatus();
}

// Placement preference among options with room: lowest price, then
// tightest fit (fewest free GPUs, as the GPUs asked for are the same), then
// id order.
template <typename Option>
bool BetterPlacement(const Option& a, const Option& b) {
  return std::tie(a.price_fen_per_gpu_hour, a.free_gpus, a.cluster_id,
                  a.model) <
         std::tie(b.price_fen_per_gpu_hour, b.free_gpus, b.cluster_id, b.model);
}

// Whether two inventories are the same terms, model by model in order.
bool SameTerms(const google::protobuf::RepeatedPtrField<pb::GpuModel>& a,
               const google::protobuf::RepeatedPtrField<pb::GpuModel>& b) {
  if (a.size() != b.size()) return false;
  for (int i = 0; i < a.size(); ++i) {
    if (a[i].model() != b[i].model() ||
        a[i].hardware_class() != b[i].hardware_class() ||
        a[i].gpu_count() != b[i].gpu_count() ||
        a[i].price_fen_per_gpu_hour() != b[i].price_fen_per_gpu_hour()) {
      return false;
    }
  }
  return true;
}

// Whether `offered` sells nothing that `approved` does not: every model
// already approved, in the same class, at the same price, with no more
// GPUs.
bool OffersNoMoreThan(
    const google::protobuf::RepeatedPtrField<pb::GpuModel>& offered,
    const google::protobuf::RepeatedPtrField<pb::GpuModel>& approved) {
  for (const pb::GpuModel& m : offered) {
    const auto it = std::find_if(
        approved.begin(), approved.end(),
        [&](const pb::GpuModel& a) { return a.model() == m.model(); });
    if (it == approved.end() || it->hardware_class() != m.hardware_class() ||
        it->price_fen_per_gpu_hour() != m.price_fen_per_gpu_hour() ||
        m.gpu_count() > it->gpu_count()) {
      return false;
    }
  }
  return true;
}

}  // namespace

// --- Clusters ---

absl::StatusOr<StateMachine::Response> StateMachine::RegisterCluster(
    const pb::Principal& p, const pb::RegisterRequest& r) {
  if (p.role() != pb::ROLE_AGENT || p.cluster_id().empty()) {
    return absl::PermissionDeniedError(
        "register: only an agent token may register a cluster");
  }
  auto owner = cluster_owner_.find(p.cluster_id());
  if (owner == cluster_owner_.end()) {
    return absl::InternalError(
        absl::StrCat("cluster ", p.cluster_id(), " has no owner"));
  }
  RETURN_IF_ERROR(CheckLength("region", r.region(), 1, 64));
  RETURN_IF_ERROR(CheckLength("agent_version", r.agent_version(), 0, 64));
  // "runtime+telemetry" for operators; the scheduler keeps nothing of it,
  // so any short line will do.
  RETURN_IF_ERROR(
      CheckText("meter", r.meter(), 0, kMaxMeterChars, TextLines::kOne));
  RETURN_IF_ERROR(CheckRange("inventory", r.inventory_size(), 1, kMaxModels));
  absl::flat_hash_set<std::string> models;
  for (const pb::GpuModel& m : r.inventory()) {
    RETURN_IF_ERROR(CheckLength("inventory.model", m.model(), 1, 64));
    if (!models.insert(m.model()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("inventory.model: \"", m.model(), "\" listed twice"));
    }
    if (m.hardware_class() != pb::HARDWARE_CLASS_DOMESTIC &&
        m.hardware_class() != pb::HARDWARE_CLASS_OTHER) {
      return absl::InvalidArgumentError(
          absl::StrCat("inventory.hardware_class: model ", m.model(),
                       " needs domestic or other"));
    }
    RETURN_IF_ERROR(
        CheckRange(absl::StrCat("inventory[", m.model(), "].gpu_count"),
                   m.gpu_count(), 1, 100'000));
    RETURN_IF_ERROR(CheckRange(
        absl::StrCat("inventory[", m.model(), "].price_fen_per_gpu_hour"),
        m.price_fen_per_gpu_hour(), 1, 100'000'000));
  }
  ClusterRec& rec = clusters_[p.cluster_id()];
  pb::Cluster& cluster = rec.cluster;
  const bool is_new = cluster.cluster_id().empty();
  if (is_new) {
    cluster.set_cluster_id(p.cluster_id());
    cluster.set_provider_id(owner->second);
    cluster.set_state(pb::CLUSTER_STATE_PENDING_APPROVAL);
    *cluster.mutable_registered_at() = ToProto(now_);
  }
  google::protobuf::RepeatedPtrField<pb::GpuModel> offered;
  for (const pb::GpuModel& m : r.inventory()) {
    pb::GpuModel* model = offered.Add();
    model->set_model(m.model());
    model->set_hardware_class(m.hardware_class());
    model->set_gpu_count(m.gpu_count());
    model->set_price_fen_per_gpu_hour(m.price_fen_per_gpu_hour());
  }
  // A cluster the program office has reviewed sells what it approved: a
  // re-registration that would sell more or dearer waits for its review
  // (a provider must not raise its own subsidy); one that sells less
  // applies at once. Allocations keep the terms they were admitted with.
  const bool reviewed = cluster.state() != pb::CLUSTER_STATE_PENDING_APPROVAL;
  const bool needs_review =
      reviewed && !OffersNoMoreThan(offered, cluster.inventory());
  const bool same_terms = !is_new && SameTerms(offered, cluster.inventory());
  const bool same_proposal = SameTerms(needs_review
                                           ? offered
                                           : google::protobuf::RepeatedPtrField<
                                                 pb::GpuModel>(),
                                       cluster.proposed_inventory());
  if (!is_new && cluster.region() == r.region() &&
      (needs_review ? same_proposal : same_terms && same_proposal)) {
    unchanged_ = true;
  } else {
    cluster.set_region(r.region());
    if (needs_review) {
      *cluster.mutable_proposed_inventory() = std::move(offered);
    } else {
      cluster.clear_proposed_inventory();
      *cluster.mutable_inventory() = std::move(offered);
      RETURN_IF_ERROR(ProcessQueue());
    }
  }
  pb::RegisterResponse response;
  *response.mutable_cluster() = *ClusterView(p.cluster_id());
  return Share(std::move(response));
}

// --- Planning ---

std::vector<StateMachine::Option> StateMachine::Options(
    const pb::Enterprise& enterprise, const pb::ResourceRequest& r) const {
  absl::flat_hash_set<std::string> related(
      enterprise.related_provider_ids().begin(),
      enterprise.related_provider_ids().end());
  std::vector<Option> options;
  for (const auto& [id, rec] : clusters_) {
    const pb::Cluster& cluster = rec.cluster;
    if (cluster.state() != pb::CLUSTER_STATE_APPROVED) continue;
    if (related.contains(cluster.provider_id())) continue;
    // The same legal entity on both sides is related by definition.
    auto provider = providers_.find(cluster.provider_id());
    if (provider != providers_.end() &&
        provider->second.credit_code() == enterprise.credit_code()) {
      continue;
    }
    for (const pb::GpuModel& m : cluster.inventory()) {
      const bool match = r.gpu_model().empty()
                             ? m.hardware_class() == r.hardware_class()
                             : m.model() == r.gpu_model();
      if (!match || m.gpu_count() < r.gpu_count()) continue;
      auto used = rec.used_gpus.find(m.model());
      const int32_t in_use = used == rec.used_gpus.end() ? 0 : used->second;
      options.push_back(Option{id, cluster.provider_id(), m.model(),
                               m.hardware_class(), m.price_fen_per_gpu_hour(),
                               std::max(0, m.gpu_count() - in_use)});
    }
  }
  return options;
}

absl::StatusOr<int64_t> StateMachine::HoldFor(const Option& option,
                                              const pb::Program& program,
                                              bool sme, int32_t gpu_count,
                                              int64_t duration_s) const {
  ASSIGN_OR_RETURN(const int64_t gpu_ms, GpuMs(gpu_count, duration_s));
  ASSIGN_OR_RETURN(const int64_t cost,
                   CostFen(gpu_ms, option.price_fen_per_gpu_hour));
  return SubsidyFen(cost, RatioBp(program, option.hardware_class, sme));
}

absl::StatusOr<StateMachine::Plan> StateMachine::PlanAllocation(
    const std::string& enterprise_id, const pb::ResourceRequest& r) const {
  RETURN_IF_ERROR(CheckResources(r));
  ASSIGN_OR_RETURN(const pb::Enterprise* enterprise,
                   FindEnterprise("principal.enterprise_id", enterprise_id));
  Plan plan;
  plan.options = Options(*enterprise, r);
  if (plan.options.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no approved, unrelated cluster offers ", Describe(r)));
  }
  for (const Option& option : plan.options) {
    if (option.free_gpus < r.gpu_count()) continue;
    if (!plan.placement || BetterPlacement(option, *plan.placement))
      plan.placement = option;
  }

  // The vouchers that could pay, in the order they are chosen.
  std::vector<const VoucherRec*> candidates;
  if (!r.voucher_id().empty()) {
    auto it = vouchers_.find(r.voucher_id());
    if (it == vouchers_.end()) {
      return absl::NotFoundError(
          absl::StrCat("voucher_id: voucher ", r.voucher_id(), " not found"));
    }
    // Another enterprise's voucher is answered as a missing one.
    if (it->second.voucher.enterprise_id() != enterprise_id) {
      return absl::NotFoundError(
          absl::StrCat("voucher_id: voucher ", r.voucher_id(), " not found"));
    }
    candidates.push_back(&it->second);
  } else if (auto ids = enterprise_vouchers_.find(enterprise_id);
             ids != enterprise_vouchers_.end()) {
    for (const std::string& id : ids->second)
      candidates.push_back(&vouchers_.at(id));
    std::stable_sort(
        candidates.begin(), candidates.end(),
        [](const VoucherRec* a, const VoucherRec* b) {
          const pb::Voucher& x = a->voucher;
          const pb::Voucher& y = b->voucher;
          return std::make_tuple(-x.priority(), x.valid_until().seconds(),
                                 x.valid_until().nanos(), x.voucher_id()) <
                 std::make_tuple(-y.priority(), y.valid_until().seconds(),
                                 y.valid_until().nanos(), y.voucher_id());
        });
  }
  std::string shortfall;
  for (const VoucherRec* rec : candidates) {
    const pb::Voucher& v = rec->voucher;
    ASSIGN_OR_RETURN(const absl::Time from,
                     FromProto("valid_from", v.valid_from()));
    ASSIGN_OR_RETURN(const absl::Time until,
                     FromProto("valid_until", v.valid_until()));
    const bool usable = v.state() == pb::VOUCHER_STATE_ACTIVE &&
                        Window{from, until}.Contains(now_);
    if (!usable) {
      if (!r.voucher_id().empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "voucher ", v.voucher_id(), ": not usable now (",
            pb::VoucherState_Name(v.state()), ", valid ", FormatInstant(from),
            " .. ", FormatInstant(until), ")"));
      }
      continue;
    }
    const pb::Program& program = programs_.at(v.program_id());
    // Queued: hold at the most expensive way it could be served.
    const Option* priced = plan.placement ? &*plan.placement : nullptr;
    int64_t hold = 0;
    if (priced != nullptr) {
      ASSIGN_OR_RETURN(hold, HoldFor(*priced, program, enterprise->sme(),
                                     r.gpu_count(), r.max_duration_s()));
    } else {
      for (const Option& option : plan.options) {
        ASSIGN_OR_RETURN(const int64_t h,
                         HoldFor(option, program, enterprise->sme(),
                                 r.gpu_count(), r.max_duration_s()));
        if (priced == nullptr || h > hold) {
          hold = h;
          priced = &option;
        }
      }
    }
    const int64_t available = ledger_.Balance(VoucherAccount(v.voucher_id()));
    pb::VoucherOption* voucher_option = &plan.voucher_options.emplace_back();
    voucher_option->set_voucher_id(v.voucher_id());
    voucher_option->set_available_fen(available);
    voucher_option->set_sufficient(available >= hold);
    if (plan.voucher == nullptr) {
      plan.hold_fen = hold;
      plan.price_fen_per_gpu_hour = priced->price_fen_per_gpu_hour;
      plan.hardware_class = priced->hardware_class;
      plan.ratio_bp =
          RatioBp(program, priced->hardware_class, enterprise->sme());
      ASSIGN_OR_RETURN(const int64_t gpu_ms,
                       GpuMs(r.gpu_count(), r.max_duration_s()));
      ASSIGN_OR_RETURN(
          plan.amounts,
          AmountsFor(gpu_ms, plan.price_fen_per_gpu_hour, plan.ratio_bp));
      if (available >= hold) {
        plan.voucher = rec;
      } else if (shortfall.empty()) {
        shortfall = absl::StrCat(
            "voucher ", v.voucher_id(), ": insufficient balance: need ",
            FormatFen(hold), ", have ", FormatFen(available));
      }
    }
  }
  if (plan.voucher_options.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "enterprise ", enterprise_id, ": no active voucher valid now"));
  }
  if (plan.voucher == nullptr && !r.voucher_id().empty()) {
    return absl::FailedPreconditionError(shortfall);
  }
  return plan;
}

absl::StatusOr<pb::QuoteResponse> StateMachine::Quote(
    const std::string& enterprise_id,
    const pb::ResourceRequest& resources) const {
  ASSIGN_OR_RETURN(const Plan plan, PlanAllocation(enterprise_id, resources));
  pb::QuoteResponse quote;
  *quote.mutable_amounts() = plan.amounts;
  quote.set_price_fen_per_gpu_hour(plan.price_fen_per_gpu_hour);
  quote.set_ratio_bp(plan.ratio_bp);
  quote.set_hardware_class(plan.hardware_class);
  for (const pb::VoucherOption& option : plan.voucher_options)
    *quote.add_vouchers() = option;
  quote.set_capacity_available(plan.placement.has_value());
  if (plan.placement) {
    quote.set_cluster_id(plan.placement->cluster_id);
    quote.set_gpu_model(plan.placement->model);
  }
  return quote;
}

// --- Allocation lifecycle ---

absl::StatusOr<StateMachine::Response> StateMachine::Allocate(
    const pb::Principal& p, const std::string& request_id,
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
                     "; set queue_if_busy to wait in the queue"));
  }
  const pb::Voucher& voucher = plan.voucher->voucher;
  const std::string id = NextId("AL", &next_allocation_, 8);
  AllocationRec& rec = allocations_[id];
  rec.queue_order = next_allocation_;
  pb::Allocation& a = rec.allocation;
  a.set_allocation_id(id);
  a.set_enterprise_id(p.enterprise_id());
  a.set_voucher_id(voucher.voucher_id());
  a.set_program_id(voucher.program_id());
  a.set_requested_model(r.resources().gpu_model());
  a.set_requested_class(r.resources().hardware_class());
  a.set_gpu_count(r.resources().gpu_count());
  a.set_max_duration_s(r.resources().max_duration_s());
  a.set_price_fen_per_gpu_hour(plan.price_fen_per_gpu_hour);
  a.set_hardware_class(plan.hardware_class);
  a.set_ratio_bp(plan.ratio_bp);
  a.set_state(pb::ALLOCATION_STATE_PENDING);
  *a.mutable_created_at() = ToProto(now_);
  *a.mutable_workload_command() = r.workload_command();
  a.set_request_id(request_id);
  voucher_allocations_[voucher.voucher_id()].push_back(id);
  // A program with a 0% ratio subsidises nothing, so there is nothing to
  // hold.
  if (plan.hold_fen > 0) {
    RETURN_IF_ERROR(
        Post(AllocationEntry(pb::ENTRY_KIND_HOLD, HoldAccount(id),
                             VoucherAccount(voucher.voucher_id()),
                             plan.hold_fen, absl::StrCat("hold/", id), a)));
  }
  UpdateExhausted(vouchers_.at(voucher.voucher_id()));
  if (plan.placement) {
    RETURN_IF_ERROR(Place(rec, *plan.placement));
  } else {
    queue_.insert({rec.queue_order, id});
  }
  return Share(AllocationViewOf(rec));
}

absl::Status StateMachine::Place(AllocationRec& rec, const Option& option) {
  pb::Allocation& a = rec.allocation;
  const pb::Program& program = programs_.at(a.program_id());
  const bool sme = enterprises_.at(a.enterprise_id()).sme();
  ASSIGN_OR_RETURN(
      const int64_t hold,
      HoldFor(option, program, sme, a.gpu_count(), a.max_duration_s()));
  const int64_t excess = a.held_fen() - hold;
  if (excess < 0) {
    return absl::InternalError(
        absl::StrCat("allocation ", a.allocation_id(),
                     ": placement needs more than its hold"));
  }
  queue_.erase({rec.queue_order, a.allocation_id()});
  a.set_cluster_id(option.cluster_id);
  a.set_provider_id(option.provider_id);
  a.set_gpu_model(option.model);
  a.set_hardware_class(option.hardware_class);
  a.set_price_fen_per_gpu_hour(option.price_fen_per_gpu_hour);
  a.set_ratio_bp(RatioBp(program, option.hardware_class, sme));
  a.set_state(pb::ALLOCATION_STATE_ASSIGNED);
  *a.mutable_assigned_at() = ToProto(now_);
  clusters_.at(option.cluster_id).used_gpus[option.model] += a.gpu_count();
  cluster_allocations_[option.cluster_id].insert(a.allocation_id());
  enterprise_gpus_[a.enterprise_id()] += a.gpu_count();
  deadline_index_.insert(
      {now_ + absl::Seconds(a.max_duration_s()), a.allocation_id()});
  if (excess > 0) {
    RETURN_IF_ERROR(ReleaseHold(
        rec, excess, absl::StrCat("release/", a.allocation_id(), "/placed")));
  }
  return absl::OkStatus();
}

absl::Status StateMachine::ReleaseHold(AllocationRec& rec, int64_t amount,
                                       const std::string& key) {
  if (amount <= 0) return absl::OkStatus();
  const pb::Allocation& a = rec.allocation;
  RETURN_IF_ERROR(Post(
      AllocationEntry(pb::ENTRY_KIND_RELEASE, VoucherAccount(a.voucher_id()),
                      HoldAccount(a.allocation_id()), amount, key, a)));
  VoucherRec& voucher = vouchers_.at(a.voucher_id());
  // A revoked or expired voucher passes what comes back on to the budget.
  const pb::VoucherState state = voucher.voucher.state();
  if (state == pb::VOUCHER_STATE_REVOKED ||
      state == pb::VOUCHER_STATE_EXPIRED) {
    const pb::EntryKind kind = state == pb::VOUCHER_STATE_REVOKED
                                   ? pb::ENTRY_KIND_REVOKE
                                   : pb::ENTRY_KIND_EXPIRE;
    RETURN_IF_ERROR(
        ReturnToBudget(voucher, kind, amount, absl::StrCat("return/", key)));
  }
  UpdateExhausted(voucher);
  return absl::OkStatus();
}

absl::Status StateMachine::ReturnToBudget(VoucherRec& rec, pb::EntryKind kind,
                                          int64_t amount,
                                          const std::string& key) {
  if (amount <= 0) return absl::OkStatus();
  const pb::Voucher& v = rec.voucher;
  pb::JournalEntry entry = Entry(kind, ProgramBudgetAccount(v.program_id()),
                                 VoucherAccount(v.voucher_id()), amount, key);
  entry.set_voucher_id(v.voucher_id());
  entry.set_program_id(v.program_id());
  return Post(std::move(entry));
}

void StateMachine::UpdateExhausted(VoucherRec& rec) {
  pb::Voucher& v = rec.voucher;
  const bool empty =
      ledger_.Balance(VoucherAccount(v.voucher_id())) == 0 && v.held_fen() == 0;
  if (v.state() == pb::VOUCHER_STATE_ACTIVE && empty) {
    v.set_state(pb::VOUCHER_STATE_EXHAUSTED);
  } else if (v.state() == pb::VOUCHER_STATE_EXHAUSTED && !empty) {
    v.set_state(pb::VOUCHER_STATE_ACTIVE);
  }
}

absl::Status StateMachine::EndAllocation(AllocationRec& rec,
                                         pb::EndReason reason) {
  pb::Allocation& a = rec.allocation;
  if (a.state() == pb::ALLOCATION_STATE_ENDED) return absl::OkStatus();
  const pb::AllocationState was = a.state();
  a.set_state(pb::ALLOCATION_STATE_ENDED);
  a.set_end_reason(reason);
  *a.mutable_ended_at() = ToProto(now_);
  if (was == pb::ALLOCATION_STATE_PENDING) {
    // Never ran, so no usage can follow: release everything now.
    queue_.erase({rec.queue_order, a.allocation_id()});
    rec.hold_released = true;
    return ReleaseHold(rec, a.held_fen(),
                       absl::StrCat("release/", a.allocation_id()));
  }
  ASSIGN_OR_RETURN(const absl::Time assigned,
                   FromProto("assigned_at", a.assigned_at()));
  deadline_index_.erase(
      {assigned + absl::Seconds(a.max_duration_s()), a.allocation_id()});
  clusters_.at(a.cluster_id()).used_gpus[a.gpu_model()] -= a.gpu_count();
  cluster_allocations_[a.cluster_id()].erase(a.allocation_id());
  enterprise_gpus_[a.enterprise_id()] -= a.gpu_count();
  release_index_.insert({now_, a.allocation_id()});
  return absl::OkStatus();
}

absl::Status StateMachine::EndVoucherAllocations(const std::string& voucher_id,
                                                 pb::EndReason reason) {
  auto ids = voucher_allocations_.find(voucher_id);
  if (ids == voucher_allocations_.end()) return absl::OkStatus();
  for (const std::string& id : ids->second) {
    RETURN_IF_ERROR(EndAllocation(allocations_.at(id), reason));
  }
  return ProcessQueue();
}

absl::StatusOr<StateMachine::AllocationRec*> StateMachine::FindOwnAllocation(
    const pb::Principal& p, const std::string& id) {
  RETURN_IF_ERROR(CheckIdRef("allocation_id", id));
  auto it = allocations_.find(id);
  if (it == allocations_.end()) {
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

absl::StatusOr<StateMachine::Response> StateMachine::ReleaseAllocation(
    const pb::Principal& p, const pb::ReleaseAllocationRequest& r) {
  ASSIGN_OR_RETURN(AllocationRec * rec,
                   FindOwnAllocation(p, r.allocation_id()));
  if (rec->allocation.state() == pb::ALLOCATION_STATE_ENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("allocation ", r.allocation_id(), ": already ended (",
                     pb::EndReason_Name(rec->allocation.end_reason()), ")"));
  }
  RETURN_IF_ERROR(EndAllocation(*rec, pb::END_REASON_RELEASED));
  RETURN_IF_ERROR(ProcessQueue());
  return Share(AllocationViewOf(*rec));
}

absl::StatusOr<StateMachine::Response> StateMachine::ExtendAllocation(
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
  const VoucherRec& voucher = vouchers_.at(a.voucher_id());
  if (voucher.voucher.state() != pb::VOUCHER_STATE_ACTIVE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "voucher ", a.voucher_id(), ": is ",
        pb::VoucherState_Name(voucher.voucher.state()), ", cannot hold more"));
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
  const int64_t available = ledger_.Balance(VoucherAccount(a.voucher_id()));
  if (extra > available) {
    return absl::FailedPreconditionError(absl::StrCat(
        "voucher ", a.voucher_id(), ": insufficient balance: need ",
        FormatFen(extra), ", have ", FormatFen(available)));
  }
  if (extra > 0) {
    RETURN_IF_ERROR(Post(
        AllocationEntry(pb::ENTRY_KIND_HOLD, HoldAccount(a.allocation_id()),
                        VoucherAccount(a.voucher_id()), extra,
                        absl::StrCat("hold/", a.allocation_id(), "/extend/",
                                     rec->extensions + 1),
                        a)));
  }
  ++rec->extensions;
  if (IsActive(a)) {
    ASSIGN_OR_RETURN(const absl::Time assigned,
                     FromProto("assigned_at", a.assigned_at()));
    deadline_index_.erase(
        {assigned + absl::Seconds(a.max_duration_s()), a.allocation_id()});
    deadline_index_.insert(
        {assigned + absl::Seconds(new_duration), a.allocation_id()});
  }
  a.set_max_duration_s(new_duration);
  UpdateExhausted(vouchers_.at(a.voucher_id()));
  return Share(AllocationViewOf(*rec));
}

int64_t StateMachine::EnterpriseGpusInUse(
    const std::string& enterprise_id) const {
  auto it = enterprise_gpus_.find(enterprise_id);
  return it == enterprise_gpus_.end() ? 0 : it->second;
}

absl::Status StateMachine::ProcessQueue() {
  if (queue_.empty()) return absl::OkStatus();
  // Priority, then fair share (fewest GPUs in use now), then age.
  struct Waiting {
    int32_t priority;
    int64_t gpus_in_use;
    int64_t order;
    std::string id;
  };
  std::vector<Waiting> waiting;
  for (const auto& [order, id] : queue_) {
    const pb::Allocation& a = allocations_.at(id).allocation;
    waiting.push_back(Waiting{vouchers_.at(a.voucher_id()).voucher.priority(),
                              EnterpriseGpusInUse(a.enterprise_id()), order,
                              id});
  }
  std::sort(waiting.begin(), waiting.end(),
            [](const Waiting& x, const Waiting& y) {
              return std::make_tuple(-x.priority, x.gpus_in_use, x.order) <
                     std::make_tuple(-y.priority, y.gpus_in_use, y.order);
            });
  for (const Waiting& w : waiting) {
    AllocationRec& rec = allocations_.at(w.id);
    const pb::Allocation& a = rec.allocation;
    pb::ResourceRequest request;
    request.set_gpu_model(a.requested_model());
    request.set_hardware_class(a.requested_class());
    request.set_gpu_count(a.gpu_count());
    const pb::Program& program = programs_.at(a.program_id());
    const pb::Enterprise& enterprise = enterprises_.at(a.enterprise_id());
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

// --- Usage ---

absl::Time StateMachine::BillableEnd(const AllocationRec& rec) const {
  const pb::Allocation& a = rec.allocation;
  const absl::Time assigned = *FromProto("assigned_at", a.assigned_at());
  absl::Time end = std::min(assigned + absl::Seconds(a.max_duration_s()), now_);
  if (a.state() == pb::ALLOCATION_STATE_ENDED)
    end = std::min(end, *FromProto("ended_at", a.ended_at()));
  return end;
}

absl::StatusOr<int64_t> StateMachine::MaxChargeFen(
    const std::string& allocation_id) const {
  auto it = allocations_.find(allocation_id);
  if (it == allocations_.end()) {
    return absl::NotFoundError(
        absl::StrCat("allocation ", allocation_id, " not found"));
  }
  const pb::Allocation& a = it->second.allocation;
  if (!a.has_assigned_at()) return 0;
  ASSIGN_OR_RETURN(const absl::Time assigned,
                   FromProto("assigned_at", a.assigned_at()));
  const int64_t life_ms = std::max<int64_t>(
      0, absl::ToInt64Milliseconds(BillableEnd(it->second) - assigned));
  ASSIGN_OR_RETURN(const pb::Amounts amounts,
                   AmountsFor(life_ms * a.gpu_count(),
                              a.price_fen_per_gpu_hour(), a.ratio_bp()));
  return amounts.subsidy_fen();
}

absl::StatusOr<pb::UsageAck> StateMachine::ChargeRecord(
    const pb::Principal& p, const pb::UsageRecord& u, bool* consumed) {
  pb::UsageAck ack;
  ack.set_allocation_id(u.allocation_id());
  ack.set_sequence(u.sequence());
  auto reject = [&ack](pb::UsageResult result, std::string reason) {
    ack.set_result(result);
    ack.set_reason(std::move(reason));
    return ack;
  };
  auto it = allocations_.find(u.allocation_id());
  // The same answer whether the allocation is unknown or another cluster's,
  // so that nothing leaks.
  if (it == allocations_.end() ||
      it->second.allocation.cluster_id() != p.cluster_id() ||
      p.cluster_id().empty()) {
    return reject(
        pb::USAGE_RESULT_REJECTED,
        absl::StrCat("allocation_id: ", Quoted(u.allocation_id()),
                     " is not an allocation of cluster ", p.cluster_id()));
  }
  AllocationRec& rec = it->second;
  pb::Allocation& a = rec.allocation;
  if (u.sequence() < 1) {
    return reject(pb::USAGE_RESULT_REJECTED,
                  absl::StrCat("sequence: must be >= 1, got ", u.sequence()));
  }
  if (u.sequence() <= a.last_sequence()) {
    ack.set_result(pb::USAGE_RESULT_DUPLICATE);
    ack.set_stop(a.state() == pb::ALLOCATION_STATE_ENDED);
    return ack;
  }
  if (u.sequence() != a.last_sequence() + 1) {
    return reject(pb::USAGE_RESULT_RETRY,
                  absl::StrCat("sequence: expected ", a.last_sequence() + 1,
                               ", got ", u.sequence()));
  }
  // From here on the record is the next in sequence: refusing it uses up
  // its sequence number, so that one bad record cannot block the ones after
  // it (the agent drops a refused record).
  auto refuse = [&](std::string reason) {
    a.set_last_sequence(u.sequence());
    *consumed = true;
    ack.set_stop(a.state() == pb::ALLOCATION_STATE_ENDED);
    return reject(pb::USAGE_RESULT_REJECTED, std::move(reason));
  };
  absl::StatusOr<absl::Time> start = FromProto("start", u.start());
  absl::StatusOr<absl::Time> end = FromProto("end", u.end());
  if (!start.ok()) return refuse(std::string(start.status().message()));
  if (!end.ok()) return refuse(std::string(end.status().message()));
  if (*end <= *start) {
    return refuse(absl::StrCat("end: ", FormatInstant(*end, true),
                               " must be after start ",
                               FormatInstant(*start, true)));
  }
  const absl::Time assigned = *FromProto("assigned_at", a.assigned_at());
  const absl::Time life_end = BillableEnd(rec);
  if (*end > now_ + kUsageClockSkew) {
    // Possibly only the agent's clock running ahead: decided on a resend.
    return reject(pb::USAGE_RESULT_RETRY,
                  absl::StrCat("end: ", FormatInstant(*end, true),
                               " is in the future (scheduler time ",
                               FormatInstant(now_, true), ")"));
  }
  if (*start < assigned) {
    return refuse(absl::StrCat("start: ", FormatInstant(*start, true),
                               " is before the allocation was assigned at ",
                               FormatInstant(assigned, true)));
  }
  if (*start < rec.last_usage_end) {
    return refuse(absl::StrCat("start: ", FormatInstant(*start, true),
                               " overlaps the previous record, which ends at ",
                               FormatInstant(rec.last_usage_end, true)));
  }
  const int64_t interval_ms = absl::ToInt64Milliseconds(*end - *start);
  const int64_t limit_ms = interval_ms * a.gpu_count();
  if (u.gpu_ms() < 0 || u.gpu_ms() > limit_ms) {
    return refuse(absl::StrCat("gpu_ms: must be 0..", limit_ms, " (",
                               a.gpu_count(), " GPUs × ", interval_ms,
                               " ms), got ", u.gpu_ms()));
  }
  if (u.mean_utilization_bp() < 0 || u.mean_utilization_bp() > 10'000) {
    return refuse(absl::StrCat("mean_utilization_bp: must be 0..10000, got ",
                               u.mean_utilization_bp()));
  }
  if (u.energy_mj() < 0) {
    return refuse(
        absl::StrCat("energy_mj: must not be negative, got ", u.energy_mj()));
  }
  if (absl::Status evidence = CheckText("evidence", u.evidence(), 0,
                                        kMaxEvidenceChars, TextLines::kMany);
      !evidence.ok()) {
    return refuse(std::string(evidence.message()));
  }

  // Accepted. Only the part inside the billable life can be subsidised, and
  // nothing once the hold has been released. What ran after the end (until
  // the agent learnt of it) is recorded, never subsidised.
  const int64_t billable_ms =
      std::max<int64_t>(
          0, absl::ToInt64Milliseconds(std::min(*end, life_end) - *start)) *
      a.gpu_count();
  const int64_t subsidisable =
      rec.hold_released ? 0 : std::min(u.gpu_ms(), billable_ms);
  const int64_t new_subsidised = rec.subsidised_gpu_ms + subsidisable;
  ASSIGN_OR_RETURN(
      const pb::Amounts cumulative,
      AmountsFor(new_subsidised, a.price_fen_per_gpu_hour(), a.ratio_bp()));
  const int64_t charge =
      std::min(cumulative.subsidy_fen() - a.charged_fen(), a.held_fen());
  if (charge > 0) {
    pb::JournalEntry entry = AllocationEntry(
        pb::ENTRY_KIND_CHARGE, PayableAccount(a.provider_id()),
        HoldAccount(a.allocation_id()), charge,
        absl::StrCat("charge/", a.allocation_id(), "/", u.sequence()), a);
    entry.set_usage_sequence(u.sequence());
    RETURN_IF_ERROR(Post(std::move(entry)));
  }
  ASSIGN_OR_RETURN(const int64_t cost_before,
                   CostFen(a.used_gpu_ms(), a.price_fen_per_gpu_hour()));
  ASSIGN_OR_RETURN(
      const int64_t cost_after,
      CostFen(a.used_gpu_ms() + u.gpu_ms(), a.price_fen_per_gpu_hour()));
  pb::ChargedUsage& row = usage_.emplace_back();
  *row.mutable_record() = u;
  row.set_cost_fen(cost_after - cost_before);
  row.set_subsidy_fen(std::max<int64_t>(0, charge));
  row.set_unsubsidised_gpu_ms(u.gpu_ms() - subsidisable);
  *row.mutable_accepted_at() = ToProto(now_);
  rec.subsidised_gpu_ms = new_subsidised;
  rec.last_usage_end = *end;
  a.set_last_sequence(u.sequence());
  a.set_used_gpu_ms(a.used_gpu_ms() + u.gpu_ms());
  a.set_unsubsidised_gpu_ms(a.unsubsidised_gpu_ms() + u.gpu_ms() -
                            subsidisable);
  ack.set_result(pb::USAGE_RESULT_ACCEPTED);
  ack.set_subsidy_fen(std::max<int64_t>(0, charge));
  if (IsActive(a) && a.held_fen() == 0) {
    // A hold covers the whole duration, so it runs out either at the end of
    // the duration or early only if a correction shrank it.
    const bool at_deadline =
        now_ >= assigned + absl::Seconds(a.max_duration_s());
    RETURN_IF_ERROR(EndAllocation(rec, at_deadline
                                           ? pb::END_REASON_DURATION_REACHED
                                           : pb::END_REASON_VOUCHER_EXHAUSTED));
    RETURN_IF_ERROR(ProcessQueue());
  }
  UpdateExhausted(vouchers_.at(a.voucher_id()));
  ack.set_stop(a.state() == pb::ALLOCATION_STATE_ENDED);
  return ack;
}

absl::StatusOr<StateMachine::Response> StateMachine::ReportUsage(
    const pb::Principal& p, const pb::ReportUsageRequest& r) {
  if (p.role() != pb::ROLE_AGENT) {
    return absl::PermissionDeniedError(
        "report usage: only an agent token may report usage");
  }
  RETURN_IF_ERROR(CheckRange("records", r.records_size(), 1, kMaxUsageRecords));
  pb::ReportUsageResponse response;
  bool changed = false;
  for (const pb::UsageRecord& record : r.records()) {
    ASSIGN_OR_RETURN(pb::UsageAck ack, ChargeRecord(p, record, &changed));
    changed |= ack.result() == pb::USAGE_RESULT_ACCEPTED;
    *response.add_acks() = std::move(ack);
  }
  unchanged_ = !changed;
  return Share(std::move(response));
}

// --- Agents ---

std::vector<std::string> StateMachine::ActiveAllocationIds(
    const std::string& cluster_id) const {
  auto it = cluster_allocations_.find(cluster_id);
  if (it == cluster_allocations_.end()) return {};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

pb::HeartbeatResponse StateMachine::DesiredState(
    const std::string& cluster_id) const {
  pb::HeartbeatResponse response;
  auto cluster = clusters_.find(cluster_id);
  if (cluster == clusters_.end()) return response;
  response.set_cluster_state(cluster->second.cluster.state());
  for (const std::string& id : ActiveAllocationIds(cluster_id)) {
    const pb::Allocation& a = allocations_.at(id).allocation;
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

absl::StatusOr<StateMachine::Response> StateMachine::Heartbeat(
    const pb::Principal& p, const pb::HeartbeatRequest& r) {
  if (p.role() != pb::ROLE_AGENT || p.cluster_id().empty()) {
    return absl::PermissionDeniedError(
        "heartbeat: only an agent token may send heartbeats");
  }
  if (!clusters_.contains(p.cluster_id())) {
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
    auto it = allocations_.find(o.allocation_id());
    // What the agent reports about allocations that are not its own is
    // ignored: the answer below tells it what it should run.
    if (it == allocations_.end() ||
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
  unchanged_ = !changed;
  return Share(DesiredState(p.cluster_id()));
}

absl::StatusOr<StateMachine::Response> StateMachine::ClusterLost(
    const pb::ClusterLostCommand& r) {
  RETURN_IF_ERROR(CheckIdRef("cluster_id", r.cluster_id()));
  if (!clusters_.contains(r.cluster_id())) {
    return absl::NotFoundError(
        absl::StrCat("cluster_id: cluster ", r.cluster_id(), " not found"));
  }
  const std::vector<std::string> ids = ActiveAllocationIds(r.cluster_id());
  for (const std::string& id : ids) {
    RETURN_IF_ERROR(
        EndAllocation(allocations_.at(id), pb::END_REASON_CLUSTER_LOST));
  }
  if (!ids.empty()) RETURN_IF_ERROR(ProcessQueue());
  unchanged_ = ids.empty();
  return Share(pb::ClusterLostCommand(r));
}

// --- Time ---

absl::StatusOr<StateMachine::Response> StateMachine::Tick(
    const pb::TickCommand& r) {
  RETURN_IF_ERROR(
      CheckRange("usage_grace_s", r.usage_grace_s(), 0, 7 * 24 * 3600));
  const int64_t journal_before = ledger_.last_sequence();
  bool changed = false;
  // Vouchers past their window.
  while (!expiry_index_.empty() && expiry_index_.begin()->first <= now_) {
    const std::string id = expiry_index_.begin()->second;
    expiry_index_.erase(expiry_index_.begin());
    VoucherRec& rec = vouchers_.at(id);
    changed = true;
    if (rec.voucher.state() == pb::VOUCHER_STATE_EXHAUSTED) continue;
    rec.voucher.set_state(pb::VOUCHER_STATE_EXPIRED);
    rec.voucher.set_state_reason("validity window ended");
    RETURN_IF_ERROR(EndVoucherAllocations(id, pb::END_REASON_VOUCHER_EXPIRED));
    RETURN_IF_ERROR(ReturnToBudget(rec, pb::ENTRY_KIND_EXPIRE,
                                   ledger_.Balance(VoucherAccount(id)),
                                   absl::StrCat("expire/", id)));
  }
  // Allocations that reached their duration.
  while (!deadline_index_.empty() && deadline_index_.begin()->first <= now_) {
    AllocationRec& rec = allocations_.at(deadline_index_.begin()->second);
    RETURN_IF_ERROR(EndAllocation(rec, pb::END_REASON_DURATION_REACHED));
    changed = true;
  }
  // Holds of ended allocations, once late usage had its grace period.
  const absl::Duration grace = absl::Seconds(r.usage_grace_s());
  while (!release_index_.empty() &&
         release_index_.begin()->first + grace <= now_) {
    AllocationRec& rec = allocations_.at(release_index_.begin()->second);
    release_index_.erase(release_index_.begin());
    rec.hold_released = true;
    RETURN_IF_ERROR(
        ReleaseHold(rec, rec.allocation.held_fen(),
                    absl::StrCat("release/", rec.allocation.allocation_id())));
    changed = true;
  }
  const size_t queued_before = queue_.size();
  RETURN_IF_ERROR(ProcessQueue());
  changed |= queue_.size() != queued_before ||
             ledger_.last_sequence() != journal_before;
  unchanged_ = !changed;
  return Share(pb::TickCommand(r));
}

}  // namespace computevoucher::core
