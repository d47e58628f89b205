// The agent's calls to the scheduler's control plane: stubs and contexts,
// Register and Heartbeat, and what a failed call does (backoff, following
// the leader, moving down the list of replicas).
#include <algorithm>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/internal/agent_state.h"
#include "common/grpc_channel.h"
#include "common/leader.h"
#include "common/status_macros.h"
#include "common/validate.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/counter.h"

namespace computevoucher::agent {
namespace {

using internal::kMinBackoff;
using internal::RequestId;

constexpr char kVersion[] = "computevoucher-agent/1";
constexpr absl::Duration kRpcDeadline = absl::Seconds(10);
constexpr absl::Duration kMaxBackoff = absl::Seconds(10);

std::string Describe(const grpc::Status& s) {
  static constexpr const char* kCodes[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int code = static_cast<int>(s.error_code());
  return absl::StrCat(code >= 0 && code <= 16 ? kCodes[code] : "CODE", ": ",
                      s.error_message());
}

}  // namespace

absl::StatusOr<StubFactory> NewAgentStubFactory(const pb::TlsConfig& tls) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                   SchedulerCredentials(tls));
  return [credentials](const std::string& address) {
    return std::unique_ptr<pb::AgentService::StubInterface>(
        pb::AgentService::NewStub(NewSchedulerChannel(address, credentials)));
  };
}

bool Agent::Reachable(absl::Time now) const { return now >= next_rpc_; }

std::unique_ptr<grpc::ClientContext> Agent::NewContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  context->set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
  return context;
}

void Agent::SwitchTo(const std::string& address) {
  stub_ = stubs_(address);
  address_ = address;
}

void Agent::RpcFailed(const char* rpc, const grpc::Status& status,
                      const grpc::ClientContext& context, absl::Time now) {
  if (metrics_ != nullptr)
    metrics_->rpc_errors.Add({{"method", rpc}}).Increment();
  // A scheduler that comes back may have restarted, and a leader named by a
  // follower has never seen the agent: register again.
  registered_ = false;
  const bool unavailable = status.error_code() == grpc::StatusCode::UNAVAILABLE;
  const std::string leader = unavailable ? LeaderHint(context) : "";
  const bool names_another = !leader.empty() && leader != address_;
  if (names_another && leader_hops_ < kMaxLeaderHops) {
    ++leader_hops_;
    Log(absl::StrCat("scheduler: following leader at ", leader));
    SwitchTo(leader);
    next_rpc_ = now;
    retry_now_ = true;
    return;
  }
  leader_hops_ = 0;
  backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  const absl::Duration wait = backoff_ * jitter(random_);
  next_rpc_ = now + wait;
  if (failures_++ == 0) {
    Log(absl::StrCat(rpc, " failed: ", Describe(status),
                     "; metering continues, retrying with backoff"));
  }
  // Nobody answered as the leader here: the next try goes to the next
  // replica, or back to the list from a leader that was named.
  const bool no_leader_here =
      (unavailable && !names_another) ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  if (!no_leader_here) return;
  if (address_ == addresses_[list_position_]) {
    list_position_ = (list_position_ + 1) % addresses_.size();
  }
  const std::string& next = addresses_[list_position_];
  if (next == address_) return;
  // One line per replica in the first round of an outage, not per retry.
  if (failures_ <= static_cast<int>(addresses_.size())) {
    Log(absl::StrCat("scheduler ", address_, " unreachable; trying ", next));
  }
  SwitchTo(next);
}

void Agent::RpcSucceeded() {
  if (failures_ > 0) {
    Log(absl::StrCat("scheduler answers again after ", failures_,
                     " failed calls",
                     addresses_.size() > 1 || address_ != addresses_.front()
                         ? absl::StrCat(", at ", address_)
                         : ""));
  }
  failures_ = 0;
  leader_hops_ = 0;
  backoff_ = absl::ZeroDuration();
  heard_from_scheduler_ = true;
}

bool Agent::Register(absl::Time now) {
  pb::RegisterRequest request;
  request.set_request_id(RequestId(random_));
  request.set_region(config_.region());
  *request.mutable_inventory() = config_.inventory();
  request.set_agent_version(kVersion);
  request.set_meter(absl::StrCat(runtime_->name(), "+", config_.telemetry()));
  pb::RegisterResponse response;
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  const grpc::Status status =
      stub_->Register(context.get(), request, &response);
  if (!status.ok()) {
    RpcFailed("Register", status, *context, now);
    return false;
  }
  RpcSucceeded();
  registered_ = true;
  if (config_.heartbeat_interval_ms() == 0 &&
      response.heartbeat_interval_s() > 0) {
    heartbeat_interval_ = absl::Seconds(response.heartbeat_interval_s());
  }
  Log(absl::StrCat("registered cluster ", response.cluster().cluster_id(), " (",
                   pb::ClusterState_Name(response.cluster().state()), ")"));
  next_heartbeat_ = now;
  return true;
}

bool Agent::SendHeartbeat(absl::Time now) {
  pb::HeartbeatRequest request;
  request.set_request_id(RequestId(random_));
  for (const auto& [id, r] : running_) {
    pb::ObservedAllocation* o = request.add_allocations();
    o->set_allocation_id(id);
    o->set_running(!r->stop_at.has_value() && r->started);
    if (r->exit_code) {
      o->set_exited(true);
      o->set_exit_code(*r->exit_code);
    } else if (r->ended_on_cluster) {
      o->set_ended_on_cluster(true);
      o->set_end_detail(*r->ended_on_cluster);
    }
    if (r->handle != nullptr) o->set_access(r->handle->Access());
    for (int index : r->gpu_indices) o->add_gpu_indices(index);
    o->set_idle(r->idle.idle());
  }
  for (const auto& [id, why] : rejected_) {
    pb::ObservedAllocation* o = request.add_allocations();
    o->set_allocation_id(id);
    o->set_ended_on_cluster(true);
    o->set_end_detail(CleanText(why, 256, TextLines::kOne));
  }
  for (const auto& [model, free] : runtime_->FreeGpus().value_or(FreeGpus())) {
    (*request.mutable_free_gpus())[model] = free;
  }
  request.set_healthy(!spool_full_logged_ && runtime_->Health().ok());
  request.set_spool_depth(spool_->depth());
  pb::HeartbeatResponse response;
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  const grpc::Status status =
      stub_->Heartbeat(context.get(), request, &response);
  if (!status.ok()) {
    RpcFailed("Heartbeat", status, *context, now);
    return false;
  }
  RpcSucceeded();
  if (config_.heartbeat_interval_ms() == 0 &&
      response.heartbeat_interval_s() > 0) {
    heartbeat_interval_ = absl::Seconds(response.heartbeat_interval_s());
  }
  // The answer says what the scheduler wants as of some moment up to its
  // arrival: act on it as of its arrival, not as of the sending. An
  // allocation that ended meanwhile (one that ended while the agent was
  // down) is metered up to there, which covers its end; what lies past the
  // end is recorded unsubsidised by the scheduler.
  Converge(response, Now());
  return true;
}

}  // namespace computevoucher::agent
