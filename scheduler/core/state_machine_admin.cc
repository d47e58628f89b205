// Programs, enterprises, providers, tokens, applications, vouchers and
// settlement. Every handler validates before its first mutation.
#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/credit_code.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "scheduler/core/state_machine.h"

namespace computevoucher::core {
namespace {

constexpr int64_t kMaxBudgetFen = 1'000'000'000'000'000;  // 10^13 CNY
constexpr int kMaxCategories = 64;
constexpr int kMaxRelatedProviders = 100;
constexpr int kMaxBatchRows = 10'000;

template <typename T>
std::shared_ptr<const google::protobuf::Message> Share(T message) {
  return std::make_shared<const T>(std::move(message));
}

absl::Status CheckRatio(absl::string_view field, int32_t bp) {
  return CheckRange(field, bp, 0, 10'000);
}

absl::Status CheckClusterId(absl::string_view cluster_id) {
  RETURN_IF_ERROR(CheckLength("cluster_id", cluster_id, 1, 63));
  for (size_t i = 0; i < cluster_id.size(); ++i) {
    const char c = cluster_id[i];
    const bool ok = absl::ascii_islower(static_cast<unsigned char>(c)) ||
                    absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
                    (c == '-' && i > 0);
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cluster_id: \"", cluster_id,
          "\" must be lower-case letters, digits and '-' (not first)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StateMachine::Response> StateMachine::BootstrapAdmin(
    const pb::BootstrapAdminCommand& r) {
  if (!tokens_.empty()) {
    return absl::FailedPreconditionError("bootstrap: tokens exist already");
  }
  if (r.secret_sha256().size() != 32) {
    return absl::InvalidArgumentError("secret_sha256: must be 32 bytes");
  }
  pb::Token token;
  token.set_token_id(NextId("TK", &next_token_, 6));
  token.set_role(pb::ROLE_ADMIN);
  token.set_description("first admin token, written at bootstrap");
  *token.mutable_created_at() = ToProto(now_);
  token_hashes_[r.secret_sha256()] = token.token_id();
  tokens_[token.token_id()] = token;
  return Share(token);
}

absl::StatusOr<StateMachine::Response> StateMachine::CreateToken(
    const pb::CreateTokenCommand& c) {
  const pb::CreateTokenRequest& r = c.request();
  if (c.secret_sha256().size() != 32) {
    return absl::InvalidArgumentError("secret_sha256: must be 32 bytes");
  }
  if (token_hashes_.contains(c.secret_sha256())) {
    return absl::AlreadyExistsError("token secret: already in use");
  }
  RETURN_IF_ERROR(CheckLength("description", r.description(), 0, 200));
  const bool enterprise_role = r.role() == pb::ROLE_ENTERPRISE;
  const bool agent_role = r.role() == pb::ROLE_AGENT;
  switch (r.role()) {
    case pb::ROLE_ADMIN:
    case pb::ROLE_AUDITOR:
    case pb::ROLE_ENTERPRISE:
    case pb::ROLE_AGENT:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "role: must be admin, auditor, enterprise or agent, got ", r.role()));
  }
  if (enterprise_role) {
    RETURN_IF_ERROR(
        FindEnterprise("enterprise_id", r.enterprise_id()).status());
  } else if (!r.enterprise_id().empty()) {
    return absl::InvalidArgumentError(
        "enterprise_id: only tokens of role enterprise are bound to an "
        "enterprise");
  }
  if (agent_role) {
    RETURN_IF_ERROR(CheckClusterId(r.cluster_id()));
    RETURN_IF_ERROR(CheckIdRef("provider_id", r.provider_id()));
    if (!providers_.contains(r.provider_id())) {
      return absl::NotFoundError(absl::StrCat("provider_id: provider ",
                                              r.provider_id(), " not found"));
    }
    auto owner = cluster_owner_.find(r.cluster_id());
    if (owner != cluster_owner_.end() && owner->second != r.provider_id()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cluster_id: cluster ", r.cluster_id(),
                       " belongs to another provider (", owner->second, ")"));
    }
  } else if (!r.cluster_id().empty() || !r.provider_id().empty()) {
    return absl::InvalidArgumentError(
        "cluster_id, provider_id: only tokens of role agent are bound to a "
        "cluster");
  }
  pb::Token token;
  token.set_token_id(NextId("TK", &next_token_, 6));
  token.set_role(r.role());
  token.set_enterprise_id(r.enterprise_id());
  token.set_cluster_id(r.cluster_id());
  token.set_provider_id(r.provider_id());
  token.set_description(r.description());
  *token.mutable_created_at() = ToProto(now_);
  if (agent_role) cluster_owner_[r.cluster_id()] = r.provider_id();
  token_hashes_[c.secret_sha256()] = token.token_id();
  tokens_[token.token_id()] = token;
  pb::CreateTokenResponse response;
  *response.mutable_token() = token;
  return Share(response);
}

