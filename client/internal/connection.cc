#include "client/internal/connection.h"

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "client/internal/exit_codes.h"
#include "client/internal/profiles.h"
#include "client/internal/values.h"
#include "common/config.h"
#include "common/grpc_channel.h"
#include "common/leader.h"
#include "grpcpp/security/credentials.h"

namespace computevoucher::client {
namespace {

namespace pb = ::computevoucher::v1;

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

// "PERMISSION_DENIED" -> "permission denied".
std::string CodeInWords(grpc::StatusCode code) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(absl::StatusCodeToString(
                                 static_cast<absl::StatusCode>(code))),
                             {{"_", " "}});
}

// The server's message, after its code in words unless it says them
// already ("allocation_id: allocation AL-1 not found", not "not found: ...
// not found").
std::string WithCode(const grpc::Status& status) {
  const std::string words = CodeInWords(status.error_code());
  if (absl::StrContains(status.error_message(), words)) {
    return status.error_message();
  }
  return absl::StrCat(words, ": ", status.error_message());
}

// A host given alone ("localhost", "10.0.0.5", "[::1]", "::1") at the
// scheduler's port; gRPC target URIs ("dns:///h:p", "unix:/path",
// "ipv4:1.2.3.4:5") and host:port as given.
std::string WithDefaultPort(std::string address) {
  if (absl::StrContains(address, "://") || absl::StartsWith(address, "unix:") ||
      absl::StartsWith(address, "ipv4:") ||
      absl::StartsWith(address, "ipv6:")) {
    return address;
  }
  if (!address.empty() && address.front() == '[') {
    if (!absl::StrContains(address, "]:")) {
      absl::StrAppend(&address, ":", kDefaultPort);
    }
    return address;
  }
  const size_t colons = std::count(address.begin(), address.end(), ':');
  if (colons == 0) return absl::StrCat(address, ":", kDefaultPort);
  if (colons > 1) return absl::StrCat("[", address, "]:", kDefaultPort);
  return address;
}

}  // namespace

absl::StatusOr<Settings> ResolveSettings(const Args& args) {
  Settings s;
  ASSIGN_OR_RETURN(const pb::ClientConfig file, ReadConfig());
  ASSIGN_OR_RETURN(s.profile, ChooseProfile(args, file));
  const std::string path =
      s.profile.name == kDefaultProfile
          ? ConfigPath()
          : absl::StrCat(ConfigPath(), " (profile ", s.profile.name, ")");
  if (std::optional<pb::ClientConfig> saved =
          FindProfile(file, s.profile.name)) {
    s.config = *std::move(saved);
    if (!s.config.endpoint().empty()) s.endpoint_source = path;
  } else {
    s.profile_status =
        absl::InvalidArgumentError(NoSuchProfile(s.profile, file));
  }
  pb::ClientConfig& c = s.config;
  const bool env = !s.profile.named;
  if (std::string from =
          Override(args, "endpoint", env ? "VOUCHERCTL_ENDPOINT" : nullptr,
                   c.mutable_endpoint());
      !from.empty()) {
    s.endpoint_source = from;
  }
  Override(args, "token", env ? "VOUCHERCTL_TOKEN" : nullptr,
           c.mutable_token());
  Override(args, "tls-ca", nullptr, c.mutable_tls()->mutable_ca_file());
  Override(args, "tls-cert", nullptr, c.mutable_tls()->mutable_cert_file());
  Override(args, "tls-key", nullptr, c.mutable_tls()->mutable_key_file());
  if (c.endpoint().empty()) {
    c.set_endpoint(kDefaultEndpoint);
    s.endpoint_source = "the default";
  }
  ASSIGN_OR_RETURN(s.endpoints,
                   ParseAddressList(s.endpoint_source == path
                                        ? absl::StrCat(path, ": endpoint")
                                        : s.endpoint_source,
                                    c.endpoint()));
  for (std::string& e : s.endpoints) e = WithDefaultPort(std::move(e));
  if (args.Has("leader-wait")) {
    ASSIGN_OR_RETURN(s.leader_wait, ParseDurationArg("--leader-wait",
                                                     args.Value("leader-wait"),
                                                     absl::ZeroDuration()));
  }
  return s;
}

