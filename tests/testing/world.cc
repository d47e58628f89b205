#include "tests/testing/world.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace computevoucher::testing {

pb::Principal AdminPrincipal() {
  pb::Principal p;
  p.set_role(pb::ROLE_ADMIN);
  p.set_token_id("TK-admin");
  return p;
}

pb::Principal EnterprisePrincipal(const std::string& enterprise_id) {
  pb::Principal p;
  p.set_role(pb::ROLE_ENTERPRISE);
  p.set_token_id(absl::StrCat("TK-", enterprise_id));
  p.set_enterprise_id(enterprise_id);
  return p;
}

pb::Principal AgentPrincipal(const std::string& cluster_id) {
  pb::Principal p;
  p.set_role(pb::ROLE_AGENT);
  p.set_token_id(absl::StrCat("TK-", cluster_id));
  p.set_cluster_id(cluster_id);
  return p;
}

pb::Command NewCommand(const pb::Principal& principal,
                       const std::string& request_id) {
  pb::Command c;
  *c.mutable_principal() = principal;
  c.set_request_id(request_id);
  return c;
}

absl::Time WorldStart() { return StartOfDay(absl::CivilDay(2025, 3, 1)); }

absl::StatusOr<core::Outcome> Driver::Apply(pb::Command command) {
  command.set_sequence(sequence_ + 1);
  *command.mutable_time() = ToProto(now_);
  absl::StatusOr<core::Outcome> outcome = state_.Apply(command);
  if (outcome.ok() && outcome->changed) {
    ++sequence_;
    log_.push_back(std::move(command));
  }
  return outcome;
}

absl::StatusOr<core::Outcome> Driver::Tick(int64_t usage_grace_s,
                                           int64_t retain_ended_s) {
  pb::Command c;
  c.mutable_tick()->set_usage_grace_s(usage_grace_s);
  c.mutable_tick()->set_retain_ended_s(retain_ended_s);
  c.mutable_tick()->set_retire_at_most(core::kRetiredPerTick);
  if (retain_ended_s > 0)
    c.mutable_tick()->set_retire_vouchers_at_most(core::kRetiredPerTick);
  return Apply(std::move(c));
}

absl::StatusOr<pb::Voucher> Driver::Issue(const std::string& program_id,
                                          const std::string& enterprise_id,
                                          int64_t face_value_fen,
                                          int32_t priority) {
  pb::Command c =
      NewCommand(AdminPrincipal(), absl::StrCat("issue-", NextRequest()));
  pb::IssueVoucherRequest* r = c.mutable_issue_voucher();
  r->set_program_id(program_id);
  r->set_enterprise_id(enterprise_id);
  r->set_face_value_fen(face_value_fen);
  r->set_priority(priority);
  return Call<pb::Voucher>(std::move(c));
}

absl::StatusOr<pb::Allocation> Driver::Allocate(
    const std::string& enterprise_id, const std::string& model, int32_t gpus,
    int64_t duration_s, bool queue_if_busy, const std::string& voucher_id) {
  pb::Command c = NewCommand(EnterprisePrincipal(enterprise_id),
                             absl::StrCat("alloc-", NextRequest()));
  pb::AllocateRequest* r = c.mutable_allocate();
  r->mutable_resources()->set_gpu_model(model);
  r->mutable_resources()->set_gpu_count(gpus);
  r->mutable_resources()->set_max_duration_s(duration_s);
  r->mutable_resources()->set_voucher_id(voucher_id);
  r->set_queue_if_busy(queue_if_busy);
  return Call<pb::Allocation>(std::move(c));
}

absl::StatusOr<pb::Allocation> Driver::Release(
    const std::string& enterprise_id, const std::string& allocation_id) {
  pb::Command c = NewCommand(EnterprisePrincipal(enterprise_id),
                             absl::StrCat("release-", NextRequest()));
  c.mutable_release_allocation()->set_allocation_id(allocation_id);
  return Call<pb::Allocation>(std::move(c));
}

absl::StatusOr<pb::UsageAck> Driver::Report(const std::string& cluster_id,
                                            const std::string& allocation_id,
                                            int64_t sequence, absl::Time start,
                                            absl::Time end, int64_t gpu_ms) {
  pb::Command c = NewCommand(AgentPrincipal(cluster_id),
                             absl::StrCat("usage-", NextRequest()));
  pb::UsageRecord* u = c.mutable_report_usage()->add_records();
  u->set_allocation_id(allocation_id);
  u->set_sequence(sequence);
  *u->mutable_start() = ToProto(start);
  *u->mutable_end() = ToProto(end);
  u->set_gpu_ms(gpu_ms);
  ASSIGN_OR_RETURN(const pb::ReportUsageResponse response,
                   Call<pb::ReportUsageResponse>(std::move(c)));
  return response.acks(0);
}

