#include "client/internal/views.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/internal/values.h"
#include "common/money.h"
#include "common/time_util.h"

namespace computevoucher::client {
namespace {

namespace pb = ::computevoucher::v1;

// The cell of field `expr` of `x`, an object of the list's type T.
#define CV_CELL(expr) [](const T& x) -> Cell { return (expr); }

std::string YesNo(bool b) { return b ? "yes" : "no"; }

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string Hex(const std::string& bytes) {
  return bytes.empty() ? "-" : absl::BytesToHexString(bytes);
}

// "2×H100" or "2×domestic".
template <typename A>
std::string Gpus(int32_t count, const std::string& model, A hardware_class) {
  return absl::StrCat(count, "×",
                      model.empty() ? EnumWord(hardware_class) : model);
}

std::string Inventory(const pb::Cluster& cluster) {
  std::vector<std::string> parts;
  for (const pb::GpuModel& m : cluster.inventory()) {
    parts.push_back(absl::StrCat(m.gpu_count(), "×", m.model(), " (",
                                 EnumWord(m.hardware_class()), ", ",
                                 m.free_gpus(), " free)"));
  }
  return absl::StrJoin(parts, ", ");
}

std::string Prices(const pb::Cluster& cluster) {
  std::vector<std::string> parts;
  for (const pb::GpuModel& m : cluster.inventory()) {
    parts.push_back(absl::StrCat(m.model(), " at ",
                                 FormatFen(m.price_fen_per_gpu_hour()),
                                 " per GPU-hour"));
  }
  return absl::StrJoin(parts, ", ");
}

// What a re-registration waiting for review would change, model by model:
// "H100: other→domestic, 10.00 CNY→900.00 CNY; +4×A100 (other, 20.00 CNY)".
std::string ProposedChanges(const pb::Cluster& cluster) {
  if (cluster.proposed_inventory().empty()) return "-";
  std::vector<std::string> parts;
  for (const pb::GpuModel& p : cluster.proposed_inventory()) {
    const auto it = std::find_if(
        cluster.inventory().begin(), cluster.inventory().end(),
        [&](const pb::GpuModel& m) { return m.model() == p.model(); });
    if (it == cluster.inventory().end()) {
      parts.push_back(absl::StrCat("+", p.gpu_count(), "×", p.model(), " (",
                                   EnumWord(p.hardware_class()), ", ",
                                   FormatFen(p.price_fen_per_gpu_hour()), ")"));
      continue;
    }
    std::vector<std::string> changes;
    if (it->hardware_class() != p.hardware_class()) {
      changes.push_back(absl::StrCat(EnumWord(it->hardware_class()), "→",
                                     EnumWord(p.hardware_class())));
    }
    if (it->price_fen_per_gpu_hour() != p.price_fen_per_gpu_hour()) {
      changes.push_back(absl::StrCat(FormatFen(it->price_fen_per_gpu_hour()),
                                     "→",
                                     FormatFen(p.price_fen_per_gpu_hour())));
    }
    if (it->gpu_count() != p.gpu_count()) {
      changes.push_back(
          absl::StrCat(it->gpu_count(), "→", p.gpu_count(), " GPUs"));
    }
    if (!changes.empty()) {
      parts.push_back(
          absl::StrCat(p.model(), ": ", absl::StrJoin(changes, ", ")));
    }
  }
  for (const pb::GpuModel& m : cluster.inventory()) {
    const bool kept = std::any_of(
        cluster.proposed_inventory().begin(),
        cluster.proposed_inventory().end(),
        [&](const pb::GpuModel& p) { return p.model() == m.model(); });
    if (!kept) parts.push_back(absl::StrCat("−", m.model()));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

const std::vector<Field<pb::Program>>& ProgramFields() {
  using T = pb::Program;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ID", "program_id"}, true, CV_CELL(x.program_id())},
      {{"NAME", "name"}, true, CV_CELL(x.name())},
      {{"ISSUER", "issuer"}, false, CV_CELL(x.issuer())},
      {{"BUDGET", "budget_cny"}, true, CV_CELL(Money{x.budget_fen()})},
      {{"UNISSUED", "unissued_cny"}, true, CV_CELL(Money{x.unissued_fen()})},
      {{"ISSUED", "issued_cny"}, false, CV_CELL(Money{x.issued_fen()})},
      {{"HELD", "held_cny"}, false, CV_CELL(Money{x.held_fen()})},
      {{"CHARGED", "charged_cny"}, false, CV_CELL(Money{x.charged_fen()})},
      {{"RETURNED", "returned_cny"}, false, CV_CELL(Money{x.returned_fen()})},
      {{"DOMESTIC RATIO", "domestic_ratio"},
       false,
       CV_CELL(FormatPercent(x.domestic_ratio_bp()))},
      {{"OTHER RATIO", "other_ratio"},
       false,
       CV_CELL(FormatPercent(x.other_ratio_bp()))},
      {{"SME RATIO", "sme_ratio"},
       false,
       CV_CELL(FormatPercent(x.sme_ratio_bp()))},
      {{"CAP PER ENTERPRISE", "enterprise_cap_cny"},
       false,
       CV_CELL(Money{x.enterprise_cap_fen()})},
      {{"CATEGORIES", "eligible_categories"},
       false,
       CV_CELL(OrDash(absl::StrJoin(x.eligible_categories(), " ")))},
      {{"VALID FROM", "valid_from"}, true, CV_CELL(Day{x.valid_from()})},
      {{"VALID UNTIL", "valid_until"},
       true,
       CV_CELL((Day{x.valid_until(), true}))},
      {{"CREATED", "created_at"}, false, CV_CELL(x.created_at())},
  };
  return *kFields;
}

const std::vector<Field<pb::Enterprise>>& EnterpriseFields() {
  using T = pb::Enterprise;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ID", "enterprise_id"}, true, CV_CELL(x.enterprise_id())},
      {{"NAME", "name"}, true, CV_CELL(x.name())},
      {{"CREDIT CODE", "credit_code"}, true, CV_CELL(x.credit_code())},
      {{"CATEGORY", "category"}, true, CV_CELL(x.category())},
      {{"DISTRICT", "district"}, true, CV_CELL(OrDash(x.district()))},
      {{"SME", "sme"}, true, CV_CELL(YesNo(x.sme()))},
      {{"RELATED PROVIDERS", "related_provider_ids"},
       true,
       CV_CELL(OrDash(absl::StrJoin(x.related_provider_ids(), " ")))},
      {{"CREATED", "created_at"}, false, CV_CELL(x.created_at())},
  };
  return *kFields;
}

const std::vector<Field<pb::Provider>>& ProviderFields() {
  using T = pb::Provider;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ID", "provider_id"}, true, CV_CELL(x.provider_id())},
      {{"NAME", "name"}, true, CV_CELL(x.name())},
      {{"CREDIT CODE", "credit_code"}, true, CV_CELL(x.credit_code())},
      {{"PAYABLE", "payable_cny"}, true, CV_CELL(Money{x.payable_fen()})},
      {{"PAID", "paid_cny"}, true, CV_CELL(Money{x.paid_fen()})},
      {{"CREATED", "created_at"}, false, CV_CELL(x.created_at())},
  };
  return *kFields;
}

const std::vector<Field<pb::Cluster>>& ClusterFields() {
  using T = pb::Cluster;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ID", "cluster_id"}, true, CV_CELL(x.cluster_id())},
      {{"PROVIDER", "provider_id"}, true, CV_CELL(x.provider_id())},
      {{"REGION", "region"}, true, CV_CELL(x.region())},
      {{"STATE", "state"}, true, CV_CELL(EnumWord(x.state()))},
      {{"CONNECTED", "connected"}, true, CV_CELL(YesNo(x.connected()))},
      {{"GPUS", "inventory"}, true, CV_CELL(Inventory(x))},
      {{"PRICES", "prices"}, false, CV_CELL(Prices(x))},
      {{"REVIEW", "proposed_inventory"}, true, CV_CELL(ProposedChanges(x))},
      {{"LAST HEARTBEAT", "last_heartbeat_at"},
       true,
       CV_CELL(x.last_heartbeat_at())},
      {{"REGISTERED", "registered_at"}, false, CV_CELL(x.registered_at())},
  };
  return *kFields;
}

