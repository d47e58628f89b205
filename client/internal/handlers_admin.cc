// Handlers of the `admin` commands (AdminService).
#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/internal/commands.h"
#include "client/internal/exit_codes.h"
#include "client/internal/values.h"
#include "client/internal/views.h"
#include "common/config.h"
#include "common/credit_code.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"

namespace computevoucher::client {
namespace {

namespace pb = ::computevoucher::v1;
using Stub = pb::AdminService::Stub;

// The fields of one object to create, from flags or from a CSV row, keyed
// by CSV column name ("credit_code"; the flag is --credit-code), with how
// to name each in an error.
struct Source {
  std::map<std::string, std::string> values;
  std::function<std::string(const std::string& key)> name;

  std::string Get(const std::string& key) const {
    const auto it = values.find(key);
    return it == values.end() ? "" : it->second;
  }
};

std::string FlagName(const std::string& key) {
  return absl::StrCat("--", absl::StrReplaceAll(key, {{"_", "-"}}));
}

Source FromFlags(const Args& args, const std::vector<std::string>& keys) {
  Source source;
  source.name = FlagName;
  for (const std::string& key : keys) {
    const std::string flag = FlagName(key).substr(2);
    if (args.Has(flag)) source.values[key] = args.Value(flag);
  }
  return source;
}

Source FromRow(std::map<std::string, std::string> row, std::string row_name) {
  Source source;
  source.values = std::move(row);
  source.name = [row_name](const std::string& key) {
    return absl::StrCat(row_name, ": ", key);
  };
  return source;
}

std::vector<std::string> List(absl::string_view text) {
  return absl::StrSplit(text, absl::ByAnyChar(",; "), absl::SkipEmpty());
}

const std::vector<std::string>& EnterpriseKeys() {
  static const auto* const kKeys = new std::vector<std::string>{
      "name", "credit_code", "category", "district", "sme", "related"};
  return *kKeys;
}

absl::StatusOr<pb::RegisterEnterpriseRequest> EnterpriseRequest(
    const Source& s) {
  pb::RegisterEnterpriseRequest r;
  r.set_name(s.Get("name"));
  r.set_credit_code(s.Get("credit_code"));
  r.set_category(s.Get("category"));
  r.set_district(s.Get("district"));
  if (!s.Get("sme").empty()) {
    ASSIGN_OR_RETURN(const bool sme, ParseBoolArg(s.name("sme"), s.Get("sme")));
    r.set_sme(sme);
  }
  for (const std::string& id : List(s.Get("related"))) {
    ASSIGN_OR_RETURN(*r.add_related_provider_ids(),
                     ParseIdArg(s.name("related"), id));
  }
  return r;
}

const std::vector<std::string>& IssueKeys() {
  static const auto* const kKeys =
      new std::vector<std::string>{"program",    "enterprise",  "amount",
                                   "valid_from", "valid_until", "priority"};
  return *kKeys;
}

absl::StatusOr<int32_t> Priority(const Source& s) {
  if (s.Get("priority").empty()) return 0;
  ASSIGN_OR_RETURN(
      const int64_t priority,
      ParseCountArg(s.name("priority"), s.Get("priority"), 0, 1000));
  return static_cast<int32_t>(priority);
}

absl::StatusOr<Validity> SourceValidity(const Source& s) {
  return ParseValidity(s.name("valid_from"), s.Get("valid_from"),
                       s.name("valid_until"), s.Get("valid_until"));
}

absl::StatusOr<pb::IssueVoucherRequest> IssueRequest(const Source& s) {
  pb::IssueVoucherRequest r;
  ASSIGN_OR_RETURN(*r.mutable_program_id(),
                   ParseIdArg(s.name("program"), s.Get("program")));
  ASSIGN_OR_RETURN(*r.mutable_enterprise_id(),
                   ParseIdArg(s.name("enterprise"), s.Get("enterprise")));
  ASSIGN_OR_RETURN(const int64_t fen,
                   ParseAmountArg(s.name("amount"), s.Get("amount")));
  r.set_face_value_fen(fen);
  ASSIGN_OR_RETURN(const Validity validity, SourceValidity(s));
  validity.ApplyTo(r);
  ASSIGN_OR_RETURN(const int32_t priority, Priority(s));
  r.set_priority(priority);
  return r;
}

template <typename Request>
absl::StatusOr<Request> WithIdAndReason(const Context& c) {
  Request r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_voucher_id(), c.args.PositionalId(0));
  RETURN_IF_ERROR(CheckLength("--reason", c.args.Value("reason"), 1, 500));
  r.set_reason(c.args.Value("reason"));
  return r;
}

absl::Status SetClusterState(Context& c, pb::ClusterState state) {
  pb::SetClusterStateRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_cluster_id(), c.args.PositionalId(0));
  r.set_state(state);
  return CallAndShow(c, &Stub::SetClusterState, r, ClusterFields());
}

}  // namespace

