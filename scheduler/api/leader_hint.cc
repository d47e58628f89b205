#include "scheduler/api/leader_hint.h"

#include <string>

#include "common/leader.h"

namespace computevoucher::api {
namespace {

using grpc::experimental::InterceptionHookPoints;

class LeaderHintInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit LeaderHintInterceptor(const engine::Replica& replica)
      : replica_(replica) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() ==
            grpc::StatusCode::UNAVAILABLE &&
        !replica_.leading()) {
      const std::string leader = replica_.leader_address();
      if (!leader.empty()) {
        methods->GetSendTrailingMetadata()->emplace(kLeaderMetadataKey, leader);
      }
    }
    methods->Proceed();
  }

 private:
  const engine::Replica& replica_;
};

class LeaderHintFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit LeaderHintFactory(const engine::Replica& replica)
      : replica_(replica) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo*) override {
    return new LeaderHintInterceptor(replica_);
  }

 private:
  const engine::Replica& replica_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
LeaderHintInterceptorFactory(const engine::Replica& replica) {
  return std::make_unique<LeaderHintFactory>(replica);
}

}  // namespace computevoucher::api