const std::vector<Field<pb::Application>>& ApplicationFields() {
  using T = pb::Application;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ID", "application_id"}, true, CV_CELL(x.application_id())},
      {{"PROGRAM", "program_id"}, true, CV_CELL(x.program_id())},
      {{"ENTERPRISE", "enterprise_id"}, true, CV_CELL(x.enterprise_id())},
      {{"REQUESTED", "requested_cny"}, true, CV_CELL(Money{x.requested_fen()})},
      {{"STATE", "state"}, true, CV_CELL(EnumWord(x.state()))},
      {{"APPROVED", "approved_cny"}, true, CV_CELL(Money{x.approved_fen()})},
      {{"VOUCHER", "voucher_id"}, true, CV_CELL(OrDash(x.voucher_id()))},
      {{"PURPOSE", "purpose"}, true, CV_CELL(x.purpose())},
      {{"DECISION REASON", "decision_reason"},
       false,
       CV_CELL(OrDash(x.decision_reason()))},
      {{"CREATED", "created_at"}, true, CV_CELL(x.created_at())},
      {{"DECIDED", "decided_at"}, false, CV_CELL(x.decided_at())},
  };
  return *kFields;
}

const std::vector<Field<pb::Voucher>>& VoucherFields() {
  using T = pb::Voucher;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ID", "voucher_id"}, true, CV_CELL(x.voucher_id())},
      {{"PROGRAM", "program_id"}, true, CV_CELL(x.program_id())},
      {{"ENTERPRISE", "enterprise_id"}, true, CV_CELL(x.enterprise_id())},
      {{"STATE", "state"}, true, CV_CELL(EnumWord(x.state()))},
      {{"FACE VALUE", "face_value_cny"},
       true,
       CV_CELL(Money{x.face_value_fen()})},
      {{"AVAILABLE", "available_cny"}, true, CV_CELL(Money{x.available_fen()})},
      {{"HELD", "held_cny"}, true, CV_CELL(Money{x.held_fen()})},
      {{"CHARGED", "charged_cny"}, true, CV_CELL(Money{x.charged_fen()})},
      {{"RETURNED", "returned_cny"}, false, CV_CELL(Money{x.returned_fen()})},
      {{"PRIORITY", "priority"}, false, CV_CELL(int64_t{x.priority()})},
      {{"VALID FROM", "valid_from"}, false, CV_CELL(Day{x.valid_from()})},
      {{"VALID UNTIL", "valid_until"},
       true,
       CV_CELL((Day{x.valid_until(), true}))},
      {{"STATE REASON", "state_reason"},
       false,
       CV_CELL(OrDash(x.state_reason()))},
      {{"APPLICATION", "application_id"},
       false,
       CV_CELL(OrDash(x.application_id()))},
      {{"ISSUED", "issued_at"}, false, CV_CELL(x.issued_at())},
      {{"RETIRED", "retired_at"}, false, CV_CELL(x.retired_at())},
  };
  return *kFields;
}