absl::StatusOr<StateMachine::Response> StateMachine::RevokeToken(
    const pb::RevokeTokenRequest& r) {
  RETURN_IF_ERROR(CheckIdRef("token_id", r.token_id()));
  auto it = tokens_.find(r.token_id());
  if (it == tokens_.end()) {
    return absl::NotFoundError(
        absl::StrCat("token_id: token ", r.token_id(), " not found"));
  }
  if (it->second.revoked()) {
    return absl::FailedPreconditionError(
        absl::StrCat("token ", r.token_id(), ": already revoked"));
  }
  it->second.set_revoked(true);
  return Share(it->second);
}

absl::StatusOr<StateMachine::Response> StateMachine::CreateProgram(
    const pb::CreateProgramRequest& r) {
  RETURN_IF_ERROR(CheckLength("name", r.name(), 1, 200));
  RETURN_IF_ERROR(CheckLength("issuer", r.issuer(), 1, 200));
  RETURN_IF_ERROR(CheckRange("budget_fen", r.budget_fen(), 1, kMaxBudgetFen));
  ASSIGN_OR_RETURN(const absl::Time from,
                   FromProto("valid_from", r.valid_from()));
  ASSIGN_OR_RETURN(const absl::Time until,
                   FromProto("valid_until", r.valid_until()));
  RETURN_IF_ERROR(
      ValidateWindow("valid_from", "valid_until", Window{from, until}));
  if (until <= now_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "valid_until: ", FormatInstant(until), " is not in the future"));
  }
  RETURN_IF_ERROR(CheckRatio("domestic_ratio_bp", r.domestic_ratio_bp()));
  RETURN_IF_ERROR(CheckRatio("other_ratio_bp", r.other_ratio_bp()));
  RETURN_IF_ERROR(CheckRatio("sme_ratio_bp", r.sme_ratio_bp()));
  RETURN_IF_ERROR(CheckRange("enterprise_cap_fen", r.enterprise_cap_fen(), 0,
                             kMaxBudgetFen));
  if (r.eligible_categories_size() > kMaxCategories) {
    return absl::InvalidArgumentError(
        absl::StrCat("eligible_categories: at most ", kMaxCategories, ", got ",
                     r.eligible_categories_size()));
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& category : r.eligible_categories()) {
    RETURN_IF_ERROR(CheckLength("eligible_categories", category, 1, 64));
    if (!seen.insert(category).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("eligible_categories: \"", category, "\" listed twice"));
    }
  }

  pb::Program program;
  program.set_program_id(NextId("P", &next_program_, 6));
  program.set_name(r.name());
  program.set_issuer(r.issuer());
  program.set_budget_fen(r.budget_fen());
  *program.mutable_valid_from() = r.valid_from();
  *program.mutable_valid_until() = r.valid_until();
  program.set_domestic_ratio_bp(r.domestic_ratio_bp());
  program.set_other_ratio_bp(r.other_ratio_bp());
  program.set_sme_ratio_bp(r.sme_ratio_bp());
  program.set_enterprise_cap_fen(r.enterprise_cap_fen());
  *program.mutable_eligible_categories() = r.eligible_categories();
  *program.mutable_created_at() = ToProto(now_);
  const std::string& id = program.program_id();
  programs_[id] = program;
  pb::JournalEntry fund = Entry(pb::ENTRY_KIND_FUND, ProgramBudgetAccount(id),
                                ProgramSourceAccount(id), r.budget_fen(),
                                absl::StrCat("fund/", id));
  fund.set_program_id(id);
  RETURN_IF_ERROR(Post(std::move(fund)));
  return Share(*ProgramView(id));
}

