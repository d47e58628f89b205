#include "scheduler/reports/office.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "scheduler/reports/checked_sum.h"
#include "scheduler/reports/paging.h"

namespace computevoucher::reports {
namespace {

// Most days ahead ListExpiringVouchers looks (ten years).
constexpr int32_t kMaxWithinDays = 3660;

// The line of `program` and `enterprise_id`, its names and cap set.
pb::CapUseLine NewCapLine(const core::StateMachine& state,
                          const pb::Program& program,
                          const std::string& enterprise_id) {
  pb::CapUseLine line;
  line.set_program_id(program.program_id());
  line.set_program_name(program.name());
  line.set_enterprise_id(enterprise_id);
  auto e = state.enterprises().find(enterprise_id);
  if (e != state.enterprises().end()) {
    line.set_enterprise_name(e->second.name());
    line.set_enterprise_credit_code(e->second.credit_code());
  }
  line.set_cap_fen(program.enterprise_cap_fen());
  return line;
}

// The key of the position after `v` in ListExpiringVouchers' order.
std::string ExpiringToken(const pb::Voucher& v) {
  return absl::StrCat(v.valid_until().seconds(), ".", v.valid_until().nanos(),
                      "/", v.voucher_id());
}

// Orders vouchers by window end, then id.
bool EndsBefore(const pb::Voucher& a, const pb::Voucher& b) {
  return std::make_tuple(a.valid_until().seconds(), a.valid_until().nanos(),
                         a.voucher_id()) <
         std::make_tuple(b.valid_until().seconds(), b.valid_until().nanos(),
                         b.voucher_id());
}

// ExpiringToken's voucher, parsed back (seconds, nanos and id set only).
absl::StatusOr<pb::Voucher> ParseExpiringToken(const std::string& token) {
  pb::Voucher v;
  const std::vector<std::string> parts = absl::StrSplit(token, '/');
  const std::vector<std::string> when = parts.empty()
                                            ? std::vector<std::string>{}
                                            : absl::StrSplit(parts[0], '.');
  int64_t seconds = 0;
  int32_t nanos = 0;
  if (parts.size() != 2 || when.size() != 2 ||
      !absl::SimpleAtoi(when[0], &seconds) ||
      !absl::SimpleAtoi(when[1], &nanos)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page.page_token: ", Quoted(token),
                     " is not a token this server issued"));
  }
  v.mutable_valid_until()->set_seconds(seconds);
  v.mutable_valid_until()->set_nanos(nanos);
  v.set_voucher_id(parts[1]);
  return v;
}

}  // namespace

absl::StatusOr<pb::CapUse> CapUse(const core::StateMachine& state,
                                  const pb::GetCapUseRequest& request) {
  RETURN_IF_ERROR(CheckIdFilter("program_id", request.program_id()));
  RETURN_IF_ERROR(CheckIdFilter("enterprise_id", request.enterprise_id()));
  if (request.year() != 0) {
    RETURN_IF_ERROR(CheckRange("year", request.year(), 2000, 2200));
  }
  if (!request.program_id().empty() &&
      !state.programs().contains(request.program_id())) {
    return absl::NotFoundError(absl::StrCat(
        "program_id: program ", request.program_id(), " not found"));
  }
  const int year =
      request.year() != 0 ? request.year() : ShanghaiYear(state.now());
  auto wanted = [&](const std::string& program_id,
                    const std::string& enterprise_id) -> const pb::Program* {
    if (!request.program_id().empty() && program_id != request.program_id())
      return nullptr;
    if (!request.enterprise_id().empty() &&
        enterprise_id != request.enterprise_id())
      return nullptr;
    auto p = state.programs().find(program_id);
    if (p == state.programs().end()) return nullptr;
    // Every program when one is named; otherwise only capped ones.
    if (request.program_id().empty() && p->second.enterprise_cap_fen() == 0)
      return nullptr;
    return &p->second;
  };
  std::vector<pb::CapUseLine> sorted;
  for (const auto& [key, issued] :
       state.voucher_book().IssuedInYearByEnterprise(year)) {
    const auto& [program_id, enterprise_id] = key;
    const pb::Program* program = wanted(program_id, enterprise_id);
    if (program == nullptr) continue;
    pb::CapUseLine line = NewCapLine(state, *program, enterprise_id);
    line.set_issued_fen(issued);
    const int64_t cap = line.cap_fen();
    line.set_remaining_fen(std::max<int64_t>(0, cap - line.issued_fen()));
    if (cap > 0) {
      // A ratio for people, rounded down; issued <= cap in practice, but a
      // cap lowered later can push it past.
      line.set_used_bp(static_cast<int32_t>(std::min<long double>(
          std::floor(10000.0L * line.issued_fen() / cap), 1e9L)));
    }
    sorted.push_back(std::move(line));
  }
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const pb::CapUseLine& a, const pb::CapUseLine& b) {
                     return std::make_tuple(a.program_id(), -a.used_bp()) <
                            std::make_tuple(b.program_id(), -b.used_bp());
                   });
  pb::CapUse out;
  out.set_year(year);
  for (pb::CapUseLine& line : sorted) *out.add_lines() = std::move(line);
  return out;
}