// The workload's exit code once the allocation ended; empty before (0
// would read as a success that has not happened).
Cell ExitCodeCell(const pb::Allocation& a) {
  if (a.state() != pb::ALLOCATION_STATE_ENDED) return std::string();
  return int64_t{a.exit_code()};
}

// Why money is still held: while it runs, for what it may use; after it
// ended, until usage reported late has come in (the scheduler's usage
// grace period), after which the rest goes back to the voucher.
std::string HoldText(const pb::Allocation& a) {
  if (a.held_fen() == 0) return "-";
  if (a.state() != pb::ALLOCATION_STATE_ENDED) {
    return "for the GPU-hours it may still use";
  }
  return "until late usage is in (the usage grace period after it ended); "
         "then the rest returns to the voucher";
}

std::string EndReasonText(const pb::Allocation& a) {
  if (a.end_reason() == pb::END_REASON_UNSPECIFIED) return "-";
  const std::string reason = EnumWord(a.end_reason());
  return a.end_detail().empty() ? reason
                                : absl::StrCat(reason, ": ", a.end_detail());
}

const std::vector<Field<pb::Allocation>>& AllocationFields() {
  using T = pb::Allocation;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ID", "allocation_id"}, true, CV_CELL(x.allocation_id())},
      {{"STATE", "state"}, true, CV_CELL(EnumWord(x.state()))},
      {{"END REASON", "end_reason"}, false, CV_CELL(EndReasonText(x))},
      {{"GPUS", "gpus"},
       true,
       CV_CELL(Gpus(x.gpu_count(),
                    x.gpu_model().empty() ? x.requested_model() : x.gpu_model(),
                    x.requested_class()))},
      {{"HOURS", "max_hours"},
       true,
       CV_CELL(FormatGpuHours(x.max_duration_s() * 1000))},
      {{"CLUSTER", "cluster_id"}, true, CV_CELL(OrDash(x.cluster_id()))},
      {{"ACCESS", "access"}, false, CV_CELL(OrDash(x.access()))},
      {{"PROVIDER", "provider_id"}, false, CV_CELL(OrDash(x.provider_id()))},
      {{"VOUCHER", "voucher_id"}, true, CV_CELL(x.voucher_id())},
      {{"PROGRAM", "program_id"}, false, CV_CELL(x.program_id())},
      {{"PRICE PER GPU-HOUR", "price_per_gpu_hour_cny"},
       false,
       CV_CELL(Money{x.price_fen_per_gpu_hour()})},
      {{"RATIO", "ratio"}, false, CV_CELL(FormatPercent(x.ratio_bp()))},
      {{"HELD", "held_cny"}, true, CV_CELL(Money{x.held_fen()})},
      {{"CHARGED", "charged_cny"}, true, CV_CELL(Money{x.charged_fen()})},
      {{"COST", "cost_cny"}, false, CV_CELL(Money{x.cost_fen()})},
      {{"USED GPU-HOURS", "used_gpu_hours"},
       false,
       CV_CELL(GpuHours{x.used_gpu_ms()})},
      {{"UNSUBSIDISED GPU-HOURS", "unsubsidised_gpu_hours"},
       false,
       CV_CELL(GpuHours{x.unsubsidised_gpu_ms()})},
      {{"WORKLOAD", "workload_command"},
       false,
       CV_CELL(OrDash(absl::StrJoin(x.workload_command(), " ")))},
      {{"EXIT CODE", "exit_code"}, false, CV_CELL(ExitCodeCell(x))},
      {{"IDLE", "idle"}, false, CV_CELL(YesNo(x.idle()))},
      {{"CREATED", "created_at"}, true, CV_CELL(x.created_at())},
      {{"ASSIGNED", "assigned_at"}, false, CV_CELL(x.assigned_at())},
      {{"ENDED", "ended_at"}, false, CV_CELL(x.ended_at())},
      {{"RETIRED", "retired_at"}, false, CV_CELL(x.retired_at())},
      {{"REQUEST ID", "request_id"}, false, CV_CELL(x.request_id())},
      {{"HOLD", "hold"}, false, CV_CELL(HoldText(x))},
  };
  return *kFields;
}