absl::Status StateMachine::CheckRelatedProviders(
    const google::protobuf::RepeatedPtrField<std::string>& ids) const {
  if (ids.size() > kMaxRelatedProviders) {
    return absl::InvalidArgumentError(
        absl::StrCat("related_provider_ids: at most ", kMaxRelatedProviders,
                     ", got ", ids.size()));
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& id : ids) {
    RETURN_IF_ERROR(CheckIdRef("related_provider_ids", id));
    if (!providers_.contains(id)) {
      return absl::NotFoundError(
          absl::StrCat("related_provider_ids: provider ", id, " not found"));
    }
    if (!seen.insert(id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("related_provider_ids: ", id, " listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status StateMachine::CheckEligible(
    const pb::Program& program, const pb::Enterprise& enterprise) const {
  const auto& categories = program.eligible_categories();
  if (categories.empty() ||
      std::find(categories.begin(), categories.end(), enterprise.category()) !=
          categories.end()) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("enterprise ", enterprise.enterprise_id(), ": category \"",
                   enterprise.category(), "\" is not eligible for program ",
                   program.program_id()));
}

absl::StatusOr<pb::Application*> StateMachine::FindPendingApplication(
    const std::string& application_id) {
  RETURN_IF_ERROR(CheckIdRef("application_id", application_id));
  auto it = applications_.find(application_id);
  if (it == applications_.end()) {
    return absl::NotFoundError(absl::StrCat("application_id: application ",
                                            application_id, " not found"));
  }
  if (it->second.state() != pb::APPLICATION_STATE_PENDING) {
    return absl::FailedPreconditionError(
        absl::StrCat("application ", application_id, ": already ",
                     pb::ApplicationState_Name(it->second.state())));
  }
  return &it->second;
}

absl::StatusOr<StateMachine::Response> StateMachine::RegisterEnterprise(
    const pb::RegisterEnterpriseRequest& r) {
  RETURN_IF_ERROR(CheckLength("name", r.name(), 1, 200));
  ASSIGN_OR_RETURN(const std::string code,
                   NormalizeCreditCode("credit_code", r.credit_code()));
  const std::string code_key = absl::StrCat("E:", code);
  if (auto it = credit_codes_.find(code_key); it != credit_codes_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("credit_code: ", code,
                     " is already registered as enterprise ", it->second));
  }
  RETURN_IF_ERROR(CheckLength("category", r.category(), 1, 64));
  RETURN_IF_ERROR(CheckLength("district", r.district(), 0, 64));
  RETURN_IF_ERROR(CheckRelatedProviders(r.related_provider_ids()));
  pb::Enterprise enterprise;
  enterprise.set_enterprise_id(NextId("E", &next_enterprise_, 6));
  enterprise.set_name(r.name());
  enterprise.set_credit_code(code);
  enterprise.set_category(r.category());
  enterprise.set_district(r.district());
  enterprise.set_sme(r.sme());
  *enterprise.mutable_related_provider_ids() = r.related_provider_ids();
  *enterprise.mutable_created_at() = ToProto(now_);
  credit_codes_[code_key] = enterprise.enterprise_id();
  enterprises_[enterprise.enterprise_id()] = enterprise;
  return Share(enterprise);
}

absl::StatusOr<StateMachine::Response> StateMachine::SetRelatedProviders(
    const pb::SetRelatedProvidersRequest& r) {
  ASSIGN_OR_RETURN(const pb::Enterprise* found,
                   FindEnterprise("enterprise_id", r.enterprise_id()));
  RETURN_IF_ERROR(CheckRelatedProviders(r.related_provider_ids()));
  pb::Enterprise& enterprise = enterprises_[found->enterprise_id()];
  *enterprise.mutable_related_provider_ids() = r.related_provider_ids();
  return Share(enterprise);
}

absl::StatusOr<StateMachine::Response> StateMachine::RegisterProvider(
    const pb::RegisterProviderRequest& r) {
  RETURN_IF_ERROR(CheckLength("name", r.name(), 1, 200));
  ASSIGN_OR_RETURN(const std::string code,
                   NormalizeCreditCode("credit_code", r.credit_code()));
  const std::string code_key = absl::StrCat("P:", code);
  if (auto it = credit_codes_.find(code_key); it != credit_codes_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("credit_code: ", code,
                     " is already registered as provider ", it->second));
  }
  pb::Provider provider;
  provider.set_provider_id(NextId("PR", &next_provider_, 6));
  provider.set_name(r.name());
  provider.set_credit_code(code);
  *provider.mutable_created_at() = ToProto(now_);
  credit_codes_[code_key] = provider.provider_id();
  providers_[provider.provider_id()] = provider;
  return Share(*ProviderView(provider.provider_id()));
}

absl::StatusOr<StateMachine::Response> StateMachine::SetClusterState(
    const pb::SetClusterStateRequest& r) {
  RETURN_IF_ERROR(CheckIdRef("cluster_id", r.cluster_id()));
  auto it = clusters_.find(r.cluster_id());
  if (it == clusters_.end()) {
    return absl::NotFoundError(
        absl::StrCat("cluster_id: cluster ", r.cluster_id(), " not found"));
  }
  if (r.state() != pb::CLUSTER_STATE_APPROVED &&
      r.state() != pb::CLUSTER_STATE_DISABLED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "state: must be CLUSTER_STATE_APPROVED or CLUSTER_STATE_DISABLED, got ",
        pb::ClusterState_Name(r.state())));
  }
  pb::Cluster& cluster = it->second.cluster;
  // Approving takes the terms a re-registration proposed (the admin saw
  // them in proposed_inventory).
  const bool takes_proposal = r.state() == pb::CLUSTER_STATE_APPROVED &&
                              !cluster.proposed_inventory().empty();
  if (cluster.state() == r.state() && !takes_proposal) {
    unchanged_ = true;
  } else {
    cluster.set_state(r.state());
    if (takes_proposal) {
      *cluster.mutable_inventory() = std::move(*cluster.mutable_proposed_inventory());
      cluster.clear_proposed_inventory();
    }
    if (r.state() == pb::CLUSTER_STATE_APPROVED)
      RETURN_IF_ERROR(ProcessQueue());
  }
  return Share(*ClusterView(r.cluster_id()));
}

