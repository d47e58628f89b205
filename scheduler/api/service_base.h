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
#include "scheduler/store/replica.h"
#include "scheduler/store/store.h"
#include "scheduler/store/writer.h"

namespace cv::api {

// Everything the services use; owned by the server, which outlives them.
struct ServiceContext {
  // Whether this replica leads, and its writer while it does.
  store::Replica* replica = nullptr;
  store::Store* store = nullptr;
  Clock* clock = nullptr;
  Liveness* liveness = nullptr;
  CallTracker* calls = nullptr;
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
    absl::StatusOr<std::shared_ptr<store::Writer>> writer = ServingWriter();
    if (!writer.ok()) return writer.status();
    return (*writer)->Read(std::forward<Fn>(fn));
  }
  absl::StatusOr<std::shared_ptr<store::Writer>> ServingWriter() const;

  static absl::Status CopyResponse(const core::Outcome& outcome,
                                   google::protobuf::Message* out);

  ServiceContext& ctx_;
};

// The page size asked for: 0 means 100; otherwise 1..1000.
absl::StatusOr<int64_t> PageSize(const pb::PageRequest& page);

// A page token that is a position this server issued (0 when empty).
absl::StatusOr<int64_t> NumericPageToken(const pb::PageRequest& page);

// A required period [start, end) from two timestamps.
absl::StatusOr<Window> RequiredPeriod(const google::protobuf::Timestamp& start,
                                      const google::protobuf::Timestamp& end);

// The page of `map` (an ordered map keyed by id) after `page.page_token()`:
// calls `emit(value)` for up to page_size values for which `keep(value)`
// holds, and returns the next page token ("" at the end).
template <typename Map, typename Keep, typename Emit>
absl::StatusOr<std::string> Page(const Map& map, const pb::PageRequest& page,
                                 Keep keep, Emit emit) {
  absl::StatusOr<int64_t> page_size = PageSize(page);
  if (!page_size.ok()) return page_size.status();
  int64_t size = *page_size;
  if (page.page_token().size() > 128) {
    return absl::InvalidArgumentError(
        "page.page_token: not a token this server issued");
  }
  auto it = page.page_token().empty() ? map.begin()
                                      : map.upper_bound(page.page_token());
  std::string last;
  for (; it != map.end() && size > 0; ++it) {
    if (!keep(it->second)) continue;
    if (absl::Status s = emit(it->second); !s.ok()) return s;
    last = it->first;
    --size;
  }
  // Another matching value after this page means there is a next page.
  for (; it != map.end(); ++it) {
    if (keep(it->second)) return last;
  }
  return std::string();
}

}  // namespace cv::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_SERVICE_BASE_H_