const std::vector<Field<pb::Token>>& TokenFields() {
  using T = pb::Token;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ID", "token_id"}, true, CV_CELL(x.token_id())},
      {{"ROLE", "role"}, true, CV_CELL(EnumWord(x.role()))},
      {{"ENTERPRISE", "enterprise_id"},
       true,
       CV_CELL(OrDash(x.enterprise_id()))},
      {{"CLUSTER", "cluster_id"}, true, CV_CELL(OrDash(x.cluster_id()))},
      {{"PROVIDER", "provider_id"}, true, CV_CELL(OrDash(x.provider_id()))},
      {{"DESCRIPTION", "description"}, true, CV_CELL(OrDash(x.description()))},
      {{"REVOKED", "revoked"}, true, CV_CELL(YesNo(x.revoked()))},
      {{"CREATED", "created_at"}, true, CV_CELL(x.created_at())},
      {{"EXPIRES", "expires_at"}, true, CV_CELL(x.expires_at())},
      {{"LAST USED", "last_used_at"}, true, CV_CELL(x.last_used_at())},
      {{"REVOKED AT", "revoked_at"}, true, CV_CELL(x.revoked_at())},
      {{"REVOKED BY", "revoked_by"}, true, CV_CELL(OrDash(x.revoked_by()))},
  };
  return *kFields;
}

const std::vector<Field<pb::CreateTokenResponse>>& CreatedTokenFields() {
  using T = pb::CreateTokenResponse;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ID", "token_id"}, true, CV_CELL(x.token().token_id())},
      {{"ROLE", "role"}, true, CV_CELL(EnumWord(x.token().role()))},
      {{"ENTERPRISE", "enterprise_id"},
       true,
       CV_CELL(OrDash(x.token().enterprise_id()))},
      {{"CLUSTER", "cluster_id"},
       true,
       CV_CELL(OrDash(x.token().cluster_id()))},
      {{"SECRET", "secret"}, true, CV_CELL(x.secret())},
  };
  return *kFields;
}

