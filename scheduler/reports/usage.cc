#include "scheduler/reports/usage.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/enum_word.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "scheduler/reports/allocations.h"
#include "scheduler/reports/checked_sum.h"
#include "scheduler/reports/paging.h"

namespace computevoucher::reports {
namespace {

using Allocations = absl::flat_hash_map<std::string, pb::Allocation>;

// Allocations retired before this can have no usage ending at or after
// `from`: a record is accepted before its allocation retires, and ends at
// most kUsageClockSkew after it is accepted.
absl::Time RetiredFrom(absl::Time from) { return from - core::kUsageClockSkew; }

// The enterprise's allocations that can have usage ending at or after
// `from` (retired ones included), each with the facts usage rows leave out.
absl::StatusOr<Allocations> AllocationsOf(const Sources& sources,
                                          absl::string_view enterprise,
                                          absl::Time from) {
  Allocations out;
  AllocationFilter filter;
  filter.enterprise_id = std::string(enterprise);
  filter.retired_from = RetiredFrom(from);
  RETURN_IF_ERROR(ForEachAllocation(
      sources, filter,
      [&out](const pb::Allocation& a) { out[a.allocation_id()] = a; }));
  return out;
}

// A query for the usage of the allocations `allocations` (a map keyed by
// allocation id) names, skipping, once given a period, rows accepted too
// early to end in it.
template <typename Map>
store::UsageQuery QueryFor(const Map& allocations) {
  store::UsageQuery query;
  query.end_after_accept = core::kUsageClockSkew;
  query.allocation_ids.emplace();
  for (const auto& [id, a] : allocations) query.allocation_ids->insert(id);
  return query;
}

void FillFromAllocation(const pb::Allocation& a, pb::ChargedUsage* u) {
  u->set_enterprise_id(a.enterprise_id());
  u->set_voucher_id(a.voucher_id());
  u->set_program_id(a.program_id());
  u->set_provider_id(a.provider_id());
  u->set_cluster_id(a.cluster_id());
  u->set_hardware_class(a.hardware_class());
}

// Adds usage of `a` (a record, or an archived day's sum) to its statement
// line.
void AddToLine(const pb::Allocation& a, int64_t gpu_ms, int64_t cost_fen,
               int64_t subsidy_fen, CheckedSum& sum, pb::StatementLine& line) {
  line.set_allocation_id(a.allocation_id());
  line.set_voucher_id(a.voucher_id());
  line.set_provider_id(a.provider_id());
  line.set_cluster_id(a.cluster_id());
  line.set_gpu_model(a.gpu_model());
  line.set_gpu_ms(sum.Add("gpu_ms", line.gpu_ms(), gpu_ms));
  pb::Amounts* amounts = line.mutable_amounts();
  amounts->set_cost_fen(sum.Add("cost_fen", amounts->cost_fen(), cost_fen));
  amounts->set_subsidy_fen(
      sum.Add("subsidy_fen", amounts->subsidy_fen(), subsidy_fen));
}

// The instant before which archived records end (they end at most the
// clock skew after the last was accepted); InfinitePast() when nothing was
// archived.
absl::StatusOr<absl::Time> ArchivedUntil(const Sources& sources) {
  if (sources.archived == nullptr) return absl::InfinitePast();
  ASSIGN_OR_RETURN(const std::optional<store::Horizon> horizon,
                   sources.archived->ReadHorizon());
  if (!horizon || horizon->end.usage == 0) return absl::InfinitePast();
  return absl::FromUnixNanos(horizon->end.accepted_ns) + core::kUsageClockSkew +
         absl::Nanoseconds(1);
}

// Usage of one allocation ending in a period: one record, or the sum of
// an archived day's records (`end` is then the day's first instant).
struct UsagePiece {
  const std::string& allocation_id;
  absl::Time end;
  int64_t records;
  int64_t gpu_ms;
  int64_t unsubsidised_gpu_ms;
  int64_t cost_fen;
  int64_t subsidy_fen;
};

// Calls `fn` with the usage of `query`'s allocations ending in `period`
// (query.period_*): the archived days', then the stored records'. Archived
// records end before the last one was accepted plus the clock skew, and
// are kept per Asia/Shanghai day, so a period reaching before that must
// start and end on days. Returns the journal position of the records.
absl::StatusOr<store::Head> ScanPeriod(
    const Sources& sources, store::UsageQuery query, const Window& period,
    const std::function<void(const UsagePiece&)>& fn) {
  query.period_start = period.from;
  query.period_end = period.until;
  ASSIGN_OR_RETURN(const absl::Time archived_until, ArchivedUntil(sources));
  if (period.from < archived_until) {
    const std::pair<const char*, absl::Time> bounds[] = {
        {"period_start", period.from}, {"period_end", period.until}};
    for (const auto& [field, t] : bounds) {
      if (t < archived_until &&
          t != StartOfDay(absl::ToCivilDay(t, ShanghaiZone()))) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ": ", FormatInstant(t),
            " falls in archived history (usage ending before ",
            FormatInstant(archived_until),
            " is kept per day): start and end the period at 00:00 +08:00"));
      }
    }
    RETURN_IF_ERROR(
        sources.archived->ScanUsageDays(query, [&](const store::UsageDay& d) {
          fn(UsagePiece{d.allocation_id, d.day, d.records, d.gpu_ms,
                        d.unsubsidised_gpu_ms, d.cost_fen, d.subsidy_fen});
        }));
  }
  return sources.usage->ScanUsage(query, [&](const pb::ChargedUsage& u) {
    const pb::UsageRecord& r = u.record();
    fn(UsagePiece{r.allocation_id(),
                  absl::FromUnixSeconds(r.end().seconds()) +
                      absl::Nanoseconds(r.end().nanos()),
                  1, r.gpu_ms(), u.unsubsidised_gpu_ms(), u.cost_fen(),
                  u.subsidy_fen()});
  });
}

