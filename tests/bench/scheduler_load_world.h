// The world of scheduler_load (scheduler_load.cc), built through the API of
// a scheduler: a program, a provider, enterprises with vouchers, agent
// clusters with their one-GPU allocations running, spare clusters; and the
// gRPC plumbing the benchmark's clients share.
#ifndef COMPUTEVOUCHER_TESTS_BENCH_SCHEDULER_LOAD_WORLD_H_
#define COMPUTEVOUCHER_TESTS_BENCH_SCHEDULER_LOAD_WORLD_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace computevoucher::bench::scheduler_load {

namespace pb = ::computevoucher::v1;

constexpr const char* kModel = "B200";
constexpr int64_t kPriceFenPerGpuHour = 1000;
constexpr int32_t kRatioBp = 2000;
constexpr int64_t kAllocationSeconds = 86400;
// Enterprises sharing the allocations (plus one for the probe).
constexpr int kEnterprises = 16;
constexpr int64_t kVoucherFen = 100'000'000'000;  // ¥1e9 each
// Clusters with free GPUs, registered after the allocations are placed,
// where the probe's allocations land.
constexpr int kSpareClusters = 4;
constexpr int kSpareGpus = 16;
constexpr int kSetupThreads = 32;
constexpr absl::Duration kRpcDeadline = absl::Seconds(60);

// A channel to `target` with a connection of its own.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& target);

// "Bearer <token>".
std::string Bearer(const std::string& token);

// A client context carrying `token` as its bearer token.
std::unique_ptr<grpc::ClientContext> As(const std::string& token);

// `s` as an absl::Status, its message prefixed by `what`.
absl::Status Check(const grpc::Status& s, absl::string_view what);

int64_t UnixNanos(const google::protobuf::Timestamp& ts);
void SetTimestamp(int64_t unix_ns, google::protobuf::Timestamp* ts);

struct Stubs {
  explicit Stubs(const std::string& target)
      : channel(NewChannel(target)),
        admin(pb::AdminService::NewStub(channel)),
        enterprise(pb::EnterpriseService::NewStub(channel)),
        agent(pb::AgentService::NewStub(channel)) {}
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::AdminService::Stub> admin;
  std::unique_ptr<pb::EnterpriseService::Stub> enterprise;
  std::unique_ptr<pb::AgentService::Stub> agent;
};

// One allocation as its agent meters it.
struct Meter {
  std::string allocation_id;
  int64_t next_sequence = 1;
  int64_t cursor_ns = 0;  // Unix ns: end of the last accepted record
};

// One cluster: its agent's credentials and its allocations.
struct ClusterLoad {
  std::string cluster_id;
  std::string bearer;  // "Bearer <agent token>"
  std::vector<Meter> meters;
};

struct World {
  std::string admin_token;
  std::string probe_token;  // enterprise token of the probe
  int gpus_per_cluster = 0;
  // The clusters that got allocations, in cluster id order.
  std::vector<ClusterLoad> clusters;
};

// Builds the world through the API, on the scheduler at `target`, as the
// admin of `admin_token`: `allocations` one-GPU allocations over `clusters`
// clusters. Prints each step's time.
absl::StatusOr<World> Setup(const std::string& target,
                            const std::string& admin_token, int clusters,
                            int allocations);

}  // namespace computevoucher::bench::scheduler_load

#endif  // COMPUTEVOUCHER_TESTS_BENCH_SCHEDULER_LOAD_WORLD_H_