const std::vector<Field<pb::Balance>>& BalanceFields() {
  using T = pb::Balance;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ENTERPRISE", "enterprise_id"}, true, CV_CELL(x.enterprise_id())},
      {{"AVAILABLE", "available_cny"}, true, CV_CELL(Money{x.available_fen()})},
      {{"HELD", "held_cny"}, true, CV_CELL(Money{x.held_fen()})},
      {{"CHARGED", "charged_cny"}, true, CV_CELL(Money{x.charged_fen()})},
      {{"ACTIVE VOUCHERS", "active_vouchers"},
       true,
       CV_CELL(int64_t{x.active_vouchers()})},
  };
  return *kFields;
}

const std::vector<Field<pb::Offer>>& OfferFields() {
  using T = pb::Offer;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"GPU MODEL", "gpu_model"}, true, CV_CELL(x.gpu_model())},
      {{"HARDWARE CLASS", "hardware_class"},
       true,
       CV_CELL(EnumWord(x.hardware_class()))},
      {{"PRICE PER GPU-HOUR", "price_per_gpu_hour_cny"},
       true,
       CV_CELL(Money{x.price_fen_per_gpu_hour()})},
      {{"FREE GPUS", "free_gpus"}, true, CV_CELL(int64_t{x.free_gpus()})},
      {{"GPUS", "gpu_count"}, true, CV_CELL(int64_t{x.gpu_count()})},
      {{"CLUSTER", "cluster_id"}, true, CV_CELL(x.cluster_id())},
      {{"REGION", "region"}, true, CV_CELL(OrDash(x.region()))},
      {{"PROVIDER", "provider_name"}, true, CV_CELL(OrDash(x.provider_name()))},
      {{"PROVIDER ID", "provider_id"}, false, CV_CELL(x.provider_id())},
  };
  return *kFields;
}

const std::vector<Field<pb::QuoteResponse>>& QuoteFields() {
  using T = pb::QuoteResponse;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"PRICE PER GPU-HOUR", "price_per_gpu_hour_cny"},
       true,
       CV_CELL(Money{x.price_fen_per_gpu_hour()})},
      {{"HARDWARE CLASS", "hardware_class"},
       true,
       CV_CELL(EnumWord(x.hardware_class()))},
      {{"RATIO", "ratio"}, true, CV_CELL(FormatPercent(x.ratio_bp()))},
      {{"COST", "cost_cny"}, true, CV_CELL(Money{x.amounts().cost_fen()})},
      {{"SUBSIDY", "subsidy_cny"},
       true,
       CV_CELL(Money{x.amounts().subsidy_fen()})},
      {{"SELF-PAY", "self_pay_cny"},
       true,
       CV_CELL(Money{x.amounts().self_pay_fen()})},
      {{"CAPACITY NOW", "capacity_available"},
       true,
       CV_CELL(YesNo(x.capacity_available()))},
      {{"CLUSTER", "cluster_id"}, true, CV_CELL(OrDash(x.cluster_id()))},
      {{"GPU MODEL", "gpu_model"}, true, CV_CELL(OrDash(x.gpu_model()))},
      {{"VOUCHERS", "vouchers"},
       true,
       [](const T& x) -> Cell {
         std::vector<std::string> parts;
         for (const pb::VoucherOption& v : x.vouchers()) {
           parts.push_back(
               absl::StrCat(v.voucher_id(), " (", FormatFen(v.available_fen()),
                            v.sufficient() ? ")" : ", too little)"));
         }
         return OrDash(absl::StrJoin(parts, ", "));
       }},
  };
  return *kFields;
}

const std::vector<Field<pb::ChargedUsage>>& UsageFields() {
  using T = pb::ChargedUsage;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ALLOCATION", "allocation_id"},
       true,
       CV_CELL(x.record().allocation_id())},
      {{"SEQ", "sequence"}, true, CV_CELL(int64_t{x.record().sequence()})},
      {{"START", "start"}, true, CV_CELL(x.record().start())},
      {{"END", "end"}, true, CV_CELL(x.record().end())},
      {{"GPU-HOURS", "gpu_hours"},
       true,
       CV_CELL(GpuHours{x.record().gpu_ms()})},
      {{"COST", "cost_cny"}, true, CV_CELL(Money{x.cost_fen()})},
      {{"SUBSIDY", "subsidy_cny"}, true, CV_CELL(Money{x.subsidy_fen()})},
      {{"UNSUBSIDISED GPU-HOURS", "unsubsidised_gpu_hours"},
       true,
       CV_CELL(GpuHours{x.unsubsidised_gpu_ms()})},
      {{"VOUCHER", "voucher_id"}, true, CV_CELL(x.voucher_id())},
      {{"CLUSTER", "cluster_id"}, true, CV_CELL(x.cluster_id())},
  };
  return *kFields;
}