absl::Status ProgramCreate(Context& c) {
  const Args& a = c.args;
  pb::CreateProgramRequest r;
  r.set_request_id(c.RequestId());
  r.set_name(a.Value("name"));
  r.set_issuer(a.Value("issuer"));
  ASSIGN_OR_RETURN(const int64_t budget, a.Amount("budget"));
  r.set_budget_fen(budget);
  ASSIGN_OR_RETURN(const Validity validity,
                   SourceValidity(FromFlags(a, {"valid_from", "valid_until"})));
  validity.ApplyTo(r);
  ASSIGN_OR_RETURN(
      const int32_t domestic,
      ParsePercentArg("--domestic-ratio", a.Value("domestic-ratio")));
  r.set_domestic_ratio_bp(domestic);
  ASSIGN_OR_RETURN(const int32_t other,
                   ParsePercentArg("--other-ratio", a.Value("other-ratio")));
  r.set_other_ratio_bp(other);
  if (a.Has("sme-ratio")) {
    ASSIGN_OR_RETURN(const int32_t sme,
                     ParsePercentArg("--sme-ratio", a.Value("sme-ratio")));
    r.set_sme_ratio_bp(sme);
  }
  if (a.Has("cap")) {
    ASSIGN_OR_RETURN(const int64_t cap, a.Amount("cap"));
    r.set_enterprise_cap_fen(cap);
  }
  for (const std::string& category : List(a.Value("categories"))) {
    r.add_eligible_categories(category);
  }
  return CallAndShow(c, &Stub::CreateProgram, r, ProgramFields());
}

absl::Status ProgramList(Context& c) {
  return ListAndShow(c, &Stub::ListPrograms, pb::ListProgramsRequest(),
                     &pb::ListProgramsResponse::programs, ProgramFields());
}

absl::Status ProgramShow(Context& c) {
  pb::GetProgramRequest r;
  ASSIGN_OR_RETURN(*r.mutable_program_id(), c.args.PositionalId(0));
  return CallAndShow(c, &Stub::GetProgram, r, ProgramFields());
}

absl::Status EnterpriseAdd(Context& c) {
  ASSIGN_OR_RETURN(pb::RegisterEnterpriseRequest r,
                   EnterpriseRequest(FromFlags(c.args, EnterpriseKeys())));
  r.set_request_id(c.RequestId());
  return CallAndShow(c, &Stub::RegisterEnterprise, r, EnterpriseFields());
}