// Who is paid for an allocation's usage.
struct Payee {
  std::string provider_id;
  std::string program_id;
  pb::HardwareClass hardware_class;
};

// The placed allocations (of `provider_id`, or all when empty) that can
// have usage ending at or after `from`, retired ones included, with who is
// paid for them.
absl::StatusOr<absl::flat_hash_map<std::string, Payee>> PayeesOf(
    const Sources& sources, const std::string& provider_id, absl::Time from) {
  bool known = provider_id.empty();
  if (!known) {
    RETURN_IF_ERROR(sources.read_state([&](const core::StateMachine& s) {
      known = s.providers().contains(provider_id);
    }));
  }
  if (!known) {
    return absl::NotFoundError(
        absl::StrCat("provider_id: provider ", provider_id, " not found"));
  }
  absl::flat_hash_map<std::string, Payee> out;
  AllocationFilter filter;
  filter.provider_id = provider_id;
  filter.retired_from = RetiredFrom(from);
  RETURN_IF_ERROR(
      ForEachAllocation(sources, filter, [&out](const pb::Allocation& a) {
        if (a.provider_id().empty()) return;  // never placed, never used
        out[a.allocation_id()] =
            Payee{a.provider_id(), a.program_id(), a.hardware_class()};
      }));
  return out;
}

// What a usage report row is keyed by, besides its groups' values: who
// used it and on what terms, per allocation.
struct Used {
  std::string enterprise_id;
  std::string provider_id;
  std::string program_id;
  pb::HardwareClass hardware_class;
};

// The names a report shows next to ids, and who is an SME.
struct Names {
  absl::flat_hash_map<std::string, pb::Enterprise> enterprises;
  absl::flat_hash_map<std::string, std::pair<std::string, std::string>>
      providers;  // -> name, credit code
  absl::flat_hash_map<std::string, std::string> programs;  // -> name
};

absl::StatusOr<Names> ReadNames(const Sources& sources) {
  Names names;
  RETURN_IF_ERROR(sources.read_state([&](const core::StateMachine& s) {
    names = Names();  // read_state may run this more than once
    for (const auto& [id, e] : s.enterprises()) names.enterprises[id] = e;
    for (const auto& [id, p] : s.providers()) {
      names.providers[id] = {p.name(), p.credit_code()};
    }
    for (const auto& [id, p] : s.programs()) names.programs[id] = p.name();
  }));
  return names;
}

// The groups of `request`, checked: known, each at most once.
absl::StatusOr<std::vector<pb::ReportGroup>> GroupsOf(
    const pb::UsageReportRequest& request) {
  std::vector<pb::ReportGroup> groups;
  for (const int g : request.group_by()) {
    if (!pb::ReportGroup_IsValid(g) || g == pb::REPORT_GROUP_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_by: ", g,
                       " is not a group (enterprise, provider, program, "
                       "hardware class, SME, month)"));
    }
    if (std::find(groups.begin(), groups.end(), g) != groups.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_by: ", EnumWord(static_cast<pb::ReportGroup>(g)),
                       " is given twice"));
    }
    groups.push_back(static_cast<pb::ReportGroup>(g));
  }
  return groups;
}

