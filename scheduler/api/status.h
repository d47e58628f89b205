// absl::Status <-> grpc::Status, code for code.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_STATUS_H_
#define COMPUTEVOUCHER_SCHEDULER_API_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace computevoucher::api {

// The same code and message; OK maps to OK.
grpc::Status ToGrpc(const absl::Status& status);

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_STATUS_H_
