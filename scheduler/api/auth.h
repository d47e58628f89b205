// Bearer-token authentication and role checks.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_AUTH_H_
#define COMPUTEVOUCHER_SCHEDULER_API_AUTH_H_

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "computevoucher/v1/journal.pb.h"
#include "grpcpp/server_context.h"
#include "scheduler/core/state_machine.h"

namespace computevoucher::api {

namespace pb = ::computevoucher::v1;

// A new bearer secret: "cvt_" and 43 characters of URL-safe base64 (32
// random bytes).
absl::StatusOr<std::string> NewSecret();

// Resolves `authorization: Bearer <secret>` against the tokens in `state`.
// Unauthenticated (with a message that says only what is missing or that
// the token is not valid) when the header is missing or malformed, the
// token unknown, revoked, or expired at `now`.
absl::StatusOr<const pb::Token*> Authenticate(
    const grpc::ServerContext& context, const core::StateMachine& state,
    absl::Time now);

// Who calls with `token`, from `peer` (grpc::ServerContext::peer()).
pb::Principal PrincipalOf(const pb::Token& token, const std::string& peer);

// The tokens seen in use whose recorded last use (Token.last_used_at) is
// at least core::kTokenUseInterval older, kept until the next tick records
// them: so a token in constant use costs one logged tick an hour, not one
// per call.
class TokenUses {
 public:
  // Notes that `token` was used at `now`, if its record is old enough.
  void Seen(const pb::Token& token, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // What was noted since the last call, at most `limit` (the rest wait).
  std::vector<pb::TokenUse> Take(int limit) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> seen_ ABSL_GUARDED_BY(mu_);
};

// PermissionDenied unless `principal` has one of `roles`. The message
// names neither the object nor the roles that would be allowed.
absl::Status RequireRole(const pb::Principal& principal,
                         std::initializer_list<pb::Role> roles);

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_AUTH_H_
