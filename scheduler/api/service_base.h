// What the three gRPC services share: authentication, submitting commands
// to the writer, reading the state, and paging.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_SERVICE_BASE_H_
#define COMPUTEVOUCHER_SCHEDULER_API_SERVICE_BASE_H_

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "computevoucher/v1/config.pb.h"
#include "computevoucher/v1/journal.pb.h"
#include "grpcpp/server_context.h"
#include "scheduler/api/auth.h"
#include "scheduler/api/call_tracker.h"
#include "scheduler/api/liveness.h"
#include "scheduler/api/status.h"
#include "scheduler/api/usage_metrics.h"
#include "scheduler/engine/replica.h"
#include "scheduler/engine/writer.h"
#include "scheduler/reports/paging.h"
#include "scheduler/reports/sources.h"
#include "scheduler/store/command_log.h"
#include "scheduler/store/usage_index.h"

namespace computevoucher::api {

// Everything the services use; owned by the server, which outlives them.
struct ServiceContext {
  // Whether this replica leads, and its writer while it does.
  engine::Replica* replica = nullptr;
  // The store's command log, usage index and retired allocations, which
  // reports read.
  store::CommandLog* log = nullptr;
  store::UsageIndex* usage = nullptr;
  // Where retired allocations and archived usage are read.
  store::RetiredRecords* retired = nullptr;
  store::ArchivedHistory* archived = nullptr;
  Clock* clock = nullptr;
  Liveness* liveness = nullptr;
  CallTracker* calls = nullptr;
  // Where tokens seen in use wait for the next tick; nullptr: not noted.
  TokenUses* token_uses = nullptr;
  // Counts the usage records answered; nullptr counts nothing.
  UsageMetrics* usage_metrics = nullptr;
  pb::SchedulerConfig config;
};

class ServiceBase {
 protected:
  explicit ServiceBase(ServiceContext& context) : ctx_(context) {}

  absl::StatusOr<pb::Principal> Caller(
      const grpc::ServerContext& context,
      std::initializer_list<pb::Role> roles) const;

  // Authenticates, checks the role, submits a command carrying the caller
  // and `request_id` with the body `fill` sets, and copies the answer into
  // `out`.
  template <typename Response>
  grpc::Status Mutate(grpc::ServerContext* context,
                      std::initializer_list<pb::Role> roles,
                      const std::string& request_id,
                      const std::function<void(pb::Command&)>& fill,
                      Response* out) {
    absl::StatusOr<pb::Principal> caller = Caller(*context, roles);
    if (!caller.ok()) return ToGrpc(caller.status());
    absl::StatusOr<core::Outcome> outcome = Submit(*caller, request_id, fill);
    if (!outcome.ok()) return ToGrpc(outcome.status());
    return ToGrpc(CopyResponse(*outcome, out));
  }

  absl::StatusOr<core::Outcome> Submit(
      const pb::Principal& caller, const std::string& request_id,
      const std::function<void(pb::Command&)>& fill);

  // Authenticates, checks the role, and runs `read(caller, state)` under the
  // state's read lock.
  template <typename Fn>
  grpc::Status Read(grpc::ServerContext* context,
                    std::initializer_list<pb::Role> roles, Fn&& read) {
    absl::StatusOr<pb::Principal> caller = Caller(*context, roles);
    if (!caller.ok()) return ToGrpc(caller.status());
    absl::StatusOr<absl::Status> status = ReadState(
        [&](const core::StateMachine& state) { return read(*caller, state); });
    return ToGrpc(status.ok() ? *status : status.status());
  }

  // Runs `fn(state)` on durable state (Writer::Read) and returns its
  // result; Unavailable naming the leader when this replica does not lead,
  // or when its store failed and it holds nothing it can serve.
  template <typename Fn>
  auto ReadState(Fn&& fn) const
      -> absl::StatusOr<std::invoke_result_t<Fn, const core::StateMachine&>> {
    absl::StatusOr<std::shared_ptr<engine::Writer>> writer = ServingWriter();
    if (!writer.ok()) return writer.status();
    return (*writer)->Read(std::forward<Fn>(fn));
  }
  absl::StatusOr<std::shared_ptr<engine::Writer>> ServingWriter() const;

  // What reports read: durable state through this replica's serving
  // writer, and the store.
  reports::Sources ReportSources() const;

  // Authenticates, checks the role, and copies `report(caller)` into `out`.
  template <typename Response, typename Fn>
  grpc::Status Report(grpc::ServerContext* context,
                      std::initializer_list<pb::Role> roles, Fn&& report,
                      Response* out) {
    absl::StatusOr<pb::Principal> caller = Caller(*context, roles);
    if (!caller.ok()) return ToGrpc(caller.status());
    absl::StatusOr<Response> response = report(*caller);
    if (!response.ok()) return ToGrpc(response.status());
    *out = *std::move(response);
    return grpc::Status::OK;
  }

  static absl::Status CopyResponse(const core::Outcome& outcome,
                                   google::protobuf::Message* out);

  ServiceContext& ctx_;
};

using reports::Page;

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_SERVICE_BASE_H_
