#include "scheduler/core/voucher_book.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/enum_word.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"

namespace computevoucher::core {
namespace {

// Whether `v` counts toward the caps of `year`: it was issued in that
// Asia/Shanghai year.
bool IssuedIn(const pb::Voucher& v, int year) {
  auto issued_at = FromProto("issued_at", v.issued_at());
  return issued_at.ok() && ShanghaiYear(*issued_at) == year;
}

constexpr int64_t kMaxBudgetFen = 1'000'000'000'000'000;  // 10^13 CNY
constexpr int kMaxBatchRows = 10'000;

}  // namespace

std::string IssueKey(absl::string_view voucher_id) {
  return absl::StrCat("issue/", voucher_id);
}
std::string ExpireKey(absl::string_view voucher_id) {
  return absl::StrCat("expire/", voucher_id);
}
std::string RevokeKey(absl::string_view voucher_id) {
  return absl::StrCat("revoke/", voucher_id);
}
std::string AdjustKey(absl::string_view voucher_id, int64_t n) {
  return absl::StrCat("adjust/", voucher_id, "/", n);
}
std::vector<std::string> VoucherKeys(absl::string_view voucher_id,
                                     int64_t adjustments) {
  std::vector<std::string> keys = {IssueKey(voucher_id), ExpireKey(voucher_id),
                                   RevokeKey(voucher_id)};
  for (int64_t n = 1; n <= adjustments; ++n)
    keys.push_back(AdjustKey(voucher_id, n));
  return keys;
}

// --- Applications ---

absl::StatusOr<pb::Application*> VoucherBook::FindPendingApplication(
    const std::string& application_id) {
  RETURN_IF_ERROR(CheckIdRef("application_id", application_id));
  auto it = state_.applications.find(application_id);
  if (it == state_.applications.end()) {
    return absl::NotFoundError(absl::StrCat("application_id: application ",
                                            application_id, " not found"));
  }
  if (it->second.state() != pb::APPLICATION_STATE_PENDING) {
    return absl::FailedPreconditionError(
        absl::StrCat("application ", application_id, ": already ",
                     EnumWord(it->second.state())));
  }
  return &it->second;
}

absl::StatusOr<Response> VoucherBook::ApplyForVoucher(
    const pb::Principal& p, const pb::ApplyRequest& r) {
  ASSIGN_OR_RETURN(
      const pb::Enterprise* enterprise,
      registry_.FindEnterprise("principal.enterprise_id", p.enterprise_id()));
  ASSIGN_OR_RETURN(const pb::Program* program,
                   registry_.FindProgram(r.program_id()));
  const pb::Program& prog = *program;
  RETURN_IF_ERROR(registry_.CheckEligible(prog, *enterprise));
  ASSIGN_OR_RETURN(const absl::Time until,
                   FromProto("valid_until", prog.valid_until()));
  if (until <= books_.now()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "program ", prog.program_id(), ": ended at ", FormatInstant(until)));
  }
  const int64_t max_request = prog.enterprise_cap_fen() > 0
                                  ? prog.enterprise_cap_fen()
                                  : prog.budget_fen();
  RETURN_IF_ERROR(
      CheckRange("requested_fen", r.requested_fen(), 1, max_request));
  RETURN_IF_ERROR(CheckLength("purpose", r.purpose(), 1, 1000));
  pb::Application application;
  application.set_application_id(NextId("AP", &state_.next_application, 6));
  application.set_program_id(r.program_id());
  application.set_enterprise_id(enterprise->enterprise_id());
  application.set_requested_fen(r.requested_fen());
  application.set_purpose(r.purpose());
  application.set_state(pb::APPLICATION_STATE_PENDING);
  *application.mutable_created_at() = ToProto(books_.now());
  state_.applications[application.application_id()] = application;
  return Share(application);
}