const std::vector<Field<pb::StatementLine>>& StatementLineFields() {
  using T = pb::StatementLine;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"ALLOCATION", "allocation_id"}, true, CV_CELL(x.allocation_id())},
      {{"VOUCHER", "voucher_id"}, true, CV_CELL(x.voucher_id())},
      {{"PROVIDER", "provider_id"}, true, CV_CELL(x.provider_id())},
      {{"CLUSTER", "cluster_id"}, true, CV_CELL(x.cluster_id())},
      {{"MODEL", "gpu_model"}, true, CV_CELL(x.gpu_model())},
      {{"GPU-HOURS", "gpu_hours"}, true, CV_CELL(GpuHours{x.gpu_ms()})},
      {{"COST", "cost_cny"}, true, CV_CELL(Money{x.amounts().cost_fen()})},
      {{"SUBSIDY", "subsidy_cny"},
       true,
       CV_CELL(Money{x.amounts().subsidy_fen()})},
      {{"SELF-PAY", "self_pay_cny"},
       true,
       CV_CELL(Money{x.amounts().self_pay_fen()})},
  };
  return *kFields;
}

const std::vector<Field<pb::JournalEntry>>& JournalEntryFields() {
  using T = pb::JournalEntry;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"SEQ", "sequence"}, true, CV_CELL(int64_t{x.sequence()})},
      {{"TIME", "time"}, true, CV_CELL(x.time())},
      {{"KIND", "kind"}, true, CV_CELL(EnumWord(x.kind()))},
      {{"AMOUNT", "amount_cny"}, true, CV_CELL(Money{x.amount_fen()})},
      {{"FROM", "credit_account"}, true, CV_CELL(OrDash(x.credit_account()))},
      {{"TO", "debit_account"}, true, CV_CELL(OrDash(x.debit_account()))},
      {{"PROGRAM", "program_id"}, false, CV_CELL(OrDash(x.program_id()))},
      {{"VOUCHER", "voucher_id"}, false, CV_CELL(OrDash(x.voucher_id()))},
      {{"ALLOCATION", "allocation_id"},
       false,
       CV_CELL(OrDash(x.allocation_id()))},
      {{"PROVIDER", "provider_id"}, false, CV_CELL(OrDash(x.provider_id()))},
      {{"USAGE SEQ", "usage_sequence"},
       false,
       CV_CELL(int64_t{x.usage_sequence()})},
      {{"MEMO", "memo"}, true, CV_CELL(OrDash(x.memo()))},
      {{"KEY", "idempotency_key"}, false, CV_CELL(x.idempotency_key())},
      {{"COMMAND", "command_sequence"},
       false,
       CV_CELL(int64_t{x.command_sequence()})},
      {{"PREV HASH", "prev_hash"}, false, CV_CELL(Hex(x.prev_hash()))},
      {{"HASH", "hash"}, false, CV_CELL(Hex(x.hash()))},
  };
  return *kFields;
}

const std::vector<Field<pb::SettleProviderResponse>>& PaymentFields() {
  using T = pb::SettleProviderResponse;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"PROVIDER", "provider_id"}, true, CV_CELL(x.provider().provider_id())},
      {{"NAME", "name"}, true, CV_CELL(x.provider().name())},
      {{"PAID NOW", "amount_cny"},
       true,
       CV_CELL(Money{x.entry().amount_fen()})},
      {{"REFERENCE", "reference"}, true, CV_CELL(x.entry().memo())},
      {{"PAYABLE", "payable_cny"},
       true,
       CV_CELL(Money{x.provider().payable_fen()})},
      {{"PAID", "paid_cny"}, true, CV_CELL(Money{x.provider().paid_fen()})},
      {{"JOURNAL ENTRY", "sequence"},
       true,
       CV_CELL(int64_t{x.entry().sequence()})},
      {{"TIME", "time"}, true, CV_CELL(x.entry().time())},
  };
  return *kFields;
}

