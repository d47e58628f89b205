#include "client/internal/exit_codes.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace computevoucher::client {
namespace {

constexpr char kExitCodePayload[] = "computevoucher.dev/voucherctl-exit-code";

}  // namespace

absl::Status WithExitCode(absl::Status status, int exit_code) {
  status.SetPayload(kExitCodePayload, absl::Cord(std::to_string(exit_code)));
  return status;
}

int ExitCodeOf(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  const auto payload = status.GetPayload(kExitCodePayload);
  int exit_code = kExitUsage;
  if (payload.has_value() &&
      absl::SimpleAtoi(std::string(*payload), &exit_code)) {
    return exit_code;
  }
  return kExitUsage;
}

}  // namespace computevoucher::client