// --- Applications ---

absl::StatusOr<StateMachine::Response> StateMachine::ApplyForVoucher(
    const pb::Principal& p, const pb::ApplyRequest& r) {
  ASSIGN_OR_RETURN(
      const pb::Enterprise* enterprise,
      FindEnterprise("principal.enterprise_id", p.enterprise_id()));
  RETURN_IF_ERROR(CheckIdRef("program_id", r.program_id()));
  auto program = programs_.find(r.program_id());
  if (program == programs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("program_id: program ", r.program_id(), " not found"));
  }
  const pb::Program& prog = program->second;
  RETURN_IF_ERROR(CheckEligible(prog, *enterprise));
  ASSIGN_OR_RETURN(const absl::Time until,
                   FromProto("valid_until", prog.valid_until()));
  if (until <= now_) {
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
  application.set_application_id(NextId("AP", &next_application_, 6));
  application.set_program_id(r.program_id());
  application.set_enterprise_id(enterprise->enterprise_id());
  application.set_requested_fen(r.requested_fen());
  application.set_purpose(r.purpose());
  application.set_state(pb::APPLICATION_STATE_PENDING);
  *application.mutable_created_at() = ToProto(now_);
  applications_[application.application_id()] = application;
  return Share(application);
}

absl::StatusOr<StateMachine::Response> StateMachine::ApproveApplication(
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
  *application.mutable_decided_at() = ToProto(now_);
  return Share(application);
}