absl::Status EnterpriseImport(Context& c) {
  std::vector<std::string> row_names;
  ASSIGN_OR_RETURN(
      auto rows,
      ReadCsvFile(c.args.positionals()[0], {"name", "credit_code", "category"},
                  {"district", "sme", "related"}, &row_names));
  // Every row is checked before the first is sent.
  std::vector<pb::RegisterEnterpriseRequest> requests;
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSIGN_OR_RETURN(pb::RegisterEnterpriseRequest r,
                     EnterpriseRequest(FromRow(rows[i], row_names[i])));
    r.set_request_id(c.RequestId(static_cast<int>(i) + 1));
    requests.push_back(std::move(r));
  }
  pb::ListEnterprisesResponse registered;
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::Status s = c.server.Call(&Stub::RegisterEnterprise, requests[i],
                                   registered.add_enterprises());
    if (!s.ok()) {
      registered.mutable_enterprises()->RemoveLast();
      c.printer.Print(
          ListView(EnterpriseFields(), registered.enterprises(), registered));
      return absl::Status(
          s.code(), absl::StrCat(row_names[i], ": ", s.message(),
                                 "\nRows before it were registered; fix the "
                                 "row and import the rest."));
    }
  }
  c.printer.Print(
      ListView(EnterpriseFields(), registered.enterprises(), registered));
  return absl::OkStatus();
}

absl::Status EnterpriseList(Context& c) {
  return ListAndShow(c, &Stub::ListEnterprises, pb::ListEnterprisesRequest(),
                     &pb::ListEnterprisesResponse::enterprises,
                     EnterpriseFields());
}

absl::Status EnterpriseShow(Context& c) {
  pb::GetEnterpriseRequest r;
  ASSIGN_OR_RETURN(const std::string which, c.args.PositionalId(0));
  // A credit code has 18 characters and no dash; the scheduler's ids have
  // one (E-000001).
  if (which.size() == 18 && which.find('-') == std::string::npos) {
    ASSIGN_OR_RETURN(*r.mutable_credit_code(),
                     NormalizeCreditCode("CREDIT_CODE", which));
  } else {
    r.set_enterprise_id(which);
  }
  return CallAndShow(c, &Stub::GetEnterprise, r, EnterpriseFields());
}

absl::Status EnterpriseRelated(Context& c) {
  pb::SetRelatedProvidersRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_enterprise_id(), c.args.PositionalId(0));
  const std::vector<std::string> ids = List(c.args.Value("providers"));
  const auto is_none = [](const std::string& id) {
    return absl::AsciiStrToLower(id) == "none";
  };
  if (ids.empty() ||
      (ids.size() > 1 && std::any_of(ids.begin(), ids.end(), is_none))) {
    return absl::InvalidArgumentError(
        "--providers: list the providers, or say \"none\" alone to clear "
        "them");
  }
  if (!is_none(ids.front())) {
    for (const std::string& id : ids) {
      ASSIGN_OR_RETURN(*r.add_related_provider_ids(),
                       ParseIdArg("--providers", id));
    }
  }
  return CallAndShow(c, &Stub::SetRelatedProviders, r, EnterpriseFields());
}

absl::Status ProviderAdd(Context& c) {
  pb::RegisterProviderRequest r;
  r.set_request_id(c.RequestId());
  r.set_name(c.args.Value("name"));
  r.set_credit_code(c.args.Value("credit-code"));
  return CallAndShow(c, &Stub::RegisterProvider, r, ProviderFields());
}

absl::Status ProviderList(Context& c) {
  return ListAndShow(c, &Stub::ListProviders, pb::ListProvidersRequest(),
                     &pb::ListProvidersResponse::providers, ProviderFields());
}

absl::Status ProviderShow(Context& c) {
  pb::GetProviderRequest r;
  ASSIGN_OR_RETURN(*r.mutable_provider_id(), c.args.PositionalId(0));
  return CallAndShow(c, &Stub::GetProvider, r, ProviderFields());
}

absl::Status ProviderPay(Context& c) {
  pb::SettleProviderRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_provider_id(), c.args.PositionalId(0));
  ASSIGN_OR_RETURN(const int64_t fen, c.args.Amount("amount"));
  r.set_amount_fen(fen);
  RETURN_IF_ERROR(
      CheckLength("--reference", c.args.Value("reference"), 1, 200));
  r.set_reference(c.args.Value("reference"));
  return CallAndShow(c, &Stub::SettleProvider, r, PaymentFields());
}

