#include "common/grpc_channel.h"

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace computevoucher {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> SchedulerCredentials(
    const computevoucher::v1::TlsConfig& tls) {
  if (tls.ca_file().empty() && tls.cert_file().empty() &&
      tls.key_file().empty()) {
    return grpc::InsecureChannelCredentials();
  }
  if (tls.cert_file().empty() != tls.key_file().empty()) {
    return absl::InvalidArgumentError(
        "tls.cert_file, tls.key_file: a client certificate needs both its "
        "certificate and its key (--tls-cert, --tls-key)");
  }
  grpc::SslCredentialsOptions options;
  auto read = [](const char* field, const std::string& path,
                 std::string* out) -> absl::Status {
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", text.status().message()));
    }
    *out = *std::move(text);
    return absl::OkStatus();
  };
  if (!tls.ca_file().empty()) {
    if (absl::Status s = read("tls.ca_file", tls.ca_file(),
                              &options.pem_root_certs);
        !s.ok()) {
      return s;
    }
  }
  if (!tls.cert_file().empty()) {
    if (absl::Status s = read("tls.cert_file", tls.cert_file(),
                              &options.pem_cert_chain);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = read("tls.key_file", tls.key_file(),
                              &options.pem_private_key);
        !s.ok()) {
      return s;
    }
  }
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::Channel> NewSchedulerChannel(
    const std::string& address,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, credentials, args);
}

}  // namespace computevoucher
