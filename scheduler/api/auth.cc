#include "scheduler/api/auth.h"

#include <openssl/rand.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/sha256.h"

namespace computevoucher::api {

absl::StatusOr<std::string> NewSecret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  std::string encoded;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)),
      &encoded);
  return absl::StrCat("cvt_", encoded);
}

absl::StatusOr<pb::Principal> Authenticate(const grpc::ServerContext& context,
                                           const core::StateMachine& state) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "missing authorization metadata; send \"authorization: Bearer "
        "<token>\"");
  }
  absl::string_view value(it->second.data(), it->second.size());
  // The scheme is case-insensitive (RFC 6750, RFC 7235).
  constexpr absl::string_view kScheme = "bearer ";
  if (!absl::StartsWithIgnoreCase(value, kScheme)) {
    return absl::UnauthenticatedError(
        "authorization metadata must be \"Bearer <token>\"");
  }
  value.remove_prefix(kScheme.size());
  value = absl::StripAsciiWhitespace(value);
  const pb::Token* token =
      value.empty() ? nullptr : state.FindTokenByHash(Sha256(value));
  if (token == nullptr || token->revoked()) {
    return absl::UnauthenticatedError("invalid or revoked token");
  }
  pb::Principal principal;
  principal.set_role(token->role());
  principal.set_token_id(token->token_id());
  principal.set_enterprise_id(token->enterprise_id());
  principal.set_cluster_id(token->cluster_id());
  return principal;
}

absl::Status RequireRole(const pb::Principal& principal,
                         std::initializer_list<pb::Role> roles) {
  if (std::find(roles.begin(), roles.end(), principal.role()) != roles.end()) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError("permission denied for this token's role");
}

}  // namespace computevoucher::api
