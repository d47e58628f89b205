#include "tests/scheduler/api/api_fixture.h"

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/config.h"
#include "common/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "scheduler/store/open_store.h"
#include "tests/testing/world.h"
#include "tests/testing/world_api.h"

namespace computevoucher::testing {

void ApiTest::SetUp() {
  ASSERT_NO_FATAL_FAILURE(MakeTempDir("api", temp_));
  dir_ = temp_.path();
  config_.set_data_dir(dir_ + "/data");
  config_.set_listen_address("127.0.0.1:0");
  // Time moves only when a test says so; ticks run when a test calls
  // TickNow().
  config_.set_tick_interval_ms(60'000);
  config_.set_usage_grace_s(300);
  config_.set_heartbeat_interval_s(10);
  config_.set_cluster_silence_s(60);
  Configure(config_);
  absl::StatusOr<std::unique_ptr<scheduler::SchedulerServer>> server =
      scheduler::SchedulerServer::Start(config_, clock_);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  Connect();
  absl::StatusOr<std::string> token = ReadFile(server_->admin_token_path());
  ASSERT_TRUE(token.ok()) << token.status();
  admin_token_ = std::string(absl::StripAsciiWhitespace(*token));
}

void ApiTest::Connect() {
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                          grpc::InsecureChannelCredentials());
  admin_ = pb::AdminService::NewStub(channel);
  enterprise_ = pb::EnterpriseService::NewStub(channel);
  agent_ = pb::AgentService::NewStub(channel);
}

void ApiTest::Restart() {
  server_->Shutdown(absl::ZeroDuration());
  server_.reset();
  absl::StatusOr<std::unique_ptr<scheduler::SchedulerServer>> restarted =
      scheduler::SchedulerServer::Start(config_, clock_);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  server_ = *std::move(restarted);
  Connect();
}

void ApiTest::TearDown() {
  if (server_) server_->Shutdown(absl::ZeroDuration());
  server_.reset();
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
  request.set_role(role);
  request.set_enterprise_id(enterprise_id);
  request.set_cluster_id(cluster_id);
  request.set_provider_id(provider_id);
  absl::StatusOr<std::string> secret = CreateTokenThroughApi(
      *admin_, admin_token_, [this] { return NextRequestId(); }, request);
  EXPECT_TRUE(secret.ok()) << secret.status();
  return secret.value_or("");
}

void ApiTest::BuildWorld() {
  absl::Status created = CreateWorldThroughApi(
      *admin_, admin_token_, [this] { return NextRequestId(); });
  ASSERT_TRUE(created.ok()) << created;
  auditor_token_ = CreateToken(pb::ROLE_AUDITOR);
  e1_token_ = CreateToken(pb::ROLE_ENTERPRISE, "E-000001");
  e2_token_ = CreateToken(pb::ROLE_ENTERPRISE, "E-000002");
  e3_token_ = CreateToken(pb::ROLE_ENTERPRISE, "E-000003");
  for (WorldCluster& cluster : WorldClusters()) {
    std::string& token = cluster.cluster_id == "hz-a" ? hz_token_ : sz_token_;
    token = CreateToken(pb::ROLE_AGENT, "", cluster.cluster_id,
                        cluster.provider_id);
    cluster.registration.set_request_id(NextRequestId());
    pb::RegisterResponse registered;
    grpc::Status s =
        agent_->Register(As(token).get(), cluster.registration, &registered);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(registered.cluster().state(), pb::CLUSTER_STATE_PENDING_APPROVAL);
    pb::SetClusterStateRequest approve;
    approve.set_request_id(NextRequestId());
    approve.set_cluster_id(cluster.cluster_id);
    approve.set_state(pb::CLUSTER_STATE_APPROVED);
    pb::Cluster approved;
    s = admin_->SetClusterState(As(admin_token_).get(), approve, &approved);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
}

int64_t ApiTest::StoredCommands() {
  absl::StatusOr<std::unique_ptr<store::Store>> s =
      store::OpenStore(config_, store::OpenMode::kReadOnly);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return -1;
  absl::StatusOr<store::Head> head = (*s)->ReadHead();
  EXPECT_TRUE(head.ok()) << head.status();
  return head.ok() ? head->command_sequence : -1;
}

pb::Voucher ApiTest::Issue(const std::string& enterprise_id,
                           int64_t face_value_fen,
                           const std::string& program_id,
                           absl::Time valid_until) {
  pb::IssueVoucherRequest r;
  r.set_request_id(NextRequestId());
  r.set_program_id(program_id);
  r.set_enterprise_id(enterprise_id);
  r.set_face_value_fen(face_value_fen);
  if (valid_until != absl::InfiniteFuture())
    *r.mutable_valid_until() = ToProto(valid_until);
  pb::Voucher v;
  grpc::Status s = admin_->IssueVoucher(As(admin_token_).get(), r, &v);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return v;
}

}  // namespace computevoucher::testing
