// Where voucherctl connects and with what token, and the calls it makes:
// settings come from flags, then the environment (VOUCHERCTL_ENDPOINT,
// VOUCHERCTL_TOKEN), then the config file written by `voucherctl login`.
// The endpoint may list several scheduler replicas; calls go to the one
// that leads (common/leader.h).
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_CONNECTION_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_CONNECTION_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/internal/cli.h"
#include "client/internal/profiles.h"
#include "common/status_macros.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/config.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"

namespace computevoucher::client {

inline constexpr char kDefaultEndpoint[] = "127.0.0.1:7443";
// The port of an endpoint given as a host alone ("localhost").
inline constexpr char kDefaultPort[] = "7443";
// How long a call waits for a replica to lead (--leader-wait).
inline constexpr absl::Duration kDefaultLeaderWait = absl::Seconds(10);
// Leaders named in a row that a call follows before it counts the round as
// failed, so that replicas naming each other cannot loop.
inline constexpr int kMaxLeaderHops = 3;

// The settings in effect, and where the endpoint came from (for messages).
struct Settings {
  // The profile chosen, and why a command may not use it (a profile the
  // file lacks; only login creates one).
  ProfileChoice profile;
  absl::Status profile_status;
  // Its endpoint, token and TLS settings, with the flags' and the
  // environment's applied.
  computevoucher::v1::ClientConfig config;
  std::string endpoint_source;
  // config.endpoint() split at commas: the replicas, in the order given.
  std::vector<std::string> endpoints;
  absl::Duration leader_wait = kDefaultLeaderWait;
};

// Merges --endpoint/--token/--tls-* flags of `args`, the environment and
// the chosen profile of the config file (when it exists), in that order of
// precedence, and reads
// --leader-wait. Errors (InvalidArgument) name the config file when it
// cannot be parsed, and the flag, variable or file and the value when the
// endpoint list has an empty entry or --leader-wait is not a duration of
// at least 0s.
absl::StatusOr<Settings> ResolveSettings(const Args& args);

// Lazily opened channels to the scheduler's replicas, all with the same
// TLS settings and token. A call goes to the replica last seen leading (at
// first, the first of the list). When a replica answers UNAVAILABLE naming
// the leader (trailing metadata cv-leader), the call goes there at once, up
// to kMaxLeaderHops leaders in a row; on UNAVAILABLE naming none (a
// follower that knows no leader, or nobody listening), it goes to the next
// replica of the list. When every replica failed so, the call is tried
// again with a backoff of 100 ms doubling to 1 s until `leader_wait` has
// passed, unless the endpoint is a single address where nothing listens
// (then there is nothing to wait for). Every try sends the same request, so
// a mutation keeps its request_id and the scheduler applies it once.
//
// Errors of calls carry exit codes: kExitUnreachable when no replica
// answered, kExitRefused (prefixed with the gRPC code in words) when one
// refused. Not thread-safe.
class Connection {
 public:
  // `notes` receives one line when a call starts waiting for a leader.
  Connection(Settings settings, std::ostream& notes)
      : settings_(std::move(settings)), notes_(notes) {}

  // Calls `method` of AdminService::Stub or EnterpriseService::Stub;
  // `response` holds the answer of the try that succeeded.
  template <typename Stub, typename Request, typename Response>
  absl::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                 const Request&, Response*),
                    const Request& request, Response* response) {
    return CallLeader([&](Replica& replica, grpc::ClientContext& context) {
      response->Clear();
      return (StubFor(replica, static_cast<Stub*>(nullptr)).*method)(
          &context, request, response);
    });
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
  // A channel to one replica and its stubs.
  struct Replica {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<computevoucher::v1::AdminService::Stub> admin;
    std::unique_ptr<computevoucher::v1::EnterpriseService::Stub> enterprise;
  };
  // The outcome of one try.
  struct Try {
    std::string address;
    grpc::Status status;
    // Whether a server answered (false: no connection, or no answer in
    // time).
    bool answered = false;
    // The leader the answer named; empty when none.
    std::string leader;
  };
  using Attempt =
      std::function<grpc::Status(Replica&, grpc::ClientContext& context)>;

  absl::Status Open();
  absl::Status CallLeader(const Attempt& attempt);
  Try TryOn(const std::string& address, const Attempt& attempt);
  void Prepare(grpc::ClientContext& context) const;
  // The error of a try that ends the call.
  absl::Status Convert(const Try& t) const;
  // The error of a call after its last round: `last` is the last try,
  // `last_answer` the last try a server answered (null when none did).
  absl::Status Failed(const Try& last, const Try* last_answer) const;
  static computevoucher::v1::AdminService::Stub& StubFor(
      Replica& replica, computevoucher::v1::AdminService::Stub*) {
    return *replica.admin;
  }
  static computevoucher::v1::EnterpriseService::Stub& StubFor(
      Replica& replica, computevoucher::v1::EnterpriseService::Stub*) {
    return *replica.enterprise;
  }

  const Settings settings_;
  std::ostream& notes_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  // By address; a replica that did not answer is dropped, so that the next
  // try dials it afresh.
  std::map<std::string, Replica> replicas_;
  // Where the next call goes first: the replica that answered last.
  std::string preferred_;
  bool waiting_noted_ = false;
};

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_CONNECTION_H_