absl::StatusOr<Response> VoucherBook::ApproveApplication(
    const pb::ApproveApplicationRequest& r) {
  ASSIGN_OR_RETURN(pb::Application * found,
                   FindPendingApplication(r.application_id()));
  pb::Application& application = *found;
  const int64_t approved =
      r.approved_fen() == 0 ? application.requested_fen() : r.approved_fen();
  RETURN_IF_ERROR(
      CheckRange("approved_fen", approved, 1, application.requested_fen()));
  RETURN_IF_ERROR(CheckLength("reason", r.reason(), 0, 500));
  pb::IssueVoucherRequest issue;
  issue.set_program_id(application.program_id());
  issue.set_enterprise_id(application.enterprise_id());
  issue.set_face_value_fen(approved);
  if (r.has_valid_from()) *issue.mutable_valid_from() = r.valid_from();
  if (r.has_valid_until()) *issue.mutable_valid_until() = r.valid_until();
  issue.set_priority(r.priority());
  PendingIssue pending;
  ASSIGN_OR_RETURN(const IssuePlan plan, PlanIssue(issue, &pending));
  ASSIGN_OR_RETURN(const pb::Voucher voucher,
                   ExecuteIssue(plan, application.application_id()));
  application.set_state(pb::APPLICATION_STATE_APPROVED);
  application.set_approved_fen(approved);
  application.set_decision_reason(r.reason());
  application.set_voucher_id(voucher.voucher_id());
  *application.mutable_decided_at() = ToProto(books_.now());
  return Share(application);
}

absl::StatusOr<Response> VoucherBook::RejectApplication(
    const pb::RejectApplicationRequest& r) {
  ASSIGN_OR_RETURN(pb::Application * found,
                   FindPendingApplication(r.application_id()));
  pb::Application& application = *found;
  RETURN_IF_ERROR(CheckLength("reason", r.reason(), 1, 500));
  application.set_state(pb::APPLICATION_STATE_REJECTED);
  application.set_decision_reason(r.reason());
  *application.mutable_decided_at() = ToProto(books_.now());
  return Share(application);
}

int64_t VoucherBook::IssuedInYear(const std::string& program_id,
                                  const std::string& enterprise_id,
                                  int year) const {
  int64_t total = 0;
  for (auto it =
           state_.retired.lower_bound({program_id, enterprise_id, year, 0});
       it != state_.retired.end() && std::get<0>(it->first) == program_id &&
       std::get<1>(it->first) == enterprise_id &&
       std::get<2>(it->first) == year;
       ++it) {
    total += it->second.face_value_fen;
  }
  auto ids = state_.enterprise_vouchers.find(enterprise_id);
  if (ids == state_.enterprise_vouchers.end()) return total;
  for (const std::string& id : ids->second) {
    const pb::Voucher& v = state_.vouchers.at(id).voucher;
    if (v.program_id() == program_id && IssuedIn(v, year)) {
      total += v.face_value_fen();
    }
  }
  return total;
}

std::map<std::pair<std::string, std::string>, int64_t>
VoucherBook::IssuedInYearByEnterprise(int year) const {
  std::map<std::pair<std::string, std::string>, int64_t> out;
  for (const auto& [key, sums] : state_.retired) {
    if (std::get<2>(key) == year) {
      out[{std::get<0>(key), std::get<1>(key)}] += sums.face_value_fen;
    }
  }
  for (const auto& [id, rec] : state_.vouchers) {
    const pb::Voucher& v = rec.voucher;
    if (IssuedIn(v, year)) {
      out[{v.program_id(), v.enterprise_id()}] += v.face_value_fen();
    }
  }
  return out;
}

