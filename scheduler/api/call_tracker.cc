#include "scheduler/api/call_tracker.h"

namespace computevoucher::api {
namespace {

// Lives exactly as long as its call: gRPC creates it when the call starts
// and deletes it when the call is done.
class CountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit CountingInterceptor(CallTracker& tracker) : tracker_(tracker) {
    tracker_.Begin();
  }
  ~CountingInterceptor() override { tracker_.End(); }
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  CallTracker& tracker_;
};

class CountingFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CountingFactory(CallTracker& tracker) : tracker_(tracker) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo*) override {
    return new CountingInterceptor(tracker_);
  }

 private:
  CallTracker& tracker_;
};

}  // namespace

void CallTracker::Drain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool CallTracker::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

bool CallTracker::WaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_progress_ == 0;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
CallTracker::InterceptorFactory() {
  return std::make_unique<CountingFactory>(*this);
}

void CallTracker::Begin() {
  absl::MutexLock lock(&mu_);
  ++in_progress_;
}

void CallTracker::End() {
  absl::MutexLock lock(&mu_);
  --in_progress_;
}

}  // namespace computevoucher::api