absl::StatusOr<StateMachine::Response> StateMachine::RejectApplication(
    const pb::RejectApplicationRequest& r) {
  ASSIGN_OR_RETURN(pb::Application * found,
                   FindPendingApplication(r.application_id()));
  pb::Application& application = *found;
  RETURN_IF_ERROR(CheckLength("reason", r.reason(), 1, 500));
  application.set_state(pb::APPLICATION_STATE_REJECTED);
  application.set_decision_reason(r.reason());
  *application.mutable_decided_at() = ToProto(now_);
  return Share(application);
}

// --- Vouchers ---

int64_t StateMachine::IssuedInYear(const std::string& program_id,
                                   const std::string& enterprise_id,
                                   int year) const {
  int64_t total = 0;
  auto ids = enterprise_vouchers_.find(enterprise_id);
  if (ids == enterprise_vouchers_.end()) return 0;
  for (const std::string& id : ids->second) {
    const pb::Voucher& v = vouchers_.at(id).voucher;
    if (v.program_id() != program_id) continue;
    auto issued_at = FromProto("issued_at", v.issued_at());
    if (issued_at.ok() && ShanghaiYear(*issued_at) == year)
      total += v.face_value_fen();
  }
  return total;
}

absl::Status StateMachine::CheckCap(const pb::Program& program,
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

absl::StatusOr<StateMachine::IssuePlan> StateMachine::PlanIssue(
    const pb::IssueVoucherRequest& r, PendingIssue* pending) const {
  RETURN_IF_ERROR(CheckIdRef("program_id", r.program_id()));
  auto program_it = programs_.find(r.program_id());
  if (program_it == programs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("program_id: program ", r.program_id(), " not found"));
  }
  const pb::Program& program = program_it->second;
  ASSIGN_OR_RETURN(const pb::Enterprise* enterprise,
                   FindEnterprise("enterprise_id", r.enterprise_id()));
  RETURN_IF_ERROR(CheckEligible(program, *enterprise));
  RETURN_IF_ERROR(
      CheckRange("face_value_fen", r.face_value_fen(), 1, kMaxBudgetFen));
  RETURN_IF_ERROR(CheckRange("priority", r.priority(), 0, 1000));
  ASSIGN_OR_RETURN(const absl::Time program_from,
                   FromProto("program.valid_from", program.valid_from()));
  ASSIGN_OR_RETURN(const absl::Time program_until,
                   FromProto("program.valid_until", program.valid_until()));
  absl::Time from = std::max(now_, program_from);
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
  if (until <= now_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "valid_until: ", FormatInstant(until), " is not in the future"));
  }
  const int64_t unissued =
      ledger_.Balance(ProgramBudgetAccount(program.program_id())) -
      pending->by_program[program.program_id()];
  if (r.face_value_fen() > unissued) {
    return absl::FailedPreconditionError(absl::StrCat(
        "program ", program.program_id(), ": insufficient budget: need ",
        FormatFen(r.face_value_fen()), ", have ", FormatFen(unissued),
        " unissued"));
  }
  const int year = ShanghaiYear(now_);
  const std::string cap_key =
      absl::StrCat(program.program_id(), "/", r.enterprise_id());
  RETURN_IF_ERROR(CheckCap(program, r.enterprise_id(), year, r.face_value_fen(),
                           pending->by_cap_key[cap_key]));
  pending->by_program[program.program_id()] += r.face_value_fen();
  pending->by_cap_key[cap_key] += r.face_value_fen();
  return IssuePlan{&program, r.enterprise_id(), r.face_value_fen(), from,
                   until,    r.priority()};
}

