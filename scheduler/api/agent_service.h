// AgentService (proto/computevoucher/v1/agent.proto): a cluster's agent
// (role agent, bound to one cluster).
#ifndef COMPUTEVOUCHER_SCHEDULER_API_AGENT_SERVICE_H_
#define COMPUTEVOUCHER_SCHEDULER_API_AGENT_SERVICE_H_

#include "computevoucher/v1/agent.grpc.pb.h"
#include "scheduler/api/service_base.h"

namespace computevoucher::api {

class AgentServiceImpl final : public pb::AgentService::Service,
                               private ServiceBase {
 public:
  explicit AgentServiceImpl(ServiceContext& context) : ServiceBase(context) {}

  grpc::Status Register(grpc::ServerContext* c, const pb::RegisterRequest* r,
                        pb::RegisterResponse* out) override;
  grpc::Status Heartbeat(grpc::ServerContext* c, const pb::HeartbeatRequest* r,
                         pb::HeartbeatResponse* out) override;
  grpc::Status ReportUsage(grpc::ServerContext* c,
                           const pb::ReportUsageRequest* r,
                           pb::ReportUsageResponse* out) override;
};

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_AGENT_SERVICE_H_
