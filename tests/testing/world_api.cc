#include "tests/testing/world_api.h"

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "grpcpp/client_context.h"

namespace computevoucher::testing {
namespace {

std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(30));
  return context;
}

absl::Status Checked(const char* rpc, const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(rpc, ": ", s.error_message()));
}

}  // namespace

absl::Status CreateWorldThroughApi(
    pb::AdminService::StubInterface& admin, const std::string& admin_token,
    const std::function<std::string()>& next_request_id,
    pb::CreateProgramRequest program) {
  program.set_request_id(next_request_id());
  pb::Program created;
  RETURN_IF_ERROR(
      Checked("CreateProgram",
              admin.CreateProgram(As(admin_token).get(), program, &created)));
  for (pb::RegisterProviderRequest r : WorldProviders()) {
    r.set_request_id(next_request_id());
    pb::Provider p;
    RETURN_IF_ERROR(
        Checked("RegisterProvider",
                admin.RegisterProvider(As(admin_token).get(), r, &p)));
  }
  for (pb::RegisterEnterpriseRequest r : WorldEnterprises()) {
    r.set_request_id(next_request_id());
    pb::Enterprise e;
    RETURN_IF_ERROR(
        Checked("RegisterEnterprise",
                admin.RegisterEnterprise(As(admin_token).get(), r, &e)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CreateTokenThroughApi(
    pb::AdminService::StubInterface& admin, const std::string& admin_token,
    const std::function<std::string()>& next_request_id,
    pb::CreateTokenRequest request) {
  request.set_request_id(next_request_id());
  pb::CreateTokenResponse response;
  RETURN_IF_ERROR(
      Checked("CreateToken",
              admin.CreateToken(As(admin_token).get(), request, &response)));
  return response.secret();
}

}  // namespace computevoucher::testing