absl::Status VoucherBook::CheckCap(const pb::Program& program,
                                   const std::string& enterprise_id, int year,
                                   int64_t amount,
                                   int64_t already_pending) const {
  if (program.enterprise_cap_fen() == 0) return absl::OkStatus();
  const int64_t used =
      IssuedInYear(program.program_id(), enterprise_id, year) + already_pending;
  const int64_t remaining =
      std::max<int64_t>(0, program.enterprise_cap_fen() - used);
  if (amount > remaining) {
    return absl::FailedPreconditionError(absl::StrCat(
        "enterprise ", enterprise_id, ": cap of program ", program.program_id(),
        " for ", year, " exceeded: need ", FormatFen(amount), ", remaining ",
        FormatFen(remaining), " of ", FormatFen(program.enterprise_cap_fen())));
  }
  return absl::OkStatus();
}

absl::StatusOr<VoucherBook::IssuePlan> VoucherBook::PlanIssue(
    const pb::IssueVoucherRequest& r, PendingIssue* pending) const {
  ASSIGN_OR_RETURN(const pb::Program* found,
                   registry_.FindProgram(r.program_id()));
  const pb::Program& program = *found;
  ASSIGN_OR_RETURN(
      const pb::Enterprise* enterprise,
      registry_.FindEnterprise("enterprise_id", r.enterprise_id()));
  RETURN_IF_ERROR(registry_.CheckEligible(program, *enterprise));
  RETURN_IF_ERROR(
      CheckRange("face_value_fen", r.face_value_fen(), 1, kMaxBudgetFen));
  RETURN_IF_ERROR(CheckRange("priority", r.priority(), 0, 1000));
  ASSIGN_OR_RETURN(const absl::Time program_from,
                   FromProto("program.valid_from", program.valid_from()));
  ASSIGN_OR_RETURN(const absl::Time program_until,
                   FromProto("program.valid_until", program.valid_until()));
  absl::Time from = std::max(books_.now(), program_from);
  absl::Time until = program_until;
  if (r.has_valid_from()) {
    ASSIGN_OR_RETURN(from, FromProto("valid_from", r.valid_from()));
  }
  if (r.has_valid_until()) {
    ASSIGN_OR_RETURN(until, FromProto("valid_until", r.valid_until()));
  }
  RETURN_IF_ERROR(
      ValidateWindow("valid_from", "valid_until", Window{from, until}));
  if (!Window{program_from, program_until}.Contains(Window{from, until})) {
    return absl::InvalidArgumentError(absl::StrCat(
        "valid_from, valid_until: ", FormatInstant(from), " .. ",
        FormatInstant(until), " must lie inside program ", program.program_id(),
        "'s window ", FormatInstant(program_from), " .. ",
        FormatInstant(program_until)));
  }
  if (until <= books_.now()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "valid_until: ", FormatInstant(until), " is not in the future"));
  }
  const int64_t unissued =
      books_.Balance(ProgramBudgetAccount(program.program_id())) -
      pending->by_program[program.program_id()];
  if (r.face_value_fen() > unissued) {
    return absl::FailedPreconditionError(absl::StrCat(
        "program ", program.program_id(), ": insufficient budget: need ",
        FormatFen(r.face_value_fen()), ", have ", FormatFen(unissued),
        " unissued"));
  }
  const int year = ShanghaiYear(books_.now());
  const std::string cap_key =
      absl::StrCat(program.program_id(), "/", r.enterprise_id());
  RETURN_IF_ERROR(CheckCap(program, r.enterprise_id(), year, r.face_value_fen(),
                           pending->by_cap_key[cap_key]));
  pending->by_program[program.program_id()] += r.face_value_fen();
  pending->by_cap_key[cap_key] += r.face_value_fen();
  return IssuePlan{&program, r.enterprise_id(), r.face_value_fen(), from,
                   until,    r.priority()};
}