// Sets `row`'s fields of `group` for usage of `used` ending at `end`, and
// adds that group's value to `key`.
void SetGroup(pb::ReportGroup group, const Used& used, absl::Time end,
              const Names& names, pb::UsageReportRow& row, std::string& key) {
  switch (group) {
    case pb::REPORT_GROUP_ENTERPRISE: {
      row.set_enterprise_id(used.enterprise_id);
      auto it = names.enterprises.find(used.enterprise_id);
      if (it != names.enterprises.end()) {
        row.set_enterprise_name(it->second.name());
        row.set_enterprise_credit_code(it->second.credit_code());
      }
      absl::StrAppend(&key, used.enterprise_id, "|");
      break;
    }
    case pb::REPORT_GROUP_PROVIDER: {
      row.set_provider_id(used.provider_id);
      auto it = names.providers.find(used.provider_id);
      if (it != names.providers.end()) {
        row.set_provider_name(it->second.first);
        row.set_provider_credit_code(it->second.second);
      }
      absl::StrAppend(&key, used.provider_id, "|");
      break;
    }
    case pb::REPORT_GROUP_PROGRAM: {
      row.set_program_id(used.program_id);
      auto it = names.programs.find(used.program_id);
      if (it != names.programs.end()) row.set_program_name(it->second);
      absl::StrAppend(&key, used.program_id, "|");
      break;
    }
    case pb::REPORT_GROUP_HARDWARE_CLASS:
      row.set_hardware_class(used.hardware_class);
      absl::StrAppend(&key, static_cast<int>(used.hardware_class), "|");
      break;
    case pb::REPORT_GROUP_SME: {
      auto it = names.enterprises.find(used.enterprise_id);
      row.set_sme(it != names.enterprises.end() && it->second.sme());
      absl::StrAppend(&key, row.sme() ? 1 : 0, "|");
      break;
    }
    case pb::REPORT_GROUP_MONTH: {
      const absl::CivilMonth month(absl::ToCivilDay(end, ShanghaiZone()));
      row.set_month(absl::FormatCivilTime(month));
      absl::StrAppend(&key, row.month(), "|");
      break;
    }
    default:
      break;
  }
}

// Adds a piece of usage to `row`.
void AddToRow(const UsagePiece& piece, CheckedSum& sum,
              pb::UsageReportRow& row) {
  row.set_records(sum.Add("records", row.records(), piece.records));
  row.set_gpu_ms(sum.Add("gpu_ms", row.gpu_ms(), piece.gpu_ms));
  pb::Amounts* a = row.mutable_amounts();
  a->set_cost_fen(sum.Add("cost_fen", a->cost_fen(), piece.cost_fen));
  a->set_subsidy_fen(
      sum.Add("subsidy_fen", a->subsidy_fen(), piece.subsidy_fen));
  a->set_self_pay_fen(sum.Add("self_pay_fen", a->self_pay_fen(),
                              piece.cost_fen - piece.subsidy_fen));
}

// The placed allocations `request` selects that can have usage ending at
// or after `from`, retired ones included.
absl::StatusOr<absl::flat_hash_map<std::string, Used>> UsedBy(
    const Sources& sources, const pb::UsageReportRequest& request,
    absl::Time from) {
  RETURN_IF_ERROR(CheckIdFilter("program_id", request.program_id()));
  RETURN_IF_ERROR(CheckIdFilter("enterprise_id", request.enterprise_id()));
  RETURN_IF_ERROR(CheckIdFilter("provider_id", request.provider_id()));
  AllocationFilter filter;
  filter.enterprise_id = request.enterprise_id();
  filter.provider_id = request.provider_id();
  filter.retired_from = RetiredFrom(from);
  absl::flat_hash_map<std::string, Used> out;
  RETURN_IF_ERROR(
      ForEachAllocation(sources, filter, [&](const pb::Allocation& a) {
        if (a.provider_id().empty()) return;  // never placed, never used
        if (!request.program_id().empty() &&
            a.program_id() != request.program_id())
          return;
        out[a.allocation_id()] = Used{a.enterprise_id(), a.provider_id(),
                                      a.program_id(), a.hardware_class()};
      }));
  return out;
}

}  // namespace

