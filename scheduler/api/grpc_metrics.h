// gRPC server metrics under the names and labels operators know from
// go-grpc-prometheus (deploy/METRICS.md): grpc_server_started_total,
// grpc_server_handled_total (with grpc_code) and the
// grpc_server_handling_seconds histogram, labelled by grpc_service,
// grpc_method and grpc_type.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_GRPC_METRICS_H_
#define COMPUTEVOUCHER_SCHEDULER_API_GRPC_METRICS_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace computevoucher::api {

// The label value of a status code: gRPC's name for it ("OK",
// "INVALID_ARGUMENT", ...), or its number for a code gRPC does not define.
std::string GrpcCodeName(grpc::StatusCode code);

class GrpcMetrics {
 public:
  // Registers the three families in `registry`, which must outlive this.
  explicit GrpcMetrics(prometheus::Registry& registry);
  ~GrpcMetrics();
  GrpcMetrics(const GrpcMetrics&) = delete;
  GrpcMetrics& operator=(const GrpcMetrics&) = delete;

  // An interceptor factory for grpc::ServerBuilder that counts every call
  // when it starts and when it sends its status, and times it in between.
  // This object must outlive the server. Thread-safe.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  InterceptorFactory();

  // The series of one method, created on first use.
  struct Method;
  // Counts a call of `full_method` ("/computevoucher.v1.AdminService/
  // CreateProgram"; anything else counts as service and method "unknown")
  // as started and returns its series.
  const Method& Started(const char* full_method,
                        grpc::experimental::ServerRpcInfo::Type type)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Counts a call of `method` as handled with `code` after `elapsed`.
  void Handled(const Method& method, grpc::StatusCode code,
               absl::Duration elapsed);

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_;
  absl::Mutex mu_;
  // By full method name; the values never move, so callers may keep them.
  absl::flat_hash_map<std::string, std::unique_ptr<Method>> methods_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_GRPC_METRICS_H_