absl::StatusOr<pb::Voucher> VoucherBook::ExecuteIssue(
    const IssuePlan& plan, const std::string& application_id) {
  const int year = ShanghaiYear(books_.now());
  ++state_.next_voucher;
  const std::string id =
      absl::StrFormat("CV-%d-%06d", year, state_.next_voucher);
  VoucherRec& rec = state_.vouchers[id];
  pb::Voucher& v = rec.voucher;
  v.set_voucher_id(id);
  v.set_program_id(plan.program->program_id());
  v.set_enterprise_id(plan.enterprise_id);
  *v.mutable_valid_from() = ToProto(plan.valid_from);
  *v.mutable_valid_until() = ToProto(plan.valid_until);
  v.set_priority(plan.priority);
  v.set_state(pb::VOUCHER_STATE_ACTIVE);
  *v.mutable_issued_at() = ToProto(books_.now());
  v.set_application_id(application_id);
  state_.enterprise_vouchers[plan.enterprise_id].push_back(id);
  state_.expiry_index.insert({plan.valid_until, id});
  state_.window_index.insert({plan.valid_until, id});
  pb::JournalEntry issue =
      Entry(pb::ENTRY_KIND_ISSUE, VoucherAccount(id),
            ProgramBudgetAccount(plan.program->program_id()),
            plan.face_value_fen, IssueKey(id));
  issue.set_voucher_id(id);
  issue.set_program_id(plan.program->program_id());
  if (absl::Status s = books_.Post(std::move(issue), &v); !s.ok()) {
    return absl::InternalError(absl::StrCat("issuing ", id, ": ", s.message()));
  }
  return VoucherViewOf(rec);
}

absl::StatusOr<Response> VoucherBook::IssueVoucher(
    const pb::IssueVoucherRequest& r) {
  PendingIssue pending;
  ASSIGN_OR_RETURN(const IssuePlan plan, PlanIssue(r, &pending));
  ASSIGN_OR_RETURN(pb::Voucher voucher, ExecuteIssue(plan, ""));
  return Share(std::move(voucher));
}

absl::StatusOr<Reply> VoucherBook::BatchIssueVouchers(
    const pb::BatchIssueVouchersRequest& r) {
  RETURN_IF_ERROR(CheckRange("rows", r.rows_size(), 1, kMaxBatchRows));
  PendingIssue pending;
  std::vector<IssuePlan> plans;
  pb::BatchIssueVouchersResponse response;
  for (int i = 0; i < r.rows_size(); ++i) {
    absl::StatusOr<IssuePlan> plan = PlanIssue(r.rows(i), &pending);
    if (!plan.ok()) {
      pb::RowError* error = response.add_errors();
      error->set_row(i);
      error->set_message(std::string(plan.status().message()));
      continue;
    }
    plans.push_back(*plan);
  }
  if (response.errors_size() > 0) {
    return Reply{Share(std::move(response)), false};
  }
  for (const IssuePlan& plan : plans) {
    ASSIGN_OR_RETURN(*response.add_vouchers(), ExecuteIssue(plan, ""));
  }
  return Reply{Share(std::move(response))};
}

absl::StatusOr<VoucherRec*> VoucherBook::Suspend(
    const pb::SuspendVoucherRequest& r) {
  ASSIGN_OR_RETURN(VoucherRec * rec, FindVoucher(r.voucher_id()));
  RETURN_IF_ERROR(CheckLength("reason", r.reason(), 1, 500));
  if (rec->voucher.state() != pb::VOUCHER_STATE_ACTIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("voucher ", r.voucher_id(),
                     ": only an active voucher can be suspended, it is ",
                     EnumWord(rec->voucher.state())));
  }
  rec->voucher.set_state(pb::VOUCHER_STATE_SUSPENDED);
  rec->voucher.set_state_reason(r.reason());
  return rec;
}

absl::StatusOr<Response> VoucherBook::ResumeVoucher(
    const pb::ResumeVoucherRequest& r) {
  ASSIGN_OR_RETURN(VoucherRec * rec, FindVoucher(r.voucher_id()));
  if (rec->voucher.state() != pb::VOUCHER_STATE_SUSPENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("voucher ", r.voucher_id(),
                     ": only a suspended voucher can be resumed, it is ",
                     EnumWord(rec->voucher.state())));
  }
  rec->voucher.set_state(pb::VOUCHER_STATE_ACTIVE);
  rec->voucher.clear_state_reason();
  UpdateExhausted(*rec);
  return Share(VoucherViewOf(*rec));
}