absl::StatusOr<pb::UsageReport> UsageReport(
    const Sources& sources, const pb::UsageReportRequest& request) {
  ASSIGN_OR_RETURN(const Window period, RequiredPeriod(request.period_start(),
                                                       request.period_end()));
  ASSIGN_OR_RETURN(const std::vector<pb::ReportGroup> groups,
                   GroupsOf(request));
  ASSIGN_OR_RETURN(const auto used, UsedBy(sources, request, period.from));
  ASSIGN_OR_RETURN(const Names names, ReadNames(sources));
  CheckedSum sum;
  pb::UsageReport out;
  std::map<std::string, pb::UsageReportRow> rows;
  ASSIGN_OR_RETURN(
      const store::Head head,
      ScanPeriod(sources, QueryFor(used), period, [&](const UsagePiece& piece) {
        AddToRow(piece, sum, *out.mutable_total());
        if (groups.empty()) return;  // the total alone
        const Used& u = used.at(piece.allocation_id);
        pb::UsageReportRow row;
        std::string key;
        for (pb::ReportGroup g : groups)
          SetGroup(g, u, piece.end, names, row, key);
        auto [it, added] = rows.try_emplace(key, std::move(row));
        AddToRow(piece, sum, it->second);
      }));
  RETURN_IF_ERROR(sum.status());
  *out.mutable_period_start() = request.period_start();
  *out.mutable_period_end() = request.period_end();
  for (pb::ReportGroup g : groups) out.add_group_by(g);
  for (auto& [key, row] : rows) *out.add_rows() = std::move(row);
  out.set_journal_sequence(head.journal_sequence);
  return out;
}

absl::StatusOr<pb::ListUsageResponse> UsagePage(
    const Sources& sources, absl::string_view enterprise_id,
    const pb::ListUsageRequest& request) {
  if (!request.allocation_id().empty()) {
    RETURN_IF_ERROR(CheckIdRef("allocation_id", request.allocation_id()));
  }
  ASSIGN_OR_RETURN(const absl::Time from,
                   OptionalBound("period_start", request.period_start(),
                                 absl::InfinitePast()));
  ASSIGN_OR_RETURN(const absl::Time until,
                   OptionalBound("period_end", request.period_end(),
                                 absl::InfiniteFuture()));
  ASSIGN_OR_RETURN(const int64_t size, PageSize(request.page()));
  ASSIGN_OR_RETURN(const int64_t after, NumericPageToken(request.page()));
  Allocations mine;
  if (request.allocation_id().empty()) {
    ASSIGN_OR_RETURN(mine, AllocationsOf(sources, enterprise_id, from));
  } else {
    // Missing or another enterprise's: one answer.
    AllocationFilter theirs;
    theirs.enterprise_id = std::string(enterprise_id);
    ASSIGN_OR_RETURN(pb::Allocation one,
                     FindAllocation(sources, request.allocation_id(), theirs));
    mine[request.allocation_id()] = std::move(one);
  }
  store::UsageQuery query = QueryFor(mine);
  query.period_start = from;
  query.period_end = until;
  query.after = after;
  query.limit = static_cast<int>(size) + 1;
  ASSIGN_OR_RETURN(std::vector<store::UsageRow> rows,
                   sources.usage->ReadUsage(query));
  pb::ListUsageResponse out;
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(size); ++i) {
    pb::ChargedUsage* u = out.add_usage();
    *u = std::move(rows[i].usage);
    FillFromAllocation(mine.at(u->record().allocation_id()), u);
  }
  if (rows.size() > static_cast<size_t>(size)) {
    out.set_next_page_token(absl::StrCat(rows[size - 1].position));
  }
  ASSIGN_OR_RETURN(const absl::Time archived_until, ArchivedUntil(sources));
  if (from < archived_until) {
    *out.mutable_archived_until() = ToProto(archived_until);
  }
  return out;
}

absl::StatusOr<pb::Statement> Statement(
    const Sources& sources, absl::string_view enterprise_id,
    const pb::GetStatementRequest& request) {
  ASSIGN_OR_RETURN(const Window period, RequiredPeriod(request.period_start(),
                                                       request.period_end()));
  ASSIGN_OR_RETURN(const Allocations mine,
                   AllocationsOf(sources, enterprise_id, period.from));
  CheckedSum sum;
  std::map<std::string, pb::StatementLine> lines;
  RETURN_IF_ERROR(
      ScanPeriod(sources, QueryFor(mine), period, [&](const UsagePiece& piece) {
        const pb::Allocation& a = mine.at(piece.allocation_id);
        AddToLine(a, piece.gpu_ms, piece.cost_fen, piece.subsidy_fen, sum,
                  lines[a.allocation_id()]);
      }).status());
  pb::Statement out;
  out.set_enterprise_id(std::string(enterprise_id));
  *out.mutable_period_start() = request.period_start();
  *out.mutable_period_end() = request.period_end();
  pb::Amounts* total = out.mutable_total();
  for (auto& [id, line] : lines) {
    pb::Amounts* amounts = line.mutable_amounts();
    amounts->set_self_pay_fen(amounts->cost_fen() - amounts->subsidy_fen());
    total->set_cost_fen(
        sum.Add("total.cost_fen", total->cost_fen(), amounts->cost_fen()));
    total->set_subsidy_fen(sum.Add("total.subsidy_fen", total->subsidy_fen(),
                                   amounts->subsidy_fen()));
    total->set_self_pay_fen(sum.Add("total.self_pay_fen", total->self_pay_fen(),
                                    amounts->self_pay_fen()));
    *out.add_lines() = std::move(line);
  }
  RETURN_IF_ERROR(sum.status());
  return out;
}

