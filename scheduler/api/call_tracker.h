// Counts the RPCs in progress, so that a graceful stop can refuse new calls,
// let those in progress finish, and then close connections at once instead
// of waiting for idle clients to hang up.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_CALL_TRACKER_H_
#define COMPUTEVOUCHER_SCHEDULER_API_CALL_TRACKER_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/server_interceptor.h"

namespace computevoucher::api {

class CallTracker {
 public:
  // Stops new calls: from now on services answer UNAVAILABLE.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);
  bool draining() const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until no call is in progress or `deadline` passes; returns true
  // when none is.
  bool WaitIdle(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // An interceptor factory for grpc::ServerBuilder that counts every call
  // from its start to its end. The tracker must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  InterceptorFactory();

  void Begin() ABSL_LOCKS_EXCLUDED(mu_);
  void End() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  int64_t in_progress_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_CALL_TRACKER_H_
