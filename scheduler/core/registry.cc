#include "scheduler/core/registry.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/credit_code.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "scheduler/core/limits.h"

namespace computevoucher::core {
namespace {

constexpr int64_t kMaxBudgetFen = 1'000'000'000'000'000;  // 10^13 CNY
constexpr int kMaxCategories = 64;
constexpr int kMaxRelatedProviders = 100;

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

// The offered inventory of `r`, each model valid and listed once.
absl::StatusOr<google::protobuf::RepeatedPtrField<pb::GpuModel>> Offered(
    const pb::RegisterRequest& r) {
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
  google::protobuf::RepeatedPtrField<pb::GpuModel> offered;
  for (const pb::GpuModel& m : r.inventory()) {
    pb::GpuModel* model = offered.Add();
    model->set_model(m.model());
    model->set_hardware_class(m.hardware_class());
    model->set_gpu_count(m.gpu_count());
    model->set_price_fen_per_gpu_hour(m.price_fen_per_gpu_hour());
  }
  return offered;
}

}  // namespace

absl::StatusOr<Response> Registry::BootstrapAdmin(
    const pb::BootstrapAdminCommand& r) {
  if (!state_.tokens.empty()) {
    return absl::FailedPreconditionError("bootstrap: tokens exist already");
  }
  if (r.secret_sha256().size() != 32) {
    return absl::InvalidArgumentError("secret_sha256: must be 32 bytes");
  }
  pb::Token token;
  token.set_token_id(NextId("TK", &state_.next_token, 6));
  token.set_role(pb::ROLE_ADMIN);
  token.set_description("first admin token, written at bootstrap");
  *token.mutable_created_at() = ToProto(books_.now());
  state_.token_hashes[r.secret_sha256()] = token.token_id();
  state_.tokens[token.token_id()] = token;
  return Share(token);
}

absl::StatusOr<Response> Registry::CreateToken(
    const pb::CreateTokenCommand& c) {
  const pb::CreateTokenRequest& r = c.request();
  if (c.secret_sha256().size() != 32) {
    return absl::InvalidArgumentError("secret_sha256: must be 32 bytes");
  }
  if (state_.token_hashes.contains(c.secret_sha256())) {
    return absl::AlreadyExistsError("token secret: already in use");
  }
  RETURN_IF_ERROR(CheckLength("description", r.description(), 0, 200));
  if (r.has_expires_at()) {
    ASSIGN_OR_RETURN(const absl::Time expires,
                     FromProto("expires_at", r.expires_at()));
    if (expires <= books_.now()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expires_at: ", FormatInstant(expires), " is not in the future"));
    }
  }
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
    if (!state_.providers.contains(r.provider_id())) {
      return absl::NotFoundError(absl::StrCat("provider_id: provider ",
                                              r.provider_id(), " not found"));
    }
    auto owner = state_.cluster_owner.find(r.cluster_id());
    if (owner != state_.cluster_owner.end() &&
        owner->second != r.provider_id()) {
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
  token.set_token_id(NextId("TK", &state_.next_token, 6));
  token.set_role(r.role());
  token.set_enterprise_id(r.enterprise_id());
  token.set_cluster_id(r.cluster_id());
  token.set_provider_id(r.provider_id());
  token.set_description(r.description());
  *token.mutable_created_at() = ToProto(books_.now());
  if (r.has_expires_at()) *token.mutable_expires_at() = r.expires_at();
  if (agent_role) state_.cluster_owner[r.cluster_id()] = r.provider_id();
  state_.token_hashes[c.secret_sha256()] = token.token_id();
  state_.tokens[token.token_id()] = token;
  pb::CreateTokenResponse response;
  *response.mutable_token() = token;
  return Share(response);
}

absl::StatusOr<Response> Registry::RevokeToken(const pb::RevokeTokenRequest& r,
                                               const std::string* revoked_by) {
  RETURN_IF_ERROR(CheckIdRef("token_id", r.token_id()));
  auto it = state_.tokens.find(r.token_id());
  if (it == state_.tokens.end()) {
    return absl::NotFoundError(
        absl::StrCat("token_id: token ", r.token_id(), " not found"));
  }
  if (it->second.revoked()) {
    return absl::FailedPreconditionError(
        absl::StrCat("token ", r.token_id(), ": already revoked"));
  }
  it->second.set_revoked(true);
  if (revoked_by != nullptr) {
    *it->second.mutable_revoked_at() = ToProto(books_.now());
    it->second.set_revoked_by(*revoked_by);
  }
  return Share(it->second);
}

bool Registry::RecordTokenUses(
    const google::protobuf::RepeatedPtrField<pb::TokenUse>& uses) {
  bool changed = false;
  for (const pb::TokenUse& use : uses) {
    auto it = state_.tokens.find(use.token_id());
    // A token is never deleted; an unknown id, a time that does not parse,
    // one after the tick or one within kTokenUseInterval of what is
    // recorded is passed over.
    if (it == state_.tokens.end()) continue;
    const absl::StatusOr<absl::Time> at = FromProto("at", use.at());
    if (!at.ok() || *at > books_.now()) continue;
    pb::Token& token = it->second;
    if (token.has_last_used_at() &&
        *at < FromProto("last_used_at", token.last_used_at())
                      .value_or(absl::InfinitePast()) +
                  kTokenUseInterval) {
      continue;
    }
    *token.mutable_last_used_at() = ToProto(*at);
    changed = true;
  }
  return changed;
}

absl::StatusOr<Response> Registry::CreateProgram(
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
  if (until <= books_.now()) {
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
  program.set_program_id(NextId("P", &state_.next_program, 6));
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
  *program.mutable_created_at() = ToProto(books_.now());
  const std::string& id = program.program_id();
  state_.programs[id] = program;
  pb::JournalEntry fund = Entry(pb::ENTRY_KIND_FUND, ProgramBudgetAccount(id),
                                ProgramSourceAccount(id), r.budget_fen(),
                                absl::StrCat("fund/", id));
  fund.set_program_id(id);
  RETURN_IF_ERROR(books_.Post(std::move(fund)));
  return Share(*ProgramView(id));
}

absl::Status Registry::CheckRelatedProviders(
    const google::protobuf::RepeatedPtrField<std::string>& ids) const {
  if (ids.size() > kMaxRelatedProviders) {
    return absl::InvalidArgumentError(
        absl::StrCat("related_provider_ids: at most ", kMaxRelatedProviders,
                     ", got ", ids.size()));
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& id : ids) {
    RETURN_IF_ERROR(CheckIdRef("related_provider_ids", id));
    if (!state_.providers.contains(id)) {
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

absl::Status Registry::CheckEligible(const pb::Program& program,
                                     const pb::Enterprise& enterprise) const {
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

absl::StatusOr<Response> Registry::RegisterEnterprise(
    const pb::RegisterEnterpriseRequest& r) {
  RETURN_IF_ERROR(CheckLength("name", r.name(), 1, 200));
  ASSIGN_OR_RETURN(const std::string code,
                   NormalizeCreditCode("credit_code", r.credit_code()));
  const std::string code_key = absl::StrCat("E:", code);
  if (auto it = state_.credit_codes.find(code_key);
      it != state_.credit_codes.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("credit_code: ", code,
                     " is already registered as enterprise ", it->second));
  }
  RETURN_IF_ERROR(CheckLength("category", r.category(), 1, 64));
  RETURN_IF_ERROR(CheckLength("district", r.district(), 0, 64));
  RETURN_IF_ERROR(CheckRelatedProviders(r.related_provider_ids()));
  pb::Enterprise enterprise;
  enterprise.set_enterprise_id(NextId("E", &state_.next_enterprise, 6));
  enterprise.set_name(r.name());
  enterprise.set_credit_code(code);
  enterprise.set_category(r.category());
  enterprise.set_district(r.district());
  enterprise.set_sme(r.sme());
  *enterprise.mutable_related_provider_ids() = r.related_provider_ids();
  *enterprise.mutable_created_at() = ToProto(books_.now());
  state_.credit_codes[code_key] = enterprise.enterprise_id();
  state_.enterprises[enterprise.enterprise_id()] = enterprise;
  return Share(enterprise);
}

absl::StatusOr<Response> Registry::SetRelatedProviders(
    const pb::SetRelatedProvidersRequest& r) {
  ASSIGN_OR_RETURN(const pb::Enterprise* found,
                   FindEnterprise("enterprise_id", r.enterprise_id()));
  RETURN_IF_ERROR(CheckRelatedProviders(r.related_provider_ids()));
  pb::Enterprise& enterprise = state_.enterprises[found->enterprise_id()];
  *enterprise.mutable_related_provider_ids() = r.related_provider_ids();
  return Share(enterprise);
}

absl::StatusOr<Response> Registry::RegisterProvider(
    const pb::RegisterProviderRequest& r) {
  RETURN_IF_ERROR(CheckLength("name", r.name(), 1, 200));
  ASSIGN_OR_RETURN(const std::string code,
                   NormalizeCreditCode("credit_code", r.credit_code()));
  const std::string code_key = absl::StrCat("P:", code);
  if (auto it = state_.credit_codes.find(code_key);
      it != state_.credit_codes.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("credit_code: ", code,
                     " is already registered as provider ", it->second));
  }
  pb::Provider provider;
  provider.set_provider_id(NextId("PR", &state_.next_provider, 6));
  provider.set_name(r.name());
  provider.set_credit_code(code);
  *provider.mutable_created_at() = ToProto(books_.now());
  state_.credit_codes[code_key] = provider.provider_id();
  state_.providers[provider.provider_id()] = provider;
  return Share(*ProviderView(provider.provider_id()));
}

absl::StatusOr<Registry::ClusterChange> Registry::SetClusterState(
    const pb::SetClusterStateRequest& r) {
  RETURN_IF_ERROR(CheckIdRef("cluster_id", r.cluster_id()));
  auto it = state_.clusters.find(r.cluster_id());
  if (it == state_.clusters.end()) {
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
  if (cluster.state() == r.state() && !takes_proposal) return ClusterChange{};
  cluster.set_state(r.state());
  if (takes_proposal) {
    *cluster.mutable_inventory() =
        std::move(*cluster.mutable_proposed_inventory());
    cluster.clear_proposed_inventory();
  }
  return ClusterChange{true, r.state() == pb::CLUSTER_STATE_APPROVED};
}

absl::StatusOr<Registry::ClusterChange> Registry::RegisterCluster(
    const pb::Principal& p, const pb::RegisterRequest& r) {
  if (p.role() != pb::ROLE_AGENT || p.cluster_id().empty()) {
    return absl::PermissionDeniedError(
        "register: only an agent token may register a cluster");
  }
  auto owner = state_.cluster_owner.find(p.cluster_id());
  if (owner == state_.cluster_owner.end()) {
    return absl::InternalError(
        absl::StrCat("cluster ", p.cluster_id(), " has no owner"));
  }
  RETURN_IF_ERROR(CheckLength("region", r.region(), 1, 64));
  RETURN_IF_ERROR(CheckLength("agent_version", r.agent_version(), 0, 64));
  // "runtime+telemetry" for operators; the scheduler keeps nothing of it,
  // so any short line will do.
  RETURN_IF_ERROR(
      CheckText("meter", r.meter(), 0, kMaxMeterChars, TextLines::kOne));
  ASSIGN_OR_RETURN(google::protobuf::RepeatedPtrField<pb::GpuModel> offered,
                   Offered(r));
  pb::Cluster& cluster = state_.clusters[p.cluster_id()].cluster;
  const bool is_new = cluster.cluster_id().empty();
  if (is_new) {
    cluster.set_cluster_id(p.cluster_id());
    cluster.set_provider_id(owner->second);
    cluster.set_state(pb::CLUSTER_STATE_PENDING_APPROVAL);
    *cluster.mutable_registered_at() = ToProto(books_.now());
  }
  // A cluster the program office has reviewed sells what it approved: a
  // re-registration that would sell more or dearer waits for its review
  // (a provider must not raise its own subsidy); one that sells less
  // applies at once. Allocations keep the terms they were admitted with.
  const bool reviewed = cluster.state() != pb::CLUSTER_STATE_PENDING_APPROVAL;
  const bool needs_review =
      reviewed && !OffersNoMoreThan(offered, cluster.inventory());
  const bool same_terms = !is_new && SameTerms(offered, cluster.inventory());
  const bool same_proposal = SameTerms(
      needs_review ? offered
                   : google::protobuf::RepeatedPtrField<pb::GpuModel>(),
      cluster.proposed_inventory());
  if (!is_new && cluster.region() == r.region() &&
      (needs_review ? same_proposal : same_terms && same_proposal)) {
    return ClusterChange{};
  }
  cluster.set_region(r.region());
  if (needs_review) {
    *cluster.mutable_proposed_inventory() = std::move(offered);
    return ClusterChange{true, false};
  }
  cluster.clear_proposed_inventory();
  *cluster.mutable_inventory() = std::move(offered);
  return ClusterChange{true, true};
}

absl::StatusOr<Response> Registry::SettleProvider(
    const pb::SettleProviderRequest& r) {
  RETURN_IF_ERROR(CheckIdRef("provider_id", r.provider_id()));
  if (!state_.providers.contains(r.provider_id())) {
    return absl::NotFoundError(
        absl::StrCat("provider_id: provider ", r.provider_id(), " not found"));
  }
  RETURN_IF_ERROR(CheckLength("reference", r.reference(), 1, 200));
  const int64_t payable = books_.Balance(PayableAccount(r.provider_id()));
  if (r.amount_fen() <= 0 || r.amount_fen() > payable) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amount_fen: must be 1..", payable, " (the provider's payable, ",
        FormatFen(payable), "), got ", r.amount_fen()));
  }
  ++state_.next_settlement;
  pb::JournalEntry entry = Entry(
      pb::ENTRY_KIND_SETTLE, PaidAccount(r.provider_id()),
      PayableAccount(r.provider_id()), r.amount_fen(),
      absl::StrCat("settle/", r.provider_id(), "/", state_.next_settlement));
  entry.set_provider_id(r.provider_id());
  entry.set_memo(r.reference());
  if (absl::Status s = books_.Post(std::move(entry)); !s.ok()) {
    --state_.next_settlement;
    return s;
  }
  pb::SettleProviderResponse response;
  *response.mutable_provider() = *ProviderView(r.provider_id());
  *response.mutable_entry() = books_.ledger().LastPosted();
  return Share(std::move(response));
}

const pb::Token* Registry::FindTokenByHash(
    const std::string& secret_sha256) const {
  auto it = state_.token_hashes.find(secret_sha256);
  if (it == state_.token_hashes.end()) return nullptr;
  auto token = state_.tokens.find(it->second);
  return token == state_.tokens.end() ? nullptr : &token->second;
}

std::vector<std::string> Registry::ClusterIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, rec] : state_.clusters) ids.push_back(id);
  return ids;
}

absl::StatusOr<pb::Program> Registry::ProgramView(
    const std::string& program_id) const {
  auto it = state_.programs.find(program_id);
  if (it == state_.programs.end()) {
    return absl::NotFoundError(
        absl::StrCat("program ", program_id, " not found"));
  }
  pb::Program view = it->second;
  view.set_unissued_fen(books_.Balance(ProgramBudgetAccount(program_id)));
  const ProgramTotals totals = books_.Totals(program_id);
  view.set_issued_fen(totals.issued_fen);
  view.set_held_fen(totals.held_fen);
  view.set_charged_fen(totals.charged_fen);
  view.set_returned_fen(totals.returned_fen);
  return view;
}

const pb::Enterprise* Registry::EnterpriseByCreditCode(
    const std::string& code) const {
  auto id = state_.credit_codes.find(absl::StrCat("E:", code));
  if (id == state_.credit_codes.end()) return nullptr;
  auto it = state_.enterprises.find(id->second);
  return it == state_.enterprises.end() ? nullptr : &it->second;
}

absl::StatusOr<pb::Provider> Registry::ProviderView(
    const std::string& provider_id) const {
  auto it = state_.providers.find(provider_id);
  if (it == state_.providers.end()) {
    return absl::NotFoundError(
        absl::StrCat("provider ", provider_id, " not found"));
  }
  pb::Provider view = it->second;
  view.set_payable_fen(books_.Balance(PayableAccount(provider_id)));
  view.set_paid_fen(books_.Balance(PaidAccount(provider_id)));
  return view;
}

pb::Cluster Registry::ClusterViewOf(const ClusterRec& rec) const {
  pb::Cluster view = rec.cluster;
  for (pb::GpuModel& model : *view.mutable_inventory()) {
    auto used = rec.used_gpus.find(model.model());
    const int32_t in_use = used == rec.used_gpus.end() ? 0 : used->second;
    model.set_free_gpus(std::max(0, model.gpu_count() - in_use));
  }
  return view;
}

absl::StatusOr<pb::Cluster> Registry::ClusterView(
    const std::string& cluster_id) const {
  auto it = state_.clusters.find(cluster_id);
  if (it == state_.clusters.end()) {
    return absl::NotFoundError(
        absl::StrCat("cluster ", cluster_id, " not found"));
  }
  return ClusterViewOf(it->second);
}

absl::StatusOr<const pb::Enterprise*> Registry::FindEnterprise(
    const std::string& field, const std::string& id) const {
  RETURN_IF_ERROR(CheckIdRef(field, id));
  auto it = state_.enterprises.find(id);
  if (it == state_.enterprises.end()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": enterprise ", id, " not found"));
  }
  return &it->second;
}

absl::StatusOr<const pb::Program*> Registry::FindProgram(
    const std::string& id) const {
  RETURN_IF_ERROR(CheckIdRef("program_id", id));
  auto it = state_.programs.find(id);
  if (it == state_.programs.end()) {
    return absl::NotFoundError(
        absl::StrCat("program_id: program ", id, " not found"));
  }
  return &it->second;
}

void Registry::AddUsedGpus(const std::string& cluster_id,
                           const std::string& model, int32_t delta) {
  state_.clusters.at(cluster_id).used_gpus[model] += delta;
}

}  // namespace computevoucher::core