absl::StatusOr<pb::Settlement> Settlement(
    const Sources& sources, const pb::GetSettlementRequest& request) {
  ASSIGN_OR_RETURN(const Window period, RequiredPeriod(request.period_start(),
                                                       request.period_end()));
  if (!request.provider_id().empty()) {
    RETURN_IF_ERROR(CheckIdRef("provider_id", request.provider_id()));
  }
  ASSIGN_OR_RETURN(const auto payees,
                   PayeesOf(sources, request.provider_id(), period.from));
  CheckedSum sum;
  std::map<std::tuple<std::string, std::string, int>, pb::SettlementLine> lines;
  // Adds an allocation's usage (a record, or an archived day's sum).
  auto add = [&](const std::string& allocation_id, int64_t records,
                 int64_t subsidised_gpu_ms, int64_t subsidy_fen) {
    const Payee& payee = payees.at(allocation_id);
    pb::SettlementLine& line = lines[{payee.provider_id, payee.program_id,
                                      static_cast<int>(payee.hardware_class)}];
    line.set_provider_id(payee.provider_id);
    line.set_program_id(payee.program_id);
    line.set_hardware_class(payee.hardware_class);
    line.set_records(sum.Add("records", line.records(), records));
    line.set_gpu_ms(sum.Add("gpu_ms", line.gpu_ms(), subsidised_gpu_ms));
    line.set_subsidy_fen(
        sum.Add("subsidy_fen", line.subsidy_fen(), subsidy_fen));
  };
  ASSIGN_OR_RETURN(
      const store::Head head,
      ScanPeriod(sources, QueryFor(payees), period,
                 [&](const UsagePiece& piece) {
                   add(piece.allocation_id, piece.records,
                       piece.gpu_ms - piece.unsubsidised_gpu_ms,
                       piece.subsidy_fen);
                 }));
  pb::Settlement out;
  *out.mutable_period_start() = request.period_start();
  *out.mutable_period_end() = request.period_end();
  int64_t total = 0;
  for (auto& [key, line] : lines) {
    total = sum.Add("total_subsidy_fen", total, line.subsidy_fen());
    *out.add_lines() = std::move(line);
  }
  RETURN_IF_ERROR(sum.status());
  out.set_total_subsidy_fen(total);
  out.set_journal_sequence(head.journal_sequence);
  out.set_journal_hash(head.journal_hash);
  return out;
}

absl::StatusOr<pb::Balance> Balance(const core::StateMachine& state,
                                    absl::string_view enterprise_id) {
  CheckedSum sum;
  pb::Balance out;
  out.set_enterprise_id(std::string(enterprise_id));
  for (const auto& [id, rec] : state.vouchers()) {
    if (rec.voucher.enterprise_id() != enterprise_id) continue;
    const pb::Voucher v = state.VoucherViewOf(rec);
    if (v.state() == pb::VOUCHER_STATE_ACTIVE) {
      out.set_available_fen(
          sum.Add("available_fen", out.available_fen(), v.available_fen()));
      out.set_active_vouchers(out.active_vouchers() + 1);
    }
    out.set_held_fen(sum.Add("held_fen", out.held_fen(), v.held_fen()));
    out.set_charged_fen(
        sum.Add("charged_fen", out.charged_fen(), v.charged_fen()));
  }
  // Retired vouchers hold nothing, but what they paid still counts.
  for (const auto& [key, retired] : state.retired_vouchers()) {
    if (std::get<1>(key) != enterprise_id) continue;
    out.set_charged_fen(
        sum.Add("charged_fen", out.charged_fen(), retired.charged_fen));
  }
  RETURN_IF_ERROR(sum.status());
  return out;
}

}  // namespace computevoucher::reports
