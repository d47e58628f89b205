// How scheduler replicas point clients to the one that leads.
//
// Several voucher-scheduler replicas may share one PostgreSQL database; one
// of them, the leader, holds the lease and serves the API. The others
// answer every call of AdminService, EnterpriseService and AgentService
// with UNAVAILABLE and, when they know the leader, name it in the trailing
// metadata `cv-leader` ("host:port", the address the leader advertises).
// Clients (voucherctl and voucher-agent) take a list of replicas and follow
// that hint.
#ifndef COMPUTEVOUCHER_COMMON_LEADER_H_
#define COMPUTEVOUCHER_COMMON_LEADER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/client_context.h"

namespace computevoucher {

// Trailing metadata key a follower names the leader's address in.
inline constexpr char kLeaderMetadataKey[] = "cv-leader";

// The leader a refused call named (`context` of a finished call); empty
// when the answer named none.
std::string LeaderHint(const grpc::ClientContext& context);

// Splits a comma-separated list of scheduler addresses
// ("10.0.0.1:7443,10.0.0.2:7443"), trimming spaces. InvalidArgument naming
// `field` and the value when the list or one of its entries is empty.
absl::StatusOr<std::vector<std::string>> ParseAddressList(
    absl::string_view field, absl::string_view value);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_LEADER_H_
