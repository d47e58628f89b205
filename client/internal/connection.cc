#include "client/internal/connection.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/internal/exit_codes.h"
#include "common/config.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace cv::client {
namespace {

namespace pb = ::computevoucher::v1;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string ConfigDir() {
  const std::string xdg = Env("XDG_CONFIG_HOME");
  return absl::StrCat(xdg.empty() ? Env("HOME") + "/.config" : xdg,
                      "/voucherctl");
}

// Sets `*field` from the first non-empty of flag and environment variable,
// and returns where it came from ("" when neither was set).
std::string Override(const Args& args, const char* flag, const char* env,
                     std::string* field) {
  if (args.Has(flag)) {
    *field = args.Value(flag);
    return absl::StrCat("--", flag);
  }
  if (env != nullptr && !Env(env).empty()) {
    *field = Env(env);
    return env;
  }
  return "";
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(
    const pb::TlsConfig& tls) {
  if (tls.ca_file().empty() && tls.cert_file().empty() &&
      tls.key_file().empty()) {
    return grpc::InsecureChannelCredentials();
  }
  if (tls.cert_file().empty() != tls.key_file().empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert, --tls-key: a client certificate needs both files");
  }
  grpc::SslCredentialsOptions options;
  if (!tls.ca_file().empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs, ReadFile(tls.ca_file()));
  }
  if (!tls.cert_file().empty()) {
    ASSIGN_OR_RETURN(options.pem_cert_chain, ReadFile(tls.cert_file()));
    ASSIGN_OR_RETURN(options.pem_private_key, ReadFile(tls.key_file()));
  }
  return grpc::SslCredentials(options);
}

// "PERMISSION_DENIED" -> "permission denied".
std::string CodeInWords(grpc::StatusCode code) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(absl::StatusCodeToString(
                                 static_cast<absl::StatusCode>(code))),
                             {{"_", " "}});
}

}  // namespace

std::string ConfigPath() { return ConfigDir() + "/config"; }

absl::StatusOr<Settings> ResolveSettings(const Args& args) {
  Settings s;
  const std::string path = ConfigPath();
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    RETURN_IF_ERROR(LoadTextProto(path, &s.config));
    if (!s.config.endpoint().empty()) s.endpoint_source = path;
  }
  pb::ClientConfig& c = s.config;
  if (std::string from = Override(args, "endpoint", "VOUCHERCTL_ENDPOINT",
                                  c.mutable_endpoint());
      !from.empty()) {
    s.endpoint_source = from;
  }
  Override(args, "token", "VOUCHERCTL_TOKEN", c.mutable_token());
  Override(args, "tls-ca", nullptr, c.mutable_tls()->mutable_ca_file());
  Override(args, "tls-cert", nullptr, c.mutable_tls()->mutable_cert_file());
  Override(args, "tls-key", nullptr, c.mutable_tls()->mutable_key_file());
  if (c.endpoint().empty()) {
    c.set_endpoint(kDefaultEndpoint);
    s.endpoint_source = "the default";
  }
  return s;
}

absl::Status WriteConfig(const pb::ClientConfig& config) {
  const std::string dir = ConfigDir();
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (!error) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, error);
  }
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat(dir, ": cannot create: ", error.message()));
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  const std::string path = ConfigPath();
  // WritePrivateFile never replaces a file, so a second login writes a new
  // file and renames it over the old one.
  const std::string temporary = path + ".new";
  std::remove(temporary.c_str());
  RETURN_IF_ERROR(WritePrivateFile(temporary, text));
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": cannot replace: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status Connection::Open() {
  if (channel_ != nullptr) return absl::OkStatus();
  if (settings_.config.token().empty()) {
    return absl::InvalidArgumentError(
        "no token: pass --token, set VOUCHERCTL_TOKEN, or run 'voucherctl "
        "login --endpoint HOST:PORT --token TOKEN' once");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                   Credentials(settings_.config.tls()));
  channel_ = grpc::CreateChannel(settings_.config.endpoint(), credentials);
  admin_ = pb::AdminService::NewStub(channel_);
  enterprise_ = pb::EnterpriseService::NewStub(channel_);
  return absl::OkStatus();
}

void Connection::Prepare(grpc::ClientContext& context) const {
  context.AddMetadata("authorization",
                      absl::StrCat("Bearer ", settings_.config.token()));
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
}

absl::Status Connection::Convert(const grpc::Status& status) const {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  // UNAVAILABLE from a server that answered (e.g. a standby replica) is a
  // refusal; from a channel that never connected, nobody answered.
  const bool unreachable =
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
       channel_->GetState(false) != GRPC_CHANNEL_READY);
  if (unreachable) {
    return WithExitCode(
        absl::Status(code,
                     absl::StrCat("cannot reach the scheduler at ",
                                  settings_.config.endpoint(), " (from ",
                                  settings_.endpoint_source,
                                  "): ", CodeInWords(status.error_code()), ": ",
                                  status.error_message(),
                                  "\nCheck that the scheduler runs there, or "
                                  "point --endpoint at it.")),
        kExitUnreachable);
  }
  std::string message = absl::StrCat(CodeInWords(status.error_code()), ": ",
                                     status.error_message());
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    absl::StrAppend(&message,
                    "\nCheck the token (--token, VOUCHERCTL_TOKEN or "
                    "'voucherctl login').");
  }
  return WithExitCode(absl::Status(code, message), kExitRefused);
}

}  // namespace cv::client
