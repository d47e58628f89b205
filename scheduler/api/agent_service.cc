#include "scheduler/api/agent_service.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/validate.h"
#include "scheduler/core/limits.h"

namespace computevoucher::api {
namespace {

constexpr auto kAgent = {pb::ROLE_AGENT};

// The envelope of a usage report, checked before anything of it is
// stored: its request id, how many records, and hard size limits on each
// record's strings (their content is judged per record by the state
// machine, which refuses a bad record without blocking the others).
absl::Status CheckUsageEnvelope(const pb::ReportUsageRequest& r) {
  RETURN_IF_ERROR(CheckRequestId(r.request_id()));
  RETURN_IF_ERROR(
      CheckRange("records", r.records_size(), 1, core::kMaxUsageRecords));
  for (int i = 0; i < r.records_size(); ++i) {
    const pb::UsageRecord& u = r.records(i);
    // Bytes, not characters: a bound on what is stored, whatever it holds.
    if (u.allocation_id().size() > 128) {
      return absl::InvalidArgumentError(absl::StrCat(
          "records[", i, "].allocation_id: must be at most 128 bytes, got ",
          Quoted(u.allocation_id())));
    }
    if (u.evidence().size() > 4 * core::kMaxEvidenceChars) {
      return absl::InvalidArgumentError(
          absl::StrCat("records[", i, "].evidence: must be at most ",
                       core::kMaxEvidenceChars, " characters, got ",
                       u.evidence().size(), " bytes"));
    }
  }
  return absl::OkStatus();
}

// The envelope of a heartbeat, checked before anything of it is stored.
absl::Status CheckHeartbeatEnvelope(const pb::HeartbeatRequest& r) {
  RETURN_IF_ERROR(CheckRequestId(r.request_id()));
  for (int i = 0; i < r.allocations_size(); ++i) {
    if (r.allocations(i).allocation_id().size() > 128) {
      return absl::InvalidArgumentError(absl::StrCat(
          "allocations[", i, "].allocation_id: must be at most 128 bytes, got ",
          Quoted(r.allocations(i).allocation_id())));
    }
    // An allocation has at most kMaxGpus GPUs (AllocateRequest).
    RETURN_IF_ERROR(CheckRange(absl::StrCat("allocations[", i, "].gpu_indices"),
                               r.allocations(i).gpu_indices_size(), 0,
                               core::kMaxGpus));
  }
  RETURN_IF_ERROR(
      CheckRange("free_gpus", r.free_gpus_size(), 0, core::kMaxModels));
  for (const auto& [model, count] : r.free_gpus()) {
    RETURN_IF_ERROR(CheckLength("free_gpus model", model, 1, 64));
  }
  return absl::OkStatus();
}

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
  if (absl::Status s = CheckHeartbeatEnvelope(*r); !s.ok()) return ToGrpc(s);
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
  if (absl::Status s = CheckUsageEnvelope(*r); !s.ok()) {
    // Authentication first: an unauthenticated caller learns nothing.
    absl::StatusOr<pb::Principal> me = Caller(*c, kAgent);
    return ToGrpc(me.ok() ? s : me.status());
  }
  grpc::Status status = Mutate(
      c, kAgent, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_report_usage() = *r; }, out);
  if (status.ok() && ctx_.usage_metrics != nullptr) {
    ctx_.usage_metrics->Count(*out);
  }
  return status;
}

}  // namespace computevoucher::api
