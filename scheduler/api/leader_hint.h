// Names the leader in the trailing metadata of the calls a follower refuses
// (common/leader.h), so that clients can go there.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_LEADER_HINT_H_
#define COMPUTEVOUCHER_SCHEDULER_API_LEADER_HINT_H_

#include <memory>

#include "grpcpp/support/server_interceptor.h"
#include "scheduler/engine/replica.h"

namespace computevoucher::api {

// An interceptor factory for grpc::ServerBuilder: every call answered
// UNAVAILABLE while `replica` follows a known leader carries `cv-leader`.
// `replica` must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
LeaderHintInterceptorFactory(const engine::Replica& replica);

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_LEADER_HINT_H_
