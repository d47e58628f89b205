#include "common/leader.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/validate.h"

namespace computevoucher {

std::string LeaderHint(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(kLeaderMetadataKey);
  if (it == trailers.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

absl::StatusOr<std::vector<std::string>> ParseAddressList(
    absl::string_view field, absl::string_view value) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", Quoted(value),
          " must be one address or a comma-separated list of addresses "
          "(host:port), none empty"));
    }
    out.emplace_back(part);
  }
  return out;
}

}  // namespace computevoucher
