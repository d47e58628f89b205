// Placement's planning: where an allocation could run and who would pay
// (scheduler/core/placement.h); the lifecycle is in placement.cc.
#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/enum_word.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "scheduler/core/limits.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/pricing.h"

namespace computevoucher::core {
namespace {

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

}  // namespace

std::string Placement::Describe(const pb::ResourceRequest& r) {
  return absl::StrCat(r.gpu_count(), " × ",
                      r.gpu_model().empty()
                          ? absl::StrCat("any ", EnumWord(r.hardware_class()))
                          : r.gpu_model());
}

bool Placement::BetterPlacement(const Option& a, const Option& b) {
  return std::tie(a.price_fen_per_gpu_hour, a.free_gpus, a.cluster_id,
                  a.model) <
         std::tie(b.price_fen_per_gpu_hour, b.free_gpus, b.cluster_id, b.model);
}

std::vector<Placement::Option> Placement::Eligible(
    const pb::Enterprise& enterprise) const {
  return Collect(enterprise, nullptr);
}

std::vector<Placement::Option> Placement::Options(
    const pb::Enterprise& enterprise, const pb::ResourceRequest& r) const {
  return Collect(enterprise, &r);
}

std::vector<Placement::Option> Placement::Collect(
    const pb::Enterprise& enterprise, const pb::ResourceRequest* fit) const {
  // The providers that may not serve it: those it declared related, and the
  // provider that is the same legal entity (related by definition).
  absl::flat_hash_set<absl::string_view> excluded(
      enterprise.related_provider_ids().begin(),
      enterprise.related_provider_ids().end());
  const auto& codes = registry_.state().credit_codes;
  if (auto same = codes.find(absl::StrCat("P:", enterprise.credit_code()));
      same != codes.end()) {
    excluded.insert(same->second);
  }
  auto fits = [fit](const pb::GpuModel& m) {
    if (fit == nullptr) return true;
    if (m.gpu_count() < fit->gpu_count()) return false;
    if (fit->gpu_model().empty())
      return m.hardware_class() == fit->hardware_class();
    return fit->model_any_case()
               ? absl::EqualsIgnoreCase(m.model(), fit->gpu_model())
               : m.model() == fit->gpu_model();
  };
  std::vector<Option> options;
  options.reserve(registry_.state().clusters.size());
  for (const auto& [id, rec] : registry_.state().clusters) {
    const pb::Cluster& cluster = rec.cluster;
    if (cluster.state() != pb::CLUSTER_STATE_APPROVED) continue;
    if (!excluded.empty() && excluded.contains(cluster.provider_id())) {
      continue;
    }
    for (const pb::GpuModel& m : cluster.inventory()) {
      if (!fits(m)) continue;
      int32_t in_use = 0;
      if (!rec.used_gpus.empty()) {
        auto used = rec.used_gpus.find(m.model());
        if (used != rec.used_gpus.end()) in_use = used->second;
      }
      options.push_back(
          Option{cluster.cluster_id(), cluster.provider_id(), m.model(),
                 m.hardware_class(), m.price_fen_per_gpu_hour(),
                 std::max(0, m.gpu_count() - in_use), m.gpu_count()});
    }
  }
  return options;
}

absl::StatusOr<int64_t> Placement::HoldFor(const Option& option,
                                           const pb::Program& program, bool sme,
                                           int32_t gpu_count,
                                           int64_t duration_s) const {
  ASSIGN_OR_RETURN(const int64_t gpu_ms, GpuMs(gpu_count, duration_s));
  ASSIGN_OR_RETURN(const int64_t cost,
                   CostFen(gpu_ms, option.price_fen_per_gpu_hour));
  return SubsidyFen(cost, RatioBp(program, option.hardware_class, sme));
}

absl::StatusOr<Placement::Plan> Placement::PlanAllocation(
    const std::string& enterprise_id, const pb::ResourceRequest& r) const {
  RETURN_IF_ERROR(CheckResources(r));
  ASSIGN_OR_RETURN(
      const pb::Enterprise* enterprise,
      registry_.FindEnterprise("principal.enterprise_id", enterprise_id));
  Plan plan;
  plan.options = Options(*enterprise, r);
  if (plan.options.empty()) {
    absl::btree_set<std::string> models;
    for (const Option& o : Eligible(*enterprise))
      models.insert(std::string(o.model));
    return absl::FailedPreconditionError(
        absl::StrCat("no approved, unrelated cluster offers ", Describe(r),
                     "; models on offer: ",
                     models.empty() ? "none" : absl::StrJoin(models, ", ")));
  }
  for (const Option& option : plan.options) {
    if (option.free_gpus < r.gpu_count()) continue;
    if (!plan.placement || BetterPlacement(option, *plan.placement))
      plan.placement = option;
  }
  ASSIGN_OR_RETURN(const std::vector<const VoucherRec*> payers,
                   vouchers_.Payers(enterprise_id, r.voucher_id()));
  std::string shortfall;
  for (const VoucherRec* rec : payers) {
    RETURN_IF_ERROR(AddPayer(*rec, *enterprise, r, plan, &shortfall));
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

absl::Status Placement::AddPayer(const VoucherRec& rec,
                                 const pb::Enterprise& enterprise,
                                 const pb::ResourceRequest& r, Plan& plan,
                                 std::string* shortfall) const {
  const pb::Voucher& v = rec.voucher;
  ASSIGN_OR_RETURN(const absl::Time from,
                   FromProto("valid_from", v.valid_from()));
  ASSIGN_OR_RETURN(const absl::Time until,
                   FromProto("valid_until", v.valid_until()));
  const bool usable = v.state() == pb::VOUCHER_STATE_ACTIVE &&
                      Window{from, until}.Contains(books_.now());
  if (!usable) {
    if (!r.voucher_id().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "voucher ", v.voucher_id(), ": not usable now (", EnumWord(v.state()),
          ", valid ", FormatInstant(from), " .. ", FormatInstant(until), ")"));
    }
    return absl::OkStatus();
  }
  const pb::Program& program = registry_.state().programs.at(v.program_id());
  // Queued: hold at the most expensive way it could be served.
  const Option* priced = plan.placement ? &*plan.placement : nullptr;
  int64_t hold = 0;
  if (priced != nullptr) {
    ASSIGN_OR_RETURN(hold, HoldFor(*priced, program, enterprise.sme(),
                                   r.gpu_count(), r.max_duration_s()));
  } else {
    for (const Option& option : plan.options) {
      ASSIGN_OR_RETURN(const int64_t h,
                       HoldFor(option, program, enterprise.sme(), r.gpu_count(),
                               r.max_duration_s()));
      if (priced == nullptr || h > hold) {
        hold = h;
        priced = &option;
      }
    }
  }
  const int64_t available = vouchers_.Available(v.voucher_id());
  pb::VoucherOption* voucher_option = &plan.voucher_options.emplace_back();
  voucher_option->set_voucher_id(v.voucher_id());
  voucher_option->set_available_fen(available);
  voucher_option->set_sufficient(available >= hold);
  if (plan.voucher != nullptr) return absl::OkStatus();
  plan.hold_fen = hold;
  plan.price_fen_per_gpu_hour = priced->price_fen_per_gpu_hour;
  plan.hardware_class = priced->hardware_class;
  plan.ratio_bp = RatioBp(program, priced->hardware_class, enterprise.sme());
  ASSIGN_OR_RETURN(const int64_t gpu_ms,
                   GpuMs(r.gpu_count(), r.max_duration_s()));
  ASSIGN_OR_RETURN(plan.amounts, AmountsFor(gpu_ms, plan.price_fen_per_gpu_hour,
                                            plan.ratio_bp));
  if (available >= hold) {
    plan.voucher = &rec;
  } else if (shortfall->empty()) {
    *shortfall = absl::StrCat("voucher ", v.voucher_id(),
                              ": insufficient balance: need ", FormatFen(hold),
                              ", have ", FormatFen(available));
  }
  return absl::OkStatus();
}

absl::StatusOr<pb::QuoteResponse> Placement::Quote(
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
    quote.set_cluster_id(std::string(plan.placement->cluster_id));
    quote.set_gpu_model(std::string(plan.placement->model));
  }
  return quote;
}

}  // namespace computevoucher::core