absl::StatusOr<pb::ListExpiringVouchersResponse> ExpiringVouchers(
    const core::StateMachine& state,
    const pb::ListExpiringVouchersRequest& request) {
  RETURN_IF_ERROR(
      CheckRange("within_days", request.within_days(), 1, kMaxWithinDays));
  RETURN_IF_ERROR(CheckIdFilter("program_id", request.program_id()));
  RETURN_IF_ERROR(CheckIdFilter("enterprise_id", request.enterprise_id()));
  ASSIGN_OR_RETURN(const int64_t size, PageSize(request.page()));
  std::optional<pb::Voucher> after;
  if (!request.page().page_token().empty()) {
    ASSIGN_OR_RETURN(after, ParseExpiringToken(request.page().page_token()));
  }
  const absl::Time horizon =
      state.now() + absl::Hours(24) * request.within_days();
  CheckedSum sum;
  pb::ListExpiringVouchersResponse out;
  bool more = false;
  // The expiry index holds the active and suspended vouchers by window end,
  // then id: in the order of EndsBefore.
  for (const auto& [until, id] : state.voucher_book().state().expiry_index) {
    if (until > horizon) break;
    const pb::Voucher& v = state.vouchers().at(id).voucher;
    if ((!request.program_id().empty() &&
         v.program_id() != request.program_id()) ||
        (!request.enterprise_id().empty() &&
         v.enterprise_id() != request.enterprise_id())) {
      continue;
    }
    pb::Voucher view = state.VoucherViewOf(state.vouchers().at(id));
    // Exhausted ones stay in the index until their window ends.
    if (view.state() != pb::VOUCHER_STATE_ACTIVE &&
        view.state() != pb::VOUCHER_STATE_SUSPENDED) {
      continue;
    }
    if (view.available_fen() == 0 && view.held_fen() == 0) continue;
    out.set_total_available_fen(sum.Add("total_available_fen",
                                        out.total_available_fen(),
                                        view.available_fen()));
    out.set_total_vouchers(out.total_vouchers() + 1);
    if (after.has_value() && !EndsBefore(*after, view)) continue;
    if (out.vouchers_size() == size) {
      more = true;
      continue;
    }
    *out.add_vouchers() = std::move(view);
  }
  RETURN_IF_ERROR(sum.status());
  if (more) out.set_next_page_token(ExpiringToken(out.vouchers(size - 1)));
  return out;
}

absl::StatusOr<pb::ListAuditResponse> AuditPage(
    const Sources& sources, const pb::ListAuditRequest& request) {
  RETURN_IF_ERROR(CheckIdFilter("token_id", request.token_id()));
  RETURN_IF_ERROR(CheckIdFilter("object_id", request.object_id()));
  store::AuditQuery query;
  query.token_id = request.token_id();
  query.object_id = request.object_id();
  ASSIGN_OR_RETURN(query.from,
                   OptionalBound("period_start", request.period_start(),
                                 absl::InfinitePast()));
  ASSIGN_OR_RETURN(query.until,
                   OptionalBound("period_end", request.period_end(),
                                 absl::InfiniteFuture()));
  if (query.from >= query.until) {
    return absl::InvalidArgumentError("period_end: must be after period_start");
  }
  ASSIGN_OR_RETURN(const int64_t size, PageSize(request.page()));
  ASSIGN_OR_RETURN(query.after, NumericPageToken(request.page()));
  query.limit = static_cast<int>(size) + 1;
  if (sources.retired == nullptr) return pb::ListAuditResponse();
  ASSIGN_OR_RETURN(std::vector<pb::AuditEvent> events,
                   sources.retired->ReadAudit(query));
  pb::ListAuditResponse out;
  RETURN_IF_ERROR(sources.read_state([&](const core::StateMachine& s) {
    out.Clear();  // read_state may run this more than once
    for (size_t i = 0; i < events.size() && i < static_cast<size_t>(size);
         ++i) {
      pb::AuditEvent* e = out.add_events();
      *e = events[i];
      auto token = s.tokens().find(e->principal().token_id());
      if (token != s.tokens().end()) {
        e->set_token_description(token->second.description());
      }
    }
  }));
  if (events.size() > static_cast<size_t>(size)) {
    out.set_next_page_token(absl::StrCat(events[size - 1].sequence()));
  }
  return out;
}

}  // namespace computevoucher::reports