absl::Status ClusterList(Context& c) {
  pb::ListClustersRequest r;
  ASSIGN_OR_RETURN(const auto state, StateFilter<pb::ClusterState>(c.args));
  r.set_state(state);
  return ListAndShow(c, &Stub::ListClusters, r,
                     &pb::ListClustersResponse::clusters, ClusterFields());
}

absl::Status ClusterApprove(Context& c) {
  return SetClusterState(c, pb::CLUSTER_STATE_APPROVED);
}

absl::Status ClusterDisable(Context& c) {
  return SetClusterState(c, pb::CLUSTER_STATE_DISABLED);
}

absl::Status ApplicationList(Context& c) {
  pb::ListApplicationsRequest r;
  ASSIGN_OR_RETURN(const auto state, StateFilter<pb::ApplicationState>(c.args));
  r.set_state(state);
  RETURN_IF_ERROR(c.args.OptionalId("program", r.mutable_program_id()));
  return ListAndShow(c, &Stub::ListApplications, r,
                     &pb::ListApplicationsResponse::applications,
                     ApplicationFields());
}

absl::Status ApplicationShow(Context& c) {
  pb::GetApplicationRequest r;
  ASSIGN_OR_RETURN(*r.mutable_application_id(), c.args.PositionalId(0));
  return CallAndShow(c, &Stub::GetApplication, r, ApplicationFields());
}

absl::Status ApplicationApprove(Context& c) {
  const Source s = FromFlags(c.args, IssueKeys());
  pb::ApproveApplicationRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_application_id(), c.args.PositionalId(0));
  if (c.args.Has("amount")) {
    ASSIGN_OR_RETURN(const int64_t fen, c.args.Amount("amount"));
    r.set_approved_fen(fen);
  }
  ASSIGN_OR_RETURN(const Validity validity, SourceValidity(s));
  validity.ApplyTo(r);
  ASSIGN_OR_RETURN(const int32_t priority, Priority(s));
  r.set_priority(priority);
  r.set_reason(c.args.Value("reason"));
  return CallAndShow(c, &Stub::ApproveApplication, r, ApplicationFields());
}

absl::Status ApplicationReject(Context& c) {
  pb::RejectApplicationRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_application_id(), c.args.PositionalId(0));
  r.set_reason(c.args.Value("reason"));
  return CallAndShow(c, &Stub::RejectApplication, r, ApplicationFields());
}

absl::Status VoucherIssue(Context& c) {
  ASSIGN_OR_RETURN(pb::IssueVoucherRequest r,
                   IssueRequest(FromFlags(c.args, IssueKeys())));
  r.set_request_id(c.RequestId());
  return CallAndShow(c, &Stub::IssueVoucher, r, VoucherFields());
}

absl::Status VoucherIssueBatch(Context& c) {
  std::vector<std::string> row_names;
  ASSIGN_OR_RETURN(
      auto rows,
      ReadCsvFile(c.args.positionals()[0], {"program", "enterprise", "amount"},
                  {"valid_from", "valid_until", "priority"}, &row_names));
  pb::BatchIssueVouchersRequest r;
  r.set_request_id(c.RequestId());
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSIGN_OR_RETURN(*r.add_rows(),
                     IssueRequest(FromRow(rows[i], row_names[i])));
  }
  pb::BatchIssueVouchersResponse response;
  RETURN_IF_ERROR(c.server.Call(&Stub::BatchIssueVouchers, r, &response));
  if (response.errors_size() > 0) {
    std::string message = "nothing was issued:";
    for (const pb::RowError& e : response.errors()) {
      absl::StrAppend(&message, "\n  ", row_names.at(e.row()), ": ",
                      e.message());
    }
    return WithExitCode(absl::FailedPreconditionError(message), kExitRefused);
  }
  c.printer.Print(ListView(VoucherFields(), response.vouchers(), response));
  return absl::OkStatus();
}