absl::StatusOr<pb::Voucher> StateMachine::ExecuteIssue(
    const IssuePlan& plan, const std::string& application_id) {
  const int year = ShanghaiYear(now_);
  ++next_voucher_;
  const std::string id = absl::StrFormat("CV-%d-%06d", year, next_voucher_);
  VoucherRec& rec = vouchers_[id];
  pb::Voucher& v = rec.voucher;
  v.set_voucher_id(id);
  v.set_program_id(plan.program->program_id());
  v.set_enterprise_id(plan.enterprise_id);
  *v.mutable_valid_from() = ToProto(plan.valid_from);
  *v.mutable_valid_until() = ToProto(plan.valid_until);
  v.set_priority(plan.priority);
  v.set_state(pb::VOUCHER_STATE_ACTIVE);
  *v.mutable_issued_at() = ToProto(now_);
  v.set_application_id(application_id);
  enterprise_vouchers_[plan.enterprise_id].push_back(id);
  expiry_index_.insert({plan.valid_until, id});
  pb::JournalEntry issue =
      Entry(pb::ENTRY_KIND_ISSUE, VoucherAccount(id),
            ProgramBudgetAccount(plan.program->program_id()),
            plan.face_value_fen, absl::StrCat("issue/", id));
  issue.set_voucher_id(id);
  issue.set_program_id(plan.program->program_id());
  if (absl::Status s = Post(std::move(issue)); !s.ok()) {
    return absl::InternalError(absl::StrCat("issuing ", id, ": ", s.message()));
  }
  return VoucherViewOf(rec);
}

absl::StatusOr<StateMachine::Response> StateMachine::IssueVoucher(
    const pb::IssueVoucherRequest& r) {
  PendingIssue pending;
  ASSIGN_OR_RETURN(const IssuePlan plan, PlanIssue(r, &pending));
  ASSIGN_OR_RETURN(pb::Voucher voucher, ExecuteIssue(plan, ""));
  return Share(std::move(voucher));
}

absl::StatusOr<StateMachine::Response> StateMachine::BatchIssueVouchers(
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
    unchanged_ = true;
    return Share(std::move(response));
  }
  for (const IssuePlan& plan : plans) {
    ASSIGN_OR_RETURN(*response.add_vouchers(), ExecuteIssue(plan, ""));
  }
  return Share(std::move(response));
}

absl::StatusOr<StateMachine::Response> StateMachine::SuspendVoucher(
    const pb::SuspendVoucherRequest& r) {
  ASSIGN_OR_RETURN(VoucherRec * rec, FindVoucher(r.voucher_id()));
  RETURN_IF_ERROR(CheckLength("reason", r.reason(), 1, 500));
  if (rec->voucher.state() != pb::VOUCHER_STATE_ACTIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("voucher ", r.voucher_id(),
                     ": only an active voucher can be suspended, it is ",
                     pb::VoucherState_Name(rec->voucher.state())));
  }
  rec->voucher.set_state(pb::VOUCHER_STATE_SUSPENDED);
  rec->voucher.set_state_reason(r.reason());
  RETURN_IF_ERROR(
      EndVoucherAllocations(r.voucher_id(), pb::END_REASON_VOUCHER_SUSPENDED));
  return Share(VoucherViewOf(*rec));
}

absl::StatusOr<StateMachine::Response> StateMachine::ResumeVoucher(
    const pb::ResumeVoucherRequest& r) {
  ASSIGN_OR_RETURN(VoucherRec * rec, FindVoucher(r.voucher_id()));
  if (rec->voucher.state() != pb::VOUCHER_STATE_SUSPENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("voucher ", r.voucher_id(),
                     ": only a suspended voucher can be resumed, it is ",
                     pb::VoucherState_Name(rec->voucher.state())));
  }
  rec->voucher.set_state(pb::VOUCHER_STATE_ACTIVE);
  rec->voucher.clear_state_reason();
  UpdateExhausted(*rec);
  return Share(VoucherViewOf(*rec));
}

