#include "scheduler/api/grpc_metrics.h"

#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace computevoucher::api {

using ::grpc::experimental::InterceptionHookPoints;
using ::grpc::experimental::ServerRpcInfo;

struct GrpcMetrics::Method {
  prometheus::Labels labels;  // grpc_service, grpc_method, grpc_type
  prometheus::Counter* started = nullptr;
  prometheus::Histogram* handling = nullptr;
};

namespace {

// From well under a millisecond (a read) to the 10 s a client's deadline
// would rarely allow.
const prometheus::Histogram::BucketBoundaries& HandlingBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return *kBuckets;
}

// go-grpc-prometheus's names for the four kinds of method.
const char* TypeName(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

// Lives exactly as long as its call.
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(GrpcMetrics& metrics, const GrpcMetrics::Method& method)
      : metrics_(metrics),
        method_(method),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    // A body that does not parse is the client's error, but gRPC answers
    // it INTERNAL before any service code runs, which would page the
    // operator for a scanner: it is answered INVALID_ARGUMENT instead.
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      malformed_ = true;
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      if (malformed_ && methods->GetSendStatus().error_code() ==
                            grpc::StatusCode::INTERNAL) {
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            "request: the message body cannot be parsed as this method's "
            "request"));
      }
      metrics_.Handled(
          method_, methods->GetSendStatus().error_code(),
          absl::FromChrono(std::chrono::steady_clock::now() - start_));
    }
    methods->Proceed();
  }

 private:
  bool malformed_ = false;
  GrpcMetrics& metrics_;
  const GrpcMetrics::Method& method_;
  const std::chrono::steady_clock::time_point start_;
};

class MetricsFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsFactory(GrpcMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      ServerRpcInfo* info) override {
    return new MetricsInterceptor(
        metrics_, metrics_.Started(info->method(), info->type()));
  }

 private:
  GrpcMetrics& metrics_;
};

}  // namespace

std::string GrpcCodeName(grpc::StatusCode code) {
  // absl::StatusCode numbers and names its codes exactly as gRPC does.
  std::string name =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? absl::StrCat(static_cast<int>(code)) : name;
}

GrpcMetrics::GrpcMetrics(prometheus::Registry& registry)
    : started_(prometheus::BuildCounter()
                   .Name("grpc_server_started_total")
                   .Help("RPCs started on the server.")
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name("grpc_server_handled_total")
                   .Help("RPCs completed on the server, by status code.")
                   .Register(registry)),
      handling_(prometheus::BuildHistogram()
                    .Name("grpc_server_handling_seconds")
                    .Help("Time from the start of an RPC to its status being "
                          "sent, in seconds.")
                    .Register(registry)) {}

GrpcMetrics::~GrpcMetrics() = default;

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcMetrics::InterceptorFactory() {
  return std::make_unique<MetricsFactory>(*this);
}

const GrpcMetrics::Method& GrpcMetrics::Started(const char* full_method,
                                                ServerRpcInfo::Type type) {
  const absl::string_view name = full_method == nullptr ? "" : full_method;
  Method* method = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto it = methods_.find(name);
    if (it == methods_.end()) {
      // gRPC names every method it does not serve "unknown", so the
      // methods, and with them the series, are bounded by the services
      // registered.
      absl::string_view service = "unknown";
      absl::string_view short_name = "unknown";
      const size_t slash = name.rfind('/');
      if (name.size() > 1 && name[0] == '/' && slash > 1 &&
          slash + 1 < name.size()) {
        service = name.substr(1, slash - 1);
        short_name = name.substr(slash + 1);
      }
      auto fresh = std::make_unique<Method>();
      fresh->labels = {{"grpc_service", std::string(service)},
                       {"grpc_method", std::string(short_name)},
                       {"grpc_type", TypeName(type)}};
      fresh->started = &started_.Add(fresh->labels);
      fresh->handling = &handling_.Add(fresh->labels, HandlingBuckets());
      it = methods_.emplace(std::string(name), std::move(fresh)).first;
    }
    method = it->second.get();
  }
  method->started->Increment();
  return *method;
}

void GrpcMetrics::Handled(const Method& method, grpc::StatusCode code,
                          absl::Duration elapsed) {
  prometheus::Labels labels = method.labels;
  labels.emplace("grpc_code", GrpcCodeName(code));
  handled_.Add(labels).Increment();
  method.handling->Observe(absl::ToDoubleSeconds(elapsed));
}

}  // namespace computevoucher::api
