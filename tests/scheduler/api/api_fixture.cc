#include "tests/scheduler/api/api_fixture.h"

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/config.h"
#include "common/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace cv::testing {

void ApiTest::SetUp() {
  std::string tmpl = absl::StrCat(::testing::TempDir(), "/api-XXXXXX");
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  dir_ = tmpl;
  pb::SchedulerConfig config;
  config.set_data_dir(dir_ + "/data");
  config.set_listen_address("127.0.0.1:0");
  // Time moves only when a test says so; ticks run when a test calls
  // TickNow().
  config.set_tick_interval_ms(60'000);
  config.set_usage_grace_s(300);
  config.set_heartbeat_interval_s(10);
  config.set_cluster_silence_s(60);
  absl::StatusOr<std::unique_ptr<scheduler::SchedulerServer>> server =
      scheduler::SchedulerServer::Start(config, clock_);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                          grpc::InsecureChannelCredentials());
  admin_ = pb::AdminService::NewStub(channel);
  enterprise_ = pb::EnterpriseService::NewStub(channel);
  agent_ = pb::AgentService::NewStub(channel);
  absl::StatusOr<std::string> token = ReadFile(server_->admin_token_path());
  ASSERT_TRUE(token.ok()) << token.status();
  admin_token_ = std::string(absl::StripAsciiWhitespace(*token));
}

void ApiTest::TearDown() {
  if (server_) server_->Shutdown(absl::ZeroDuration());
  server_.reset();
  std::filesystem::remove_all(dir_);
}

std::unique_ptr<grpc::ClientContext> ApiTest::As(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty())
    context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(30));
  return context;
}

std::string ApiTest::CreateToken(pb::Role role,
                                 const std::string& enterprise_id,
                                 const std::string& cluster_id,
                                 const std::string& provider_id) {
  pb::CreateTokenRequest request;
  request.set_request_id(NextRequestId());
  request.set_role(role);
  request.set_enterprise_id(enterprise_id);
  request.set_cluster_id(cluster_id);
  request.set_provider_id(provider_id);
  pb::CreateTokenResponse response;
  grpc::Status status =
      admin_->CreateToken(As(admin_token_).get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.secret();
}

void ApiTest::BuildWorld() {
  {
    pb::CreateProgramRequest r;
    r.set_request_id(NextRequestId());
    r.set_name("杭州市人形机器人算力券 2025");
    r.set_issuer("杭州市经济和信息化局");
    r.set_budget_fen(250'000'000'00);
    *r.mutable_valid_from() = ToProto(StartOfDay(absl::CivilDay(2025, 1, 22)));
    *r.mutable_valid_until() = ToProto(EndOfDay(absl::CivilDay(2027, 12, 31)));
    r.set_domestic_ratio_bp(3000);
    r.set_other_ratio_bp(2000);
    r.set_sme_ratio_bp(5000);
    r.set_enterprise_cap_fen(8'000'000'00);
    for (const char* c : {"整机", "软件算法", "零部件", "科研平台"})
      r.add_eligible_categories(c);
    pb::Program p;
    grpc::Status s = admin_->CreateProgram(As(admin_token_).get(), r, &p);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  for (const auto& [name, code] :
       {std::pair{"杭州算力科技有限公司", "91330100716105852F"},
        std::pair{"深圳智算云有限公司", "9144030071526726XG"}}) {
    pb::RegisterProviderRequest r;
    r.set_request_id(NextRequestId());
    r.set_name(name);
    r.set_credit_code(code);
    pb::Provider p;
    grpc::Status s = admin_->RegisterProvider(As(admin_token_).get(), r, &p);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
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
  for (const auto& e : enterprises) {
    pb::RegisterEnterpriseRequest r;
    r.set_request_id(NextRequestId());
    r.set_name(e.name);
    r.set_credit_code(e.code);
    r.set_category(e.category);
    r.set_district("余杭区");
    r.set_sme(e.sme);
    if (e.related) r.add_related_provider_ids(e.related);
    pb::Enterprise out;
    grpc::Status s =
        admin_->RegisterEnterprise(As(admin_token_).get(), r, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  auditor_token_ = CreateToken(pb::ROLE_AUDITOR);
  e1_token_ = CreateToken(pb::ROLE_ENTERPRISE, "E-000001");
  e2_token_ = CreateToken(pb::ROLE_ENTERPRISE, "E-000002");
  e3_token_ = CreateToken(pb::ROLE_ENTERPRISE, "E-000003");
  hz_token_ = CreateToken(pb::ROLE_AGENT, "", "hz-a", "PR-000001");
  sz_token_ = CreateToken(pb::ROLE_AGENT, "", "sz-b", "PR-000002");
  auto add = [](pb::RegisterRequest& r, const char* model,
                pb::HardwareClass cls, int count, int64_t price) {
    pb::GpuModel* m = r.add_inventory();
    m->set_model(model);
    m->set_hardware_class(cls);
    m->set_gpu_count(count);
    m->set_price_fen_per_gpu_hour(price);
  };
  {
    pb::RegisterRequest r;
    r.set_request_id(NextRequestId());
    r.set_region("cn-hangzhou");
    r.set_meter("simulated");
    add(r, "H100", pb::HARDWARE_CLASS_OTHER, 8, 2000);
    add(r, "910B", pb::HARDWARE_CLASS_DOMESTIC, 16, 1200);
    pb::RegisterResponse out;
    grpc::Status s = agent_->Register(As(hz_token_).get(), r, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(out.cluster().state(), pb::CLUSTER_STATE_PENDING_APPROVAL);
  }
  {
    pb::RegisterRequest r;
    r.set_request_id(NextRequestId());
    r.set_region("cn-shenzhen");
    r.set_meter("simulated");
    add(r, "H100", pb::HARDWARE_CLASS_OTHER, 8, 1800);
    pb::RegisterResponse out;
    grpc::Status s = agent_->Register(As(sz_token_).get(), r, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  for (const char* cluster : {"hz-a", "sz-b"}) {
    pb::SetClusterStateRequest r;
    r.set_request_id(NextRequestId());
    r.set_cluster_id(cluster);
    r.set_state(pb::CLUSTER_STATE_APPROVED);
    pb::Cluster out;
    grpc::Status s = admin_->SetClusterState(As(admin_token_).get(), r, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
}

pb::Voucher ApiTest::Issue(const std::string& enterprise_id,
                           int64_t face_value_fen,
                           const std::string& program_id) {
  pb::IssueVoucherRequest r;
  r.set_request_id(NextRequestId());
  r.set_program_id(program_id);
  r.set_enterprise_id(enterprise_id);
  r.set_face_value_fen(face_value_fen);
  pb::Voucher v;
  grpc::Status s = admin_->IssueVoucher(As(admin_token_).get(), r, &v);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return v;
}

}  // namespace cv::testing