absl::Status VoucherSuspend(Context& c) {
  ASSIGN_OR_RETURN(const auto r, WithIdAndReason<pb::SuspendVoucherRequest>(c));
  return CallAndShow(c, &Stub::SuspendVoucher, r, VoucherFields());
}

absl::Status VoucherResume(Context& c) {
  pb::ResumeVoucherRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_voucher_id(), c.args.PositionalId(0));
  return CallAndShow(c, &Stub::ResumeVoucher, r, VoucherFields());
}

absl::Status VoucherRevoke(Context& c) {
  ASSIGN_OR_RETURN(const auto r, WithIdAndReason<pb::RevokeVoucherRequest>(c));
  return CallAndShow(c, &Stub::RevokeVoucher, r, VoucherFields());
}

absl::Status VoucherList(Context& c) {
  pb::AdminListVouchersRequest r;
  ASSIGN_OR_RETURN(const auto state, StateFilter<pb::VoucherState>(c.args));
  r.set_state(state);
  RETURN_IF_ERROR(c.args.OptionalId("program", r.mutable_program_id()));
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  return ListAndShow(c, &Stub::ListVouchers, r,
                     &pb::AdminListVouchersResponse::vouchers, VoucherFields());
}

absl::Status VoucherAdjust(Context& c) {
  if (c.args.Has("add") == c.args.Has("remove")) {
    return absl::InvalidArgumentError(
        "--add, --remove: give exactly one of them");
  }
  ASSIGN_OR_RETURN(auto r, WithIdAndReason<pb::AdjustVoucherRequest>(c));
  const bool add = c.args.Has("add");
  ASSIGN_OR_RETURN(const int64_t fen, c.args.Amount(add ? "add" : "remove"));
  r.set_delta_fen(add ? fen : -fen);
  return CallAndShow(c, &Stub::AdjustVoucher, r, VoucherFields());
}

absl::Status AdminAllocationList(Context& c) {
  pb::AdminListAllocationsRequest r;
  ASSIGN_OR_RETURN(const auto state, StateFilter<pb::AllocationState>(c.args));
  r.set_state(state);
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  RETURN_IF_ERROR(c.args.OptionalId("cluster", r.mutable_cluster_id()));
  return ListAndShow(c, &Stub::ListAllocations, r,
                     &pb::AdminListAllocationsResponse::allocations,
                     AllocationFields());
}

absl::Status JournalList(Context& c) {
  const Args& a = c.args;
  pb::ListJournalRequest r;
  if (a.Has("from-sequence")) {
    ASSIGN_OR_RETURN(
        const int64_t from,
        a.Count("from-sequence", 1, std::numeric_limits<int64_t>::max()));
    r.set_from_sequence(from);
  }
  RETURN_IF_ERROR(a.OptionalId("voucher", r.mutable_voucher_id()));
  RETURN_IF_ERROR(a.OptionalId("allocation", r.mutable_allocation_id()));
  int64_t limit = 100;
  if (a.Has("limit")) {
    ASSIGN_OR_RETURN(limit, a.Count("limit", 1, 1000));
  }
  r.mutable_page()->set_page_size(static_cast<int32_t>(limit));
  pb::ListJournalResponse page;
  RETURN_IF_ERROR(c.server.Call(&Stub::ListJournal, r, &page));
  c.printer.Print(ListView(JournalEntryFields(), page.entries(), page));
  if (!page.next_page_token().empty() && page.entries_size() > 0) {
    c.err << "The page is full; more entries may follow: --from-sequence "
          << page.entries(page.entries_size() - 1).sequence() + 1 << "\n";
  }
  return absl::OkStatus();
}

