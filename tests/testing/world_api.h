// Builds the standard world of world.h through the real admin API, for
// tests that run a scheduler (in process or as a binary).
#ifndef COMPUTEVOUCHER_TESTS_TESTING_WORLD_API_H_
#define COMPUTEVOUCHER_TESTS_TESTING_WORLD_API_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "tests/testing/world.h"

namespace computevoucher::testing {

// Creates `program` (normally WorldProgram(), perhaps with another validity
// window), then the world's providers and enterprises, as `admin_token`,
// with request ids from `next_request_id`. The first error, with the RPC
// named, otherwise OK.
absl::Status CreateWorldThroughApi(
    pb::AdminService::StubInterface& admin, const std::string& admin_token,
    const std::function<std::string()>& next_request_id,
    pb::CreateProgramRequest program = WorldProgram());

// Creates a token with `request` (its request id set from
// `next_request_id`) as `admin_token`; its secret, or the error with the
// RPC named.
absl::StatusOr<std::string> CreateTokenThroughApi(
    pb::AdminService::StubInterface& admin, const std::string& admin_token,
    const std::function<std::string()>& next_request_id,
    pb::CreateTokenRequest request);

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_TESTING_WORLD_API_H_