pb::CreateProgramRequest WorldProgram() {
  pb::CreateProgramRequest r;
  r.set_name("杭州市人形机器人算力券 2025");
  r.set_issuer("杭州市经济和信息化局");
  r.set_budget_fen(250'000'000'00);
  *r.mutable_valid_from() = ToProto(StartOfDay(absl::CivilDay(2025, 1, 22)));
  *r.mutable_valid_until() = ToProto(EndOfDay(absl::CivilDay(2027, 12, 31)));
  r.set_domestic_ratio_bp(3000);
  r.set_other_ratio_bp(2000);
  r.set_sme_ratio_bp(5000);
  r.set_enterprise_cap_fen(8'000'000'00);
  for (const char* category : {"整机", "软件算法", "零部件", "科研平台"}) {
    r.add_eligible_categories(category);
  }
  return r;
}

std::vector<pb::RegisterProviderRequest> WorldProviders() {
  std::vector<pb::RegisterProviderRequest> out;
  for (const auto& [name, code] :
       {std::pair{"杭州算力科技有限公司", "91330100716105852F"},
        std::pair{"深圳智算云有限公司", "9144030071526726XG"}}) {
    pb::RegisterProviderRequest& r = out.emplace_back();
    r.set_name(name);
    r.set_credit_code(code);
  }
  return out;
}

std::vector<pb::RegisterEnterpriseRequest> WorldEnterprises() {
  const struct {
    const char* name;
    const char* code;
    const char* category;
    bool sme;
    const char* related;
  } enterprises[] = {
      {"杭州具身智能机器人有限公司", "914403001922038216", "整机", false,
       nullptr},
      {"福州灵巧手算法有限公司", "91350100M000100Y43", "软件算法", true,
       "PR-000002"},
      {"北京人形机器人创新中心", "91110108551385082Q", "科研平台", false,
       nullptr},
  };
  std::vector<pb::RegisterEnterpriseRequest> out;
  for (const auto& e : enterprises) {
    pb::RegisterEnterpriseRequest& r = out.emplace_back();
    r.set_name(e.name);
    r.set_credit_code(e.code);
    r.set_category(e.category);
    r.set_district("余杭区");
    r.set_sme(e.sme);
    if (e.related != nullptr) r.add_related_provider_ids(e.related);
  }
  return out;
}

std::vector<WorldCluster> WorldClusters() {
  auto add = [](pb::RegisterRequest& r, const char* model,
                pb::HardwareClass cls, int32_t count, int64_t price) {
    pb::GpuModel* m = r.add_inventory();
    m->set_model(model);
    m->set_hardware_class(cls);
    m->set_gpu_count(count);
    m->set_price_fen_per_gpu_hour(price);
  };
  std::vector<WorldCluster> out(2);
  out[0].cluster_id = "hz-a";
  out[0].provider_id = "PR-000001";
  out[0].registration.set_region("cn-hangzhou");
  out[0].registration.set_meter("simulated");
  add(out[0].registration, "H100", pb::HARDWARE_CLASS_OTHER, 8, 2000);
  add(out[0].registration, "910B", pb::HARDWARE_CLASS_DOMESTIC, 16, 1200);
  out[1].cluster_id = "sz-b";
  out[1].provider_id = "PR-000002";
  out[1].registration.set_region("cn-shenzhen");
  out[1].registration.set_meter("simulated");
  add(out[1].registration, "H100", pb::HARDWARE_CLASS_OTHER, 8, 1800);
  return out;
}

absl::Status Driver::BuildWorld() {
  pb::Command program = NewCommand(AdminPrincipal(), "world-program");
  *program.mutable_create_program() = WorldProgram();
  RETURN_IF_ERROR(Apply(std::move(program)).status());
  for (const pb::RegisterProviderRequest& r : WorldProviders()) {
    pb::Command c = NewCommand(
        AdminPrincipal(), absl::StrCat("world-provider-", r.credit_code()));
    *c.mutable_register_provider() = r;
    RETURN_IF_ERROR(Apply(std::move(c)).status());
  }
  for (const pb::RegisterEnterpriseRequest& r : WorldEnterprises()) {
    pb::Command c = NewCommand(
        AdminPrincipal(), absl::StrCat("world-enterprise-", r.credit_code()));
    *c.mutable_register_enterprise() = r;
    RETURN_IF_ERROR(Apply(std::move(c)).status());
  }
  for (const WorldCluster& cluster : WorldClusters()) {
    pb::Command token =
        NewCommand(AdminPrincipal(), "world-token-" + cluster.cluster_id);
    pb::CreateTokenRequest* r = token.mutable_create_token()->mutable_request();
    r->set_role(pb::ROLE_AGENT);
    r->set_cluster_id(cluster.cluster_id);
    r->set_provider_id(cluster.provider_id);
    token.mutable_create_token()->set_secret_sha256(std::string(31, 'k') +
                                                    cluster.cluster_id[0]);
    RETURN_IF_ERROR(Apply(std::move(token)).status());
    pb::Command registration =
        NewCommand(AgentPrincipal(cluster.cluster_id),
                   "world-register-" + cluster.cluster_id);
    *registration.mutable_register_cluster() = cluster.registration;
    RETURN_IF_ERROR(Apply(std::move(registration)).status());
  }
  for (const WorldCluster& cluster : WorldClusters()) {
    pb::Command c =
        NewCommand(AdminPrincipal(), "world-approve-" + cluster.cluster_id);
    c.mutable_set_cluster_state()->set_cluster_id(cluster.cluster_id);
    c.mutable_set_cluster_state()->set_state(pb::CLUSTER_STATE_APPROVED);
    RETURN_IF_ERROR(Apply(std::move(c)).status());
  }
  return absl::OkStatus();
}

}  // namespace computevoucher::testing
