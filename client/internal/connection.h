// Where voucherctl connects and with what token, and the calls it makes:
// settings come from flags, then the environment (VOUCHERCTL_ENDPOINT,
// VOUCHERCTL_TOKEN), then the config file written by `voucherctl login`.
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_CONNECTION_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_CONNECTION_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/internal/cli.h"
#include "common/status_macros.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/config.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace cv::client {

inline constexpr char kDefaultEndpoint[] = "127.0.0.1:7443";

// $XDG_CONFIG_HOME/voucherctl/config, or ~/.config/voucherctl/config.
std::string ConfigPath();

// The settings in effect, and where the endpoint came from (for messages).
struct Settings {
  computevoucher::v1::ClientConfig config;
  std::string endpoint_source;
};

// Merges --endpoint/--token/--tls-* flags of `args`, the environment and
// the config file (when it exists), in that order of precedence. Errors
// name the config file when it cannot be parsed.
absl::StatusOr<Settings> ResolveSettings(const Args& args);

// Writes `config` to ConfigPath() (mode 0600, its folder created 0700),
// replacing what was there.
absl::Status WriteConfig(const computevoucher::v1::ClientConfig& config);

// A lazily opened channel to the scheduler. Errors of calls carry exit
// codes: kExitUnreachable when no answer came, kExitRefused (prefixed with
// the gRPC code in words) when the server refused.
class Connection {
 public:
  explicit Connection(Settings settings) : settings_(std::move(settings)) {}

  // Calls `method` of AdminService::Stub or EnterpriseService::Stub.
  template <typename Stub, typename Request, typename Response>
  absl::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                 const Request&, Response*),
                    const Request& request, Response* response) {
    RETURN_IF_ERROR(Open());
    grpc::ClientContext context;
    Prepare(context);
    return Convert((StubFor(static_cast<Stub*>(nullptr)).*method)(
        &context, request, response));
  }

  // Calls a List method page by page and merges the pages into `all`.
  template <typename Stub, typename Request, typename Response>
  absl::Status CallAllPages(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                         const Request&,
                                                         Response*),
                            Request request, Response* all) {
    request.mutable_page()->set_page_size(1000);
    while (true) {
      Response page;
      RETURN_IF_ERROR(Call(method, request, &page));
      const std::string next = page.next_page_token();
      all->MergeFrom(page);
      if (next.empty()) break;
      request.mutable_page()->set_page_token(next);
    }
    all->clear_next_page_token();
    return absl::OkStatus();
  }

 private:
  absl::Status Open();
  void Prepare(grpc::ClientContext& context) const;
  absl::Status Convert(const grpc::Status& status) const;
  computevoucher::v1::AdminService::Stub& StubFor(
      computevoucher::v1::AdminService::Stub*) {
    return *admin_;
  }
  computevoucher::v1::EnterpriseService::Stub& StubFor(
      computevoucher::v1::EnterpriseService::Stub*) {
    return *enterprise_;
  }

  const Settings settings_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<computevoucher::v1::AdminService::Stub> admin_;
  std::unique_ptr<computevoucher::v1::EnterpriseService::Stub> enterprise_;
};

}  // namespace cv::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_CONNECTION_H_