absl::StatusOr<VoucherRec*> VoucherBook::Revoke(
    const pb::RevokeVoucherRequest& r) {
  ASSIGN_OR_RETURN(VoucherRec * rec, FindVoucher(r.voucher_id()));
  RETURN_IF_ERROR(CheckLength("reason", r.reason(), 1, 500));
  const pb::VoucherState state = rec->voucher.state();
  if (state == pb::VOUCHER_STATE_REVOKED ||
      state == pb::VOUCHER_STATE_EXPIRED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "voucher ", r.voucher_id(), ": already ", EnumWord(state)));
  }
  rec->voucher.set_state(pb::VOUCHER_STATE_REVOKED);
  rec->voucher.set_state_reason(r.reason());
  ASSIGN_OR_RETURN(const absl::Time until,
                   FromProto("valid_until", rec->voucher.valid_until()));
  state_.expiry_index.erase({until, r.voucher_id()});
  return rec;
}

absl::StatusOr<Response> VoucherBook::AdjustVoucher(
    const pb::AdjustVoucherRequest& r) {
  ASSIGN_OR_RETURN(VoucherRec * rec, FindVoucher(r.voucher_id()));
  RETURN_IF_ERROR(
      CheckRange("delta_fen", r.delta_fen(), -kMaxBudgetFen, kMaxBudgetFen));
  if (r.delta_fen() == 0) {
    return absl::InvalidArgumentError("delta_fen: must not be zero");
  }
  RETURN_IF_ERROR(CheckLength("reason", r.reason(), 1, 500));
  const pb::VoucherState state = rec->voucher.state();
  if (state == pb::VOUCHER_STATE_REVOKED ||
      state == pb::VOUCHER_STATE_EXPIRED) {
    return absl::FailedPreconditionError(
        absl::StrCat("voucher ", r.voucher_id(),
                     ": cannot adjust a voucher that is ", EnumWord(state)));
  }
  const std::string& program_id = rec->voucher.program_id();
  const std::string voucher_account = VoucherAccount(r.voucher_id());
  const std::string budget_account = ProgramBudgetAccount(program_id);
  const std::string key = AdjustKey(r.voucher_id(), rec->adjustments + 1);
  pb::JournalEntry entry;
  if (r.delta_fen() > 0) {
    ASSIGN_OR_RETURN(const pb::Program* program,
                     registry_.FindProgram(program_id));
    ASSIGN_OR_RETURN(const absl::Time issued_at,
                     FromProto("issued_at", rec->voucher.issued_at()));
    RETURN_IF_ERROR(CheckCap(*program, rec->voucher.enterprise_id(),
                             ShanghaiYear(issued_at), r.delta_fen(), 0));
    entry = Entry(pb::ENTRY_KIND_ADJUST, voucher_account, budget_account,
                  r.delta_fen(), key);
  } else {
    entry = Entry(pb::ENTRY_KIND_ADJUST, budget_account, voucher_account,
                  -r.delta_fen(), key);
  }
  entry.set_voucher_id(r.voucher_id());
  entry.set_program_id(program_id);
  entry.set_memo(r.reason());
  // The ledger refuses an adjustment the budget or the voucher cannot cover;
  // nothing was changed before this point.
  RETURN_IF_ERROR(books_.Post(std::move(entry), &rec->voucher));
  ++rec->adjustments;
  UpdateExhausted(*rec);
  return Share(VoucherViewOf(*rec));
}