absl::StatusOr<StateMachine::Response> StateMachine::RevokeVoucher(
    const pb::RevokeVoucherRequest& r) {
  ASSIGN_OR_RETURN(VoucherRec * rec, FindVoucher(r.voucher_id()));
  RETURN_IF_ERROR(CheckLength("reason", r.reason(), 1, 500));
  const pb::VoucherState state = rec->voucher.state();
  if (state == pb::VOUCHER_STATE_REVOKED ||
      state == pb::VOUCHER_STATE_EXPIRED) {
    return absl::FailedPreconditionError(
        absl::StrCat("voucher ", r.voucher_id(), ": already ",
                     pb::VoucherState_Name(state)));
  }
  rec->voucher.set_state(pb::VOUCHER_STATE_REVOKED);
  rec->voucher.set_state_reason(r.reason());
  ASSIGN_OR_RETURN(const absl::Time until,
                   FromProto("valid_until", rec->voucher.valid_until()));
  expiry_index_.erase({until, r.voucher_id()});
  RETURN_IF_ERROR(
      EndVoucherAllocations(r.voucher_id(), pb::END_REASON_VOUCHER_REVOKED));
  const int64_t available = ledger_.Balance(VoucherAccount(r.voucher_id()));
  RETURN_IF_ERROR(ReturnToBudget(*rec, pb::ENTRY_KIND_REVOKE, available,
                                 absl::StrCat("revoke/", r.voucher_id())));
  return Share(VoucherViewOf(*rec));
}

absl::StatusOr<StateMachine::Response> StateMachine::AdjustVoucher(
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
    return absl::FailedPreconditionError(absl::StrCat(
        "voucher ", r.voucher_id(), ": cannot adjust a voucher that is ",
        pb::VoucherState_Name(state)));
  }
  const std::string& program_id = rec->voucher.program_id();
  const std::string voucher_account = VoucherAccount(r.voucher_id());
  const std::string budget_account = ProgramBudgetAccount(program_id);
  const std::string key =
      absl::StrCat("adjust/", r.voucher_id(), "/", rec->adjustments + 1);
  pb::JournalEntry entry;
  if (r.delta_fen() > 0) {
    const pb::Program& program = programs_.at(program_id);
    ASSIGN_OR_RETURN(const absl::Time issued_at,
                     FromProto("issued_at", rec->voucher.issued_at()));
    RETURN_IF_ERROR(CheckCap(program, rec->voucher.enterprise_id(),
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
  RETURN_IF_ERROR(Post(std::move(entry)));
  ++rec->adjustments;
  UpdateExhausted(*rec);
  return Share(VoucherViewOf(*rec));
}

absl::StatusOr<StateMachine::Response> StateMachine::SettleProvider(
    const pb::SettleProviderRequest& r) {
  RETURN_IF_ERROR(CheckIdRef("provider_id", r.provider_id()));
  if (!providers_.contains(r.provider_id())) {
    return absl::NotFoundError(
        absl::StrCat("provider_id: provider ", r.provider_id(), " not found"));
  }
  RETURN_IF_ERROR(CheckLength("reference", r.reference(), 1, 200));
  const int64_t payable = ledger_.Balance(PayableAccount(r.provider_id()));
  if (r.amount_fen() <= 0 || r.amount_fen() > payable) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amount_fen: must be 1..", payable, " (the provider's payable, ",
        FormatFen(payable), "), got ", r.amount_fen()));
  }
  ++next_settlement_;
  pb::JournalEntry entry =
      Entry(pb::ENTRY_KIND_SETTLE, PaidAccount(r.provider_id()),
            PayableAccount(r.provider_id()), r.amount_fen(),
            absl::StrCat("settle/", r.provider_id(), "/", next_settlement_));
  entry.set_provider_id(r.provider_id());
  entry.set_memo(r.reference());
  if (absl::Status s = Post(std::move(entry)); !s.ok()) {
    --next_settlement_;
    return s;
  }
  pb::SettleProviderResponse response;
  *response.mutable_provider() = *ProviderView(r.provider_id());
  *response.mutable_entry() = ledger_.LastPosted();
  return Share(std::move(response));
}

}  // namespace computevoucher::core