const std::vector<Field<pb::VerifyJournalResponse>>& VerifyFields() {
  using T = pb::VerifyJournalResponse;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"OK", "ok"}, true, CV_CELL(YesNo(x.ok()))},
      {{"ENTRIES", "entries"}, true, CV_CELL(int64_t{x.entries()})},
      {{"LAST HASH", "last_hash"}, true, CV_CELL(Hex(x.last_hash()))},
      {{"VIOLATIONS", "violations"},
       true,
       CV_CELL(OrDash(absl::StrJoin(x.violations(), "; ")))},
  };
  return *kFields;
}

View SettlementView(const pb::Settlement& settlement) {
  View view;
  view.message = &settlement;
  view.columns = {
      {"PROVIDER", "provider_id"},         {"PROGRAM", "program_id"},
      {"CLASS", "hardware_class"},         {"RECORDS", "records"},
      {"GPU-HOURS", "gpu_hours"},          {"SUBSIDY", "subsidy_cny"},
      {"PERIOD START", "period_start"},    {"PERIOD END", "period_end"},
      {"JOURNAL SEQ", "journal_sequence"}, {"JOURNAL HASH", "journal_hash"}};
  for (const pb::SettlementLine& line : settlement.lines()) {
    view.rows.push_back(
        {line.provider_id(), line.program_id(), EnumWord(line.hardware_class()),
         line.records(), GpuHours{line.gpu_ms()}, Money{line.subsidy_fen()},
         Day{settlement.period_start()}, Day{settlement.period_end(), true},
         settlement.journal_sequence(), Hex(settlement.journal_hash())});
  }
  view.footer = absl::StrCat(
      "total subsidy ", FormatFen(settlement.total_subsidy_fen()),
      ", computed at journal position ", settlement.journal_sequence());
  return view;
}

// A cap figure, or "no cap" for a program without one.
Cell CapCell(const pb::CapUseLine& line, Cell figure) {
  return line.cap_fen() == 0 ? Cell(std::string("no cap")) : figure;
}

const std::vector<Field<pb::CapUseLine>>& CapUseFields() {
  using T = pb::CapUseLine;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"PROGRAM", "program_id"}, true, CV_CELL(x.program_id())},
      {{"PROGRAM NAME", "program_name"}, false, CV_CELL(x.program_name())},
      {{"ENTERPRISE", "enterprise_id"}, true, CV_CELL(x.enterprise_id())},
      {{"NAME", "enterprise_name"}, true, CV_CELL(x.enterprise_name())},
      {{"CREDIT CODE", "credit_code"},
       true,
       CV_CELL(x.enterprise_credit_code())},
      {{"ISSUED", "issued_cny"}, true, CV_CELL(Money{x.issued_fen()})},
      {{"CAP", "cap_cny"}, true, CV_CELL(CapCell(x, Money{x.cap_fen()}))},
      {{"REMAINING", "remaining_cny"},
       true,
       CV_CELL(CapCell(x, Money{x.remaining_fen()}))},
      {{"USED", "used_percent"},
       true,
       CV_CELL(CapCell(x, FormatPercent(x.used_bp())))},
  };
  return *kFields;
}

const std::vector<Field<pb::AuditEvent>>& AuditFields() {
  using T = pb::AuditEvent;
  static const auto* const kFields = new std::vector<Field<T>>{
      {{"SEQ", "sequence"}, true, CV_CELL(x.sequence())},
      {{"TIME", "time"}, true, CV_CELL(x.time())},
      {{"ROLE", "role"}, true, CV_CELL(EnumWord(x.principal().role()))},
      {{"TOKEN", "token_id"}, true, CV_CELL(OrDash(x.principal().token_id()))},
      {{"HOLDER", "token_description"},
       true,
       CV_CELL(OrDash(x.token_description()))},
      {{"PEER", "peer"}, true, CV_CELL(OrDash(x.principal().peer()))},
      {{"METHOD", "method"}, true, CV_CELL(x.method())},
      {{"OBJECT", "object_id"}, true, CV_CELL(OrDash(x.object_id()))},
      {{"REQUEST ID", "request_id"}, true, CV_CELL(OrDash(x.request_id()))},
  };
  return *kFields;
}

