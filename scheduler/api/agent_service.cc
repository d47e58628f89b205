#include "scheduler/api/agent_service.h"

namespace cv::api {
namespace {

constexpr auto kAgent = {pb::ROLE_AGENT};

}  // namespace

grpc::Status AgentServiceImpl::Register(grpc::ServerContext* c,
                                        const pb::RegisterRequest* r,
                                        pb::RegisterResponse* out) {
  absl::StatusOr<pb::Principal> me = Caller(*c, kAgent);
  if (!me.ok()) return ToGrpc(me.status());
  ctx_.liveness->Beat(me->cluster_id(), ctx_.clock->Now());
  absl::StatusOr<core::Outcome> outcome =
      Submit(*me, r->request_id(),
             [r](pb::Command& cmd) { *cmd.mutable_register_cluster() = *r; });
  if (!outcome.ok()) return ToGrpc(outcome.status());
  if (absl::Status s = CopyResponse(*outcome, out); !s.ok()) return ToGrpc(s);
  out->set_heartbeat_interval_s(ctx_.config.heartbeat_interval_s());
  return grpc::Status::OK;
}

grpc::Status AgentServiceImpl::Heartbeat(grpc::ServerContext* c,
                                         const pb::HeartbeatRequest* r,
                                         pb::HeartbeatResponse* out) {
  absl::StatusOr<pb::Principal> me = Caller(*c, kAgent);
  if (!me.ok()) return ToGrpc(me.status());
  ctx_.liveness->Beat(me->cluster_id(), ctx_.clock->Now());
  absl::StatusOr<core::Outcome> outcome =
      Submit(*me, r->request_id(),
             [r](pb::Command& cmd) { *cmd.mutable_heartbeat() = *r; });
  if (!outcome.ok()) return ToGrpc(outcome.status());
  if (absl::Status s = CopyResponse(*outcome, out); !s.ok()) return ToGrpc(s);
  out->set_heartbeat_interval_s(ctx_.config.heartbeat_interval_s());
  return grpc::Status::OK;
}

grpc::Status AgentServiceImpl::ReportUsage(grpc::ServerContext* c,
                                           const pb::ReportUsageRequest* r,
                                           pb::ReportUsageResponse* out) {
  grpc::Status status = Mutate(
      c, kAgent, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_report_usage() = *r; }, out);
  if (status.ok() && ctx_.usage_metrics != nullptr) {
    ctx_.usage_metrics->Count(*out);
  }
  return status;
}

}  // namespace cv::api
