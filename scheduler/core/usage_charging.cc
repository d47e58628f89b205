#include "scheduler/core/usage_charging.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "scheduler/core/limits.h"
#include "scheduler/core/pricing.h"

namespace computevoucher::core {

absl::Time BillableEnd(const pb::Allocation& a, absl::Time now) {
  const absl::Time assigned = *FromProto("assigned_at", a.assigned_at());
  absl::Time end = std::min(assigned + absl::Seconds(a.max_duration_s()), now);
  if (a.state() == pb::ALLOCATION_STATE_ENDED)
    end = std::min(end, *FromProto("ended_at", a.ended_at()));
  return end;
}

absl::StatusOr<int64_t> MaxChargeOf(const pb::Allocation& a, absl::Time now) {
  if (!a.has_assigned_at()) return 0;
  ASSIGN_OR_RETURN(const absl::Time assigned,
                   FromProto("assigned_at", a.assigned_at()));
  const int64_t life_ms = std::max<int64_t>(
      0, absl::ToInt64Milliseconds(BillableEnd(a, now) - assigned));
  ASSIGN_OR_RETURN(const pb::Amounts amounts,
                   AmountsFor(life_ms * a.gpu_count(),
                              a.price_fen_per_gpu_hour(), a.ratio_bp()));
  return amounts.subsidy_fen();
}

absl::StatusOr<int64_t> UsageCharging::MaxChargeFen(
    const std::string& allocation_id) const {
  const AllocationRec* rec = placement_.Find(allocation_id);
  if (rec == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("allocation ", allocation_id, " not found"));
  }
  return MaxChargeOf(rec->allocation, books_.now());
}

absl::StatusOr<pb::UsageAck> UsageCharging::ChargeRecord(
    const pb::Principal& p, const pb::UsageRecord& u, bool* consumed) {
  pb::UsageAck ack;
  ack.set_allocation_id(u.allocation_id());
  ack.set_sequence(u.sequence());
  auto reject = [&ack](pb::UsageResult result, std::string reason) {
    ack.set_result(result);
    ack.set_reason(std::move(reason));
    return ack;
  };
  AllocationRec* rec = placement_.Find(u.allocation_id());
  // The same answer whether the allocation is unknown, another cluster's or
  // retired (Placement::RetireDue), so that nothing leaks.
  if (rec == nullptr || rec->allocation.cluster_id() != p.cluster_id() ||
      p.cluster_id().empty()) {
    return reject(
        pb::USAGE_RESULT_REJECTED,
        absl::StrCat("allocation_id: ", Quoted(u.allocation_id()),
                     " is not an allocation of cluster ", p.cluster_id(),
                     " (or it ended and was retired: usage reported that "
                     "late is refused)"));
  }
  pb::Allocation& a = rec->allocation;
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
  const Verdict verdict = Check(*rec, u);
  if (verdict.result == pb::USAGE_RESULT_RETRY) {
    return reject(pb::USAGE_RESULT_RETRY, verdict.reason);
  }
  if (verdict.result == pb::USAGE_RESULT_REJECTED) {
    // The record is the next in sequence: refusing it uses up its sequence
    // number, so that one bad record cannot block the ones after it (the
    // agent drops a refused record).
    a.set_last_sequence(u.sequence());
    *consumed = true;
    ack.set_stop(a.state() == pb::ALLOCATION_STATE_ENDED);
    return reject(pb::USAGE_RESULT_REJECTED, verdict.reason);
  }
  return Charge(*rec, u, verdict);
}

UsageCharging::Verdict UsageCharging::Check(const AllocationRec& rec,
                                            const pb::UsageRecord& u) const {
  const pb::Allocation& a = rec.allocation;
  auto verdict = [](pb::UsageResult result, std::string reason) {
    Verdict v;
    v.result = result;
    v.reason = std::move(reason);
    return v;
  };
  auto refuse = [&verdict](std::string reason) {
    return verdict(pb::USAGE_RESULT_REJECTED, std::move(reason));
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
  if (*end > books_.now() + kUsageClockSkew) {
    // Possibly only the agent's clock running ahead: decided on a resend.
    return verdict(pb::USAGE_RESULT_RETRY,
                   absl::StrCat("end: ", FormatInstant(*end, true),
                                " is in the future (scheduler time ",
                                FormatInstant(books_.now(), true), ")"));
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
  Verdict accepted;
  accepted.start = *start;
  accepted.end = *end;
  return accepted;
}

absl::StatusOr<pb::UsageAck> UsageCharging::Charge(AllocationRec& rec,
                                                   const pb::UsageRecord& u,
                                                   const Verdict& verdict) {
  pb::Allocation& a = rec.allocation;
  VoucherRec& voucher = vouchers_.voucher(a.voucher_id());
  // Only the part inside the billable life can be subsidised, and nothing
  // once the hold has been released. What ran after the end (until the
  // agent learnt of it) is recorded, never subsidised.
  const absl::Time life_end = BillableEnd(rec.allocation, books_.now());
  const int64_t billable_ms =
      std::max<int64_t>(
          0, absl::ToInt64Milliseconds(std::min(verdict.end, life_end) -
                                       verdict.start)) *
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
    RETURN_IF_ERROR(books_.Post(std::move(entry), &voucher.voucher, &a));
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
  *row.mutable_accepted_at() = ToProto(books_.now());
  rec.subsidised_gpu_ms = new_subsidised;
  rec.last_usage_end = verdict.end;
  a.set_last_sequence(u.sequence());
  a.set_used_gpu_ms(a.used_gpu_ms() + u.gpu_ms());
  a.set_unsubsidised_gpu_ms(a.unsubsidised_gpu_ms() + u.gpu_ms() -
                            subsidisable);
  pb::UsageAck ack;
  ack.set_allocation_id(u.allocation_id());
  ack.set_sequence(u.sequence());
  ack.set_result(pb::USAGE_RESULT_ACCEPTED);
  ack.set_subsidy_fen(std::max<int64_t>(0, charge));
  if (IsActive(a) && a.held_fen() == 0) {
    // A hold covers the whole duration, so it runs out either at the end of
    // the duration or early only if a correction shrank it.
    const absl::Time assigned = *FromProto("assigned_at", a.assigned_at());
    const bool at_deadline =
        books_.now() >= assigned + absl::Seconds(a.max_duration_s());
    RETURN_IF_ERROR(placement_.EndAllocation(
        rec, at_deadline ? pb::END_REASON_DURATION_REACHED
                         : pb::END_REASON_VOUCHER_EXHAUSTED));
    RETURN_IF_ERROR(placement_.ProcessQueue());
  }
  vouchers_.UpdateExhausted(voucher);
  ack.set_stop(a.state() == pb::ALLOCATION_STATE_ENDED);
  return ack;
}

absl::StatusOr<Reply> UsageCharging::ReportUsage(
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
  return Reply{Share(std::move(response)), changed};
}

}  // namespace computevoucher::core
