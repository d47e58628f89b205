#include "scheduler/api/auth.h"

#include <openssl/rand.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/sha256.h"
#include "common/time_util.h"
#include "scheduler/core/limits.h"

namespace computevoucher::api {
namespace {

// Longest peer address kept (an IPv6 address with port is under 60).
constexpr size_t kMaxPeerLength = 128;

}  // namespace

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

absl::StatusOr<const pb::Token*> Authenticate(
    const grpc::ServerContext& context, const core::StateMachine& state,
    absl::Time now) {
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
  if (token->has_expires_at()) {
    // An expiry that cannot be read counts as passed.
    const absl::Time expires =
        FromProto("expires_at", token->expires_at()).value_or(now);
    if (expires <= now) {
      return absl::UnauthenticatedError(absl::StrCat(
          "token ", token->token_id(), " expired at ", FormatInstant(expires)));
    }
  }
  return token;
}

pb::Principal PrincipalOf(const pb::Token& token, const std::string& peer) {
  pb::Principal principal;
  principal.set_role(token.role());
  principal.set_token_id(token.token_id());
  principal.set_enterprise_id(token.enterprise_id());
  principal.set_cluster_id(token.cluster_id());
  principal.set_peer(peer.substr(0, kMaxPeerLength));
  return principal;
}

void TokenUses::Seen(const pb::Token& token, absl::Time now) {
  if (token.has_last_used_at() &&
      FromProto("last_used_at", token.last_used_at())
              .value_or(absl::InfinitePast()) > now - core::kTokenUseInterval) {
    return;
  }
  absl::MutexLock lock(&mu_);
  absl::Time& at = seen_[token.token_id()];
  at = std::max(at, now);
}

std::vector<pb::TokenUse> TokenUses::Take(int limit) {
  std::vector<pb::TokenUse> out;
  absl::MutexLock lock(&mu_);
  for (auto it = seen_.begin();
       it != seen_.end() && static_cast<int>(out.size()) < limit;) {
    pb::TokenUse& use = out.emplace_back();
    use.set_token_id(it->first);
    *use.mutable_at() = ToProto(it->second);
    seen_.erase(it++);
  }
  return out;
}

absl::Status RequireRole(const pb::Principal& principal,
                         std::initializer_list<pb::Role> roles) {
  if (std::find(roles.begin(), roles.end(), principal.role()) != roles.end()) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError("permission denied for this token's role");
}

}  // namespace computevoucher::api