absl::Status TokenCreate(Context& c) {
  const Args& a = c.args;
  pb::CreateTokenRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(const pb::Role role,
                   ParseEnumArg<pb::Role>("--role", a.Value("role")));
  r.set_role(role);
  const auto require = [&](const char* flag, bool needed) -> absl::Status {
    if (a.Has(flag) == needed) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", needed ? "required" : "not allowed",
                     " with --role ", a.Value("role")));
  };
  RETURN_IF_ERROR(require("enterprise", role == pb::ROLE_ENTERPRISE));
  RETURN_IF_ERROR(require("cluster", role == pb::ROLE_AGENT));
  RETURN_IF_ERROR(require("provider", role == pb::ROLE_AGENT));
  for (const auto& [flag, field] :
       {std::pair{"enterprise", r.mutable_enterprise_id()},
        std::pair{"cluster", r.mutable_cluster_id()},
        std::pair{"provider", r.mutable_provider_id()}}) {
    if (a.Has(flag)) {
      ASSIGN_OR_RETURN(*field, a.Id(flag));
    }
  }
  r.set_description(a.Value("description"));
  if (a.Has("expires")) {
    ASSIGN_OR_RETURN(const absl::CivilDay last, a.Date("expires"));
    if (EndOfDay(last) <= absl::Now()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--expires: ", a.Value("expires"), " has ended; give a later day"));
    }
    *r.mutable_expires_at() = ToProto(EndOfDay(last));
  }
  pb::CreateTokenResponse created;
  RETURN_IF_ERROR(c.server.Call(&Stub::CreateToken, r, &created));
  if (a.Has("secret-file")) {
    // The secret goes to the file only, never to the terminal.
    const std::string path = a.Value("secret-file");
    if (absl::Status s = WritePrivateFile(path, created.secret() + "\n");
        !s.ok()) {
      return absl::InternalError(absl::StrCat(
          "token ", created.token().token_id(),
          " was created but its secret could not be written: ", s.message(),
          "; revoke it (voucherctl admin token revoke ",
          created.token().token_id(), ") and create another"));
    }
    created.clear_secret();
    c.printer.Print(RecordView(CreatedTokenFields(), created));
    c.err << "Secret written to " << path << " (mode 0600).\n";
    return absl::OkStatus();
  }
  c.printer.Print(RecordView(CreatedTokenFields(), created));
  if (created.secret().empty()) {
    c.err << "This request id was answered before: the token exists, but "
             "its secret was shown then and cannot be shown again.\n";
  } else {
    c.err << "Store the secret now: it is shown only this once.\n";
  }
  return absl::OkStatus();
}

absl::Status TokenRevoke(Context& c) {
  pb::RevokeTokenRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_token_id(), c.args.PositionalId(0));
  return CallAndShow(c, &Stub::RevokeToken, r, TokenFields());
}

absl::Status TokenList(Context& c) {
  return ListAndShow(c, &Stub::ListTokens, pb::ListTokensRequest(),
                     &pb::ListTokensResponse::tokens, TokenFields());
}

absl::Status Settlement(Context& c) {
  pb::GetSettlementRequest r;
  RETURN_IF_ERROR(SetPeriod(c.args, true, r.mutable_period_start(),
                            r.mutable_period_end()));
  RETURN_IF_ERROR(c.args.OptionalId("provider", r.mutable_provider_id()));
  pb::Settlement settlement;
  RETURN_IF_ERROR(c.server.Call(&Stub::GetSettlement, r, &settlement));
  c.printer.Print(SettlementView(settlement));
  return absl::OkStatus();
}

absl::Status AuditVerify(Context& c) {
  pb::VerifyJournalResponse result;
  RETURN_IF_ERROR(
      c.server.Call(&Stub::VerifyJournal, pb::VerifyJournalRequest(), &result));
  c.printer.Print(RecordView(VerifyFields(), result));
  if (!result.ok()) {
    return WithExitCode(absl::DataLossError(absl::StrCat(
                            "the journal fails verification: ",
                            result.violations_size(), " violations")),
                        kExitRefused);
  }
  return absl::OkStatus();
}

}  // namespace computevoucher::client