absl::Status Connection::Open() {
  if (credentials_ != nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(settings_.profile_status);
  if (settings_.config.token().empty()) {
    return absl::InvalidArgumentError(
        "no token: pass --token, set VOUCHERCTL_TOKEN, or run 'voucherctl "
        "login --endpoint HOST:PORT --token TOKEN' once");
  }
  ASSIGN_OR_RETURN(credentials_, SchedulerCredentials(settings_.config.tls()));
  return absl::OkStatus();
}

absl::Status Connection::CallLeader(const Attempt& attempt) {
  RETURN_IF_ERROR(Open());
  const std::vector<std::string>& list = settings_.endpoints;
  const absl::Time give_up = absl::Now() + settings_.leader_wait;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    // One round: the replica that led last, then the others in list order.
    std::vector<std::string> round;
    if (!preferred_.empty()) round.push_back(preferred_);
    for (const std::string& address : list) {
      if (address != preferred_) round.push_back(address);
    }
    Try last;
    std::optional<Try> last_answer;
    int hops = 0;
    for (const std::string& first : round) {
      std::string address = first;
      while (true) {
        last = TryOn(address, attempt);
        if (last.status.error_code() != grpc::StatusCode::UNAVAILABLE) {
          if (last.answered) preferred_ = address;
          return Convert(last);
        }
        if (address == preferred_ && !last.answered) preferred_.clear();
        if (last.answered) last_answer = last;
        if (last.leader.empty() || last.leader == address ||
            hops == kMaxLeaderHops) {
          break;
        }
        ++hops;
        address = last.leader;
      }
    }
    // Nobody leads: a takeover takes a few seconds. A single address where
    // nothing listens has nobody to take over, so it fails at once.
    const absl::Time now = absl::Now();
    if ((list.size() < 2 && !last_answer.has_value()) || now >= give_up) {
      return Failed(last, last_answer ? &*last_answer : nullptr);
    }
    if (!waiting_noted_) {
      waiting_noted_ = true;
      notes_ << "voucherctl: no scheduler replica leads at the moment; "
                "retrying for up to "
             << absl::FormatDuration(settings_.leader_wait)
             << " (--leader-wait)\n";
    }
    absl::SleepFor(std::min(backoff, give_up - now));
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

Connection::Try Connection::TryOn(const std::string& address,
                                  const Attempt& attempt) {
  Replica& replica = replicas_[address];
  if (replica.channel == nullptr) {
    replica.channel = NewSchedulerChannel(address, credentials_);
    replica.admin = pb::AdminService::NewStub(replica.channel);
    replica.enterprise = pb::EnterpriseService::NewStub(replica.channel);
  }
  grpc::ClientContext context;
  Prepare(context);
  Try t;
  t.address = address;
  t.status = attempt(replica, context);
  if (t.status.ok()) {
    t.answered = true;
    return t;
  }
  if (t.status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    t.leader = LeaderHint(context);
  }
  // UNAVAILABLE from a server that answered (a follower) is a refusal; from
  // a channel that never connected, nobody answered.
  t.answered = !t.leader.empty() ||
               !(t.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                 (t.status.error_code() == grpc::StatusCode::UNAVAILABLE &&
                  replica.channel->GetState(false) != GRPC_CHANNEL_READY));
  if (!t.answered) replicas_.erase(address);
  return t;
}

void Connection::Prepare(grpc::ClientContext& context) const {
  context.AddMetadata("authorization",
                      absl::StrCat("Bearer ", settings_.config.token()));
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
}

absl::Status Connection::Convert(const Try& t) const {
  const grpc::Status& status = t.status;
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (!t.answered) {
    return WithExitCode(
        absl::Status(code,
                     absl::StrCat("cannot reach the scheduler at ", t.address,
                                  " (from ", settings_.endpoint_source,
                                  "): ", CodeInWords(status.error_code()), ": ",
                                  status.error_message(),
                                  "\nCheck that the scheduler runs there, or "
                                  "point --endpoint at it.")),
        kExitUnreachable);
  }
  std::string message = WithCode(status);
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    absl::StrAppend(&message,
                    "\nCheck the token (--token, VOUCHERCTL_TOKEN or "
                    "'voucherctl login').");
  }
  return WithExitCode(absl::Status(code, message), kExitRefused);
}

absl::Status Connection::Failed(const Try& last, const Try* last_answer) const {
  const std::vector<std::string>& list = settings_.endpoints;
  if (last_answer == nullptr && list.size() < 2) return Convert(last);
  const std::string within = absl::StrCat(
      " within --leader-wait ", absl::FormatDuration(settings_.leader_wait));
  if (last_answer == nullptr) {
    const grpc::Status& status = last.status;
    return WithExitCode(
        absl::Status(
            static_cast<absl::StatusCode>(status.error_code()),
            absl::StrCat("cannot reach the scheduler at any of ",
                         absl::StrJoin(list, ", "), " (from ",
                         settings_.endpoint_source, ")", within, ": ",
                         CodeInWords(status.error_code()), ": ",
                         status.error_message(),
                         "\nCheck that the scheduler runs there, or point "
                         "--endpoint at it.")),
        kExitUnreachable);
  }
  const grpc::Status& status = last_answer->status;
  return WithExitCode(
      absl::Status(
          static_cast<absl::StatusCode>(status.error_code()),
          absl::StrCat(WithCode(status), " (answered by ", last_answer->address,
                       ")\nNo replica of ", absl::StrJoin(list, ", "), " led",
                       within, ".")),
      kExitRefused);
}

}  // namespace computevoucher::client
