// Bearer-token authentication and role checks.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_AUTH_H_
#define COMPUTEVOUCHER_SCHEDULER_API_AUTH_H_

#include <initializer_list>
#include <string>

#include "absl/status/statusor.h"
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
// token unknown or revoked.
absl::StatusOr<pb::Principal> Authenticate(const grpc::ServerContext& context,
                                           const core::StateMachine& state);

// PermissionDenied unless `principal` has one of `roles`. The message
// names neither the object nor the roles that would be allowed.
absl::Status RequireRole(const pb::Principal& principal,
                         std::initializer_list<pb::Role> roles);

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_AUTH_H_