absl::Status VoucherBook::ReturnToBudget(VoucherRec& rec, pb::EntryKind kind,
                                         int64_t amount,
                                         const std::string& key) {
  if (amount <= 0) return absl::OkStatus();
  const pb::Voucher& v = rec.voucher;
  pb::JournalEntry entry = Entry(kind, ProgramBudgetAccount(v.program_id()),
                                 VoucherAccount(v.voucher_id()), amount, key);
  entry.set_voucher_id(v.voucher_id());
  entry.set_program_id(v.program_id());
  return books_.Post(std::move(entry), &rec.voucher);
}

absl::Status VoucherBook::ReturnAvailable(VoucherRec& rec, pb::EntryKind kind,
                                          const std::string& key) {
  return ReturnToBudget(
      rec, kind, books_.Balance(VoucherAccount(rec.voucher.voucher_id())), key);
}

void VoucherBook::UpdateExhausted(VoucherRec& rec) {
  pb::Voucher& v = rec.voucher;
  // The held amount first: while an allocation runs, no account is read.
  const bool empty =
      v.held_fen() == 0 && books_.Balance(VoucherAccount(v.voucher_id())) == 0;
  if (v.state() == pb::VOUCHER_STATE_ACTIVE && empty) {
    v.set_state(pb::VOUCHER_STATE_EXHAUSTED);
  } else if (v.state() == pb::VOUCHER_STATE_EXHAUSTED && !empty) {
    v.set_state(pb::VOUCHER_STATE_ACTIVE);
  }
}

pb::Voucher VoucherBook::VoucherViewOf(const VoucherRec& rec) const {
  pb::Voucher view = rec.voucher;
  view.set_available_fen(books_.Balance(VoucherAccount(view.voucher_id())));
  return view;
}

absl::StatusOr<pb::Voucher> VoucherBook::VoucherView(
    const std::string& voucher_id) const {
  auto it = state_.vouchers.find(voucher_id);
  if (it == state_.vouchers.end()) {
    return absl::NotFoundError(
        absl::StrCat("voucher ", voucher_id, " not found"));
  }
  return VoucherViewOf(it->second);
}
std::vector<std::string> VoucherBook::VoucherIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, rec] : state_.vouchers) ids.push_back(id);
  return ids;
}

absl::StatusOr<VoucherRec*> VoucherBook::FindVoucher(const std::string& id) {
  RETURN_IF_ERROR(CheckIdRef("voucher_id", id));
  auto it = state_.vouchers.find(id);
  if (it == state_.vouchers.end()) {
    return absl::NotFoundError(
        absl::StrCat("voucher_id: voucher ", id, " not found"));
  }
  return &it->second;
}

int64_t VoucherBook::Available(const std::string& voucher_id) const {
  return books_.Balance(VoucherAccount(voucher_id));
}

std::optional<std::string> VoucherBook::TakeExpired(absl::Time now) {
  if (state_.expiry_index.empty() || state_.expiry_index.begin()->first > now) {
    return std::nullopt;
  }
  std::string id = state_.expiry_index.begin()->second;
  state_.expiry_index.erase(state_.expiry_index.begin());
  return id;
}

bool VoucherBook::Expire(const std::string& id) {
  pb::Voucher& v = state_.vouchers.at(id).voucher;
  if (v.state() == pb::VOUCHER_STATE_EXHAUSTED) return false;
  v.set_state(pb::VOUCHER_STATE_EXPIRED);
  v.set_state_reason("validity window ended");
  return true;
}

absl::StatusOr<bool> VoucherBook::RetireDue(
    absl::Duration retain, int at_most,
    absl::FunctionRef<bool(const std::string&)> in_use) {
  // By enterprise, the ids retired, taken off its list in one pass.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>>
      by_enterprise;
  int retired = 0;
  int passed = 0;
  auto it = state_.window_index.begin();
  while (it != state_.window_index.end() && retired < at_most &&
         passed < at_most && it->first + retain <= books_.now()) {
    const std::string& id = it->second;
    if (in_use(id)) {
      ++passed;
      ++it;
      continue;
    }
    RETURN_IF_ERROR(ExpireLate(voucher(id)));
    RETURN_IF_ERROR(Retire(id));
    by_enterprise[retired_.back().enterprise_id()].insert(id);
    it = state_.window_index.erase(it);
    ++retired;
  }
  for (const auto& [enterprise, ids] : by_enterprise) {
    std::vector<std::string>& list = state_.enterprise_vouchers[enterprise];
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&ids = ids](const std::string& id) {
                                return ids.contains(id);
                              }),
               list.end());
    if (list.empty()) state_.enterprise_vouchers.erase(enterprise);
  }
  return retired > 0;
}