namespace {

// The columns of a usage report's group, and its cells in a row.
struct GroupColumns {
  std::vector<Column> columns;
  std::vector<Cell> (*cells)(const pb::UsageReportRow& row);
};

GroupColumns ColumnsOf(pb::ReportGroup group) {
  switch (group) {
    case pb::REPORT_GROUP_ENTERPRISE:
      return {{{"ENTERPRISE", "enterprise_id"},
               {"NAME", "enterprise_name"},
               {"CREDIT CODE", "enterprise_credit_code"}},
              [](const pb::UsageReportRow& r) -> std::vector<Cell> {
                return {r.enterprise_id(), r.enterprise_name(),
                        r.enterprise_credit_code()};
              }};
    case pb::REPORT_GROUP_PROVIDER:
      return {{{"PROVIDER", "provider_id"},
               {"PROVIDER NAME", "provider_name"},
               {"PROVIDER CREDIT CODE", "provider_credit_code"}},
              [](const pb::UsageReportRow& r) -> std::vector<Cell> {
                return {r.provider_id(), r.provider_name(),
                        r.provider_credit_code()};
              }};
    case pb::REPORT_GROUP_PROGRAM:
      return {{{"PROGRAM", "program_id"}, {"PROGRAM NAME", "program_name"}},
              [](const pb::UsageReportRow& r) -> std::vector<Cell> {
                return {r.program_id(), r.program_name()};
              }};
    case pb::REPORT_GROUP_HARDWARE_CLASS:
      return {{{"CLASS", "hardware_class"}},
              [](const pb::UsageReportRow& r) -> std::vector<Cell> {
                return {EnumWord(r.hardware_class())};
              }};
    case pb::REPORT_GROUP_SME:
      return {{{"SME", "sme"}},
              [](const pb::UsageReportRow& r) -> std::vector<Cell> {
                return {YesNo(r.sme())};
              }};
    case pb::REPORT_GROUP_MONTH:
      return {{{"MONTH", "month"}},
              [](const pb::UsageReportRow& r) -> std::vector<Cell> {
                return {r.month()};
              }};
    default:  // a group this voucherctl does not know: no column
      return {{}, [](const pb::UsageReportRow&) -> std::vector<Cell> {
                return {};
              }};
  }
}

// The Asia/Shanghai day of a period's start, or of its (exclusive) end's
// last instant: the last day included.
std::string PeriodDay(const google::protobuf::Timestamp& ts, bool end) {
  absl::Time t =
      absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
  if (end) t -= absl::Nanoseconds(1);
  return absl::FormatCivilTime(absl::ToCivilDay(t, ShanghaiZone()));
}

}  // namespace

View UsageReportView(const pb::UsageReport& report, bool total_row) {
  View view;
  view.message = &report;
  std::vector<GroupColumns> groups;
  for (const int g : report.group_by()) {
    groups.push_back(ColumnsOf(static_cast<pb::ReportGroup>(g)));
    for (const Column& c : groups.back().columns) view.columns.push_back(c);
  }
  for (const Column& c : std::vector<Column>{{"RECORDS", "records"},
                                             {"GPU-HOURS", "gpu_hours"},
                                             {"COST", "cost_cny"},
                                             {"SUBSIDY", "subsidy_cny"},
                                             {"SELF-PAY", "self_pay_cny"},
                                             {"FROM", "period_from"},
                                             {"TO", "period_to"}}) {
    view.columns.push_back(c);
  }
  const std::string from = PeriodDay(report.period_start(), false);
  const std::string to = PeriodDay(report.period_end(), true);
  auto add = [&](const pb::UsageReportRow& row, bool total) {
    std::vector<Cell>& cells = view.rows.emplace_back();
    for (const GroupColumns& g : groups) {
      std::vector<Cell> values = g.cells(row);
      for (Cell& v : values) cells.push_back(total ? Cell(std::string()) : v);
    }
    if (total && !cells.empty()) cells[0] = std::string("TOTAL");
    cells.insert(cells.end(), {row.records(), GpuHours{row.gpu_ms()},
                               Money{row.amounts().cost_fen()},
                               Money{row.amounts().subsidy_fen()},
                               Money{row.amounts().self_pay_fen()}, from, to});
  };
  for (const pb::UsageReportRow& row : report.rows()) add(row, false);
  if (total_row || groups.empty()) add(report.total(), !groups.empty());
  view.footer = absl::StrCat("usage ending ", from, " to ", to,
                             " (inclusive), computed at journal position ",
                             report.journal_sequence());
  return view;
}

#undef CV_CELL

}  // namespace computevoucher::client