absl::Status VoucherBook::ExpireLate(VoucherRec& rec) {
  pb::Voucher& v = rec.voucher;
  if (v.state() != pb::VOUCHER_STATE_ACTIVE &&
      v.state() != pb::VOUCHER_STATE_SUSPENDED) {
    return absl::OkStatus();
  }
  v.set_state(pb::VOUCHER_STATE_EXPIRED);
  v.set_state_reason("validity window ended");
  return ReturnAvailable(rec, pb::ENTRY_KIND_EXPIRE, ExpireKey(v.voucher_id()));
}

absl::Status VoucherBook::Retire(const std::string& id) {
  auto it = state_.vouchers.find(id);
  if (it == state_.vouchers.end()) {
    return absl::InternalError(
        absl::StrCat("voucher ", id, ": retired but not in the state"));
  }
  pb::Voucher view = VoucherViewOf(it->second);
  if (view.available_fen() != 0 || view.held_fen() != 0) {
    return absl::InternalError(
        absl::StrCat("voucher ", id, ": retired while ", EnumWord(view.state()),
                     " with ", FormatFen(view.available_fen()),
                     " available and ", FormatFen(view.held_fen()), " held"));
  }
  ASSIGN_OR_RETURN(const absl::Time issued_at,
                   FromProto("issued_at", view.issued_at()));
  RETURN_IF_ERROR(books_.ledger().Forget(
      VoucherAccount(id), VoucherKeys(id, it->second.adjustments), ""));
  RetiredVoucherSums& sums =
      state_.retired[{view.program_id(), view.enterprise_id(),
                      ShanghaiYear(issued_at), view.state()}];
  ++sums.vouchers;
  sums.face_value_fen += view.face_value_fen();
  sums.charged_fen += view.charged_fen();
  sums.returned_fen += view.returned_fen();
  *view.mutable_retired_at() = ToProto(books_.now());
  state_.vouchers.erase(it);
  retired_.push_back(std::move(view));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<const VoucherRec*>> VoucherBook::Payers(
    const std::string& enterprise_id, const std::string& voucher_id) const {
  std::vector<const VoucherRec*> payers;
  if (!voucher_id.empty()) {
    auto it = state_.vouchers.find(voucher_id);
    // Another enterprise's voucher is answered as a missing one.
    if (it == state_.vouchers.end() ||
        it->second.voucher.enterprise_id() != enterprise_id) {
      return absl::NotFoundError(
          absl::StrCat("voucher_id: voucher ", voucher_id, " not found"));
    }
    payers.push_back(&it->second);
    return payers;
  }
  auto ids = state_.enterprise_vouchers.find(enterprise_id);
  if (ids == state_.enterprise_vouchers.end()) return payers;
  for (const std::string& id : ids->second)
    payers.push_back(&state_.vouchers.at(id));
  std::stable_sort(
      payers.begin(), payers.end(),
      [](const VoucherRec* a, const VoucherRec* b) {
        const pb::Voucher& x = a->voucher;
        const pb::Voucher& y = b->voucher;
        return std::make_tuple(-x.priority(), x.valid_until().seconds(),
                               x.valid_until().nanos(), x.voucher_id()) <
               std::make_tuple(-y.priority(), y.valid_until().seconds(),
                               y.valid_until().nanos(), y.voucher_id());
      });
  return payers;
}

}  // namespace computevoucher::core
