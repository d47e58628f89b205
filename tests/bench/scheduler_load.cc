// Usage records per second accepted durably by a whole voucher-scheduler
// (gRPC, authentication, the group-commit writer, the store) from many
// agents at once, with the latency of Allocate under that load, next to the
// ceiling of the same gRPC traffic against a server that does nothing.
//
// One run, for the embedded store and then, with --postgres URL, for
// PostgreSQL (an empty database, on loopback for the figures in docs/performance.md):
// - starts a SchedulerServer in this process (real clock) on 127.0.0.1:0
//   over a temporary data directory (SQLite, synchronous=FULL) or the
//   database (synchronous_commit on);
// - sets up, through the API as the first admin: a program without a cap
//   per enterprise, a provider, enterprises with one voucher each, N
//   clusters ("c-0001"...) each registered by its own agent token and
//   approved, M one-GPU allocations of 24 h placed by the scheduler (M/N
//   per cluster, rounded up), one heartbeat per cluster reporting them
//   running, and a few spare clusters with free GPUs for the Allocate
//   probe;
// - runs S concurrent streams (threads, one gRPC connection each) for a
//   fixed time; stream s owns the clusters c with c % S == s and sends, as
//   each cluster's agent in turn, a ReportUsage batch of R records for that
//   cluster's allocations (R / allocations-on-the-cluster consecutive
//   records of 10 ms each per allocation; contiguous intervals, gap-free
//   sequences; no record ends after now);
// - meanwhile a probe thread, as another enterprise, calls Allocate (one GPU)
//   and ReleaseAllocation every 20 ms and times Allocate;
// - checks that the scheduler's allocations account for every record the
//   streams saw accepted, and stops the scheduler;
// - starts a second gRPC server in this process whose AgentService answers
//   ReportUsage with one ACCEPTED ack per record and does nothing else, and
//   runs the same streams (same batches, same token metadata) against it
//   for the same time: the ceiling.
// It prints the accepted records/s, Allocate p50/p99 under load and the
// ratio to the ceiling against the targets of the issue: >= 50,000
// records/s with 1,000 clusters and 20,000 allocations, >= 0.5 x ceiling,
// Allocate p99 < 20 ms.
//
// A benchmark, not a test: it exits 0 whether or not the targets are met
// (1 only when it could not measure: setup failed or more than 0.1% of the
// records were not accepted).
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/flags.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"
#include "scheduler/server.h"
#include "tests/bench/bench_util.h"
#include "tests/testing/temp_dir.h"

ABSL_FLAG(int, clusters, 1000,
          "Simulated clusters, each with its own agent token.");
ABSL_FLAG(int, allocations, 20000,
          "Running one-GPU allocations, spread by the scheduler over the "
          "clusters (allocations / clusters each, rounded up).");
ABSL_FLAG(int, streams, 64,
          "Concurrent ReportUsage streams (threads, one connection each).");
ABSL_FLAG(int, records_per_batch, 100,
          "Usage records per ReportUsage batch (1..10000); a batch carries "
          "records of one cluster's allocations, the same number for each.");
ABSL_FLAG(int, seconds, 10,
          "Measured wall time of the scheduler run and of the ceiling run.");
ABSL_FLAG(double, warmup_seconds, 2.0,
          "Unmeasured run time before each measurement.");
ABSL_FLAG(std::string, postgres, "",
          "Also measure the scheduler on PostgreSQL: the URL of an empty "
          "database (postgresql://user@host:port/dbname), which the run "
          "fills; its figures print beside the SQLite ones.");
ABSL_FLAG(std::string, dir, "",
          "Directory in which the bench makes (and at the end removes) its "
          "temporary data directory; default $TMPDIR or /tmp. Put it on the "
          "file system you want to measure.");

namespace computevoucher::bench {
namespace {

using ::computevoucher::bench::FileSystemType;
using ::computevoucher::bench::MachineBusySeconds;
using ::computevoucher::bench::ProcessCpuNanos;
using ::computevoucher::bench::Rate;
using ::computevoucher::bench::Seconds;
using ::computevoucher::testing::TempDir;
using ::computevoucher::bench::ThreadCpuNanos;

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
constexpr absl::Duration kProbeInterval = absl::Milliseconds(20);
// At most this many probe allocations at once (fewer than the spare GPUs).
constexpr int kProbeWorkers = 32;
constexpr absl::Duration kIdleProbeTime = absl::Seconds(2);
constexpr absl::Duration kRpcDeadline = absl::Seconds(60);

constexpr double kTargetRecordsPerSecond = 50'000;
constexpr double kTargetCeilingShare = 0.5;
constexpr double kTargetAllocateP99Ms = 20;
constexpr int kTargetClusters = 1000;
constexpr int kTargetAllocations = 20000;
// More records not accepted than this and the figures mean nothing.
constexpr double kMaxRefusedShare = 0.001;

// Per thread of this process: nanoseconds on a CPU and waiting for one
// (/proc/self/task/*/schedstat); empty where unreadable.
struct ThreadTimes {
  int64_t on_cpu_ns = 0;
  int64_t runqueue_ns = 0;
};
std::map<int, ThreadTimes> ThreadSchedStats() {
  std::map<int, ThreadTimes> out;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const std::string name = entry.path().filename().string();
    std::FILE* f =
        std::fopen((entry.path() / "schedstat").string().c_str(), "r");
    if (f == nullptr) continue;
    long long on_cpu = 0, waiting = 0;
    if (std::fscanf(f, "%lld %lld", &on_cpu, &waiting) == 2)
      out[std::atoi(name.c_str())] = ThreadTimes{on_cpu, waiting};
    std::fclose(f);
  }
  return out;
}

// The q-quantile (0..1) of `v`, which it sorts; 0 when empty.
double Quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank =
      static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// A unified social credit code that passes the GB 32100-2015 check, unique
// per `n`.
std::string CreditCode(int n) {
  static constexpr absl::string_view kAlphabet =
      "0123456789ABCDEFGHJKLMNPQRTUWXY";
  static constexpr int kWeights[17] = {1,  3,  9,  27, 19, 26, 16, 17, 20,
                                       29, 25, 13, 8,  24, 10, 30, 28};
  std::string code = absl::StrFormat("91330100%09d", n);
  int sum = 0;
  for (int i = 0; i < 17; ++i)
    sum += static_cast<int>(kAlphabet.find(code[i])) * kWeights[i];
  code.push_back(kAlphabet[(31 - sum % 31) % 31]);
  return code;
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target) {
  grpc::ChannelArguments args;
  // A connection of its own, not one shared by every channel to the target.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

std::string Bearer(const std::string& token) {
  return absl::StrCat("Bearer ", token);
}

// A client context carrying `token` as its bearer token.
std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", Bearer(token));
  context->set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
  return context;
}

absl::Status Check(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

int64_t UnixNanos(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1'000'000'000 + ts.nanos();
}

void SetTimestamp(int64_t unix_ns, google::protobuf::Timestamp* ts) {
  ts->set_seconds(unix_ns / 1'000'000'000);
  ts->set_nanos(static_cast<int32_t>(unix_ns % 1'000'000'000));
}

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

// Runs fn(i, stubs) for i in [0, n) on `threads` threads with a connection
// each; the first error stops the others and is returned.
absl::Status ParallelFor(const std::string& target, int n, int threads,
                         const std::function<absl::Status(int, Stubs&)>& fn) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  absl::Mutex mu;
  absl::Status first = absl::OkStatus();
  std::vector<std::thread> pool;
  for (int t = 0; t < std::min(threads, n); ++t) {
    pool.emplace_back([&] {
      Stubs stubs(target);
      for (int i = next++; i < n && !failed.load(); i = next++) {
        absl::Status s = fn(i, stubs);
        if (!s.ok()) {
          failed.store(true);
          absl::MutexLock lock(&mu);
          if (first.ok()) first = std::move(s);
        }
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return first;
}

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

std::string ClusterId(int i) { return absl::StrFormat("c-%04d", i + 1); }

class StepTimer {
 public:
  StepTimer() : start_(std::chrono::steady_clock::now()), last_(start_) {}
  void Done(absl::string_view what) {
    const auto now = std::chrono::steady_clock::now();
    std::printf("  %-58s %6.1f s\n", std::string(what).c_str(),
                Seconds(now - last_));
    std::fflush(stdout);
    last_ = now;
  }
  double Total() const {
    return Seconds(std::chrono::steady_clock::now() - start_);
  }

 private:
  std::chrono::steady_clock::time_point start_, last_;
};

absl::Status RegisterCluster(Stubs& stubs, const std::string& admin_token,
                             const std::string& cluster_id,
                             const std::string& provider_id, int gpus,
                             std::string* token) {
  {
    pb::CreateTokenRequest r;
    r.set_request_id(absl::StrCat("setup-token-", cluster_id));
    r.set_role(pb::ROLE_AGENT);
    r.set_cluster_id(cluster_id);
    r.set_provider_id(provider_id);
    r.set_description("scheduler_load agent");
    pb::CreateTokenResponse out;
    RETURN_IF_ERROR(
        Check(stubs.admin->CreateToken(As(admin_token).get(), r, &out),
              absl::StrCat("CreateToken ", cluster_id)));
    *token = out.secret();
  }
  {
    pb::RegisterRequest r;
    r.set_request_id(absl::StrCat("setup-register-", cluster_id));
    r.set_region("cn-hangzhou");
    r.set_meter("simulated");
    r.set_agent_version("scheduler_load");
    pb::GpuModel* m = r.add_inventory();
    m->set_model(kModel);
    m->set_hardware_class(pb::HARDWARE_CLASS_OTHER);
    m->set_gpu_count(gpus);
    m->set_price_fen_per_gpu_hour(kPriceFenPerGpuHour);
    pb::RegisterResponse out;
    RETURN_IF_ERROR(Check(stubs.agent->Register(As(*token).get(), r, &out),
                          absl::StrCat("Register ", cluster_id)));
  }
  {
    pb::SetClusterStateRequest r;
    r.set_request_id(absl::StrCat("setup-approve-", cluster_id));
    r.set_cluster_id(cluster_id);
    r.set_state(pb::CLUSTER_STATE_APPROVED);
    pb::Cluster out;
    RETURN_IF_ERROR(
        Check(stubs.admin->SetClusterState(As(admin_token).get(), r, &out),
              absl::StrCat("SetClusterState ", cluster_id)));
  }
  return absl::OkStatus();
}

absl::Status Heartbeat(Stubs& stubs, const std::string& token,
                       const std::string& cluster_id,
                       const std::vector<Meter>& meters, int gpus,
                       const std::string& request_id) {
  pb::HeartbeatRequest r;
  r.set_request_id(request_id);
  r.set_healthy(true);
  for (size_t j = 0; j < meters.size(); ++j) {
    pb::ObservedAllocation* o = r.add_allocations();
    o->set_allocation_id(meters[j].allocation_id);
    o->set_running(true);
    o->add_gpu_indices(static_cast<int32_t>(j));
  }
  (*r.mutable_free_gpus())[kModel] = gpus - static_cast<int>(meters.size());
  pb::HeartbeatResponse out;
  RETURN_IF_ERROR(Check(stubs.agent->Heartbeat(As(token).get(), r, &out),
                        absl::StrCat("Heartbeat ", cluster_id)));
  if (out.allocations_size() != static_cast<int>(meters.size())) {
    return absl::InternalError(absl::StrCat(
        "Heartbeat ", cluster_id, ": scheduler wants ", out.allocations_size(),
        " allocations running, the agent runs ", meters.size()));
  }
  return absl::OkStatus();
}

// Builds the world through the API as the admin of `admin_token`.
absl::StatusOr<World> Setup(const std::string& target,
                            const std::string& admin_token, int clusters,
                            int allocations) {
  World world;
  world.admin_token = admin_token;
  world.gpus_per_cluster = (allocations + clusters - 1) / clusters;
  Stubs stubs(target);
  StepTimer timer;
  const absl::Time now = absl::Now();

  std::string program_id;
  {
    pb::CreateProgramRequest r;
    r.set_request_id("setup-program");
    r.set_name("scheduler_load");
    r.set_issuer("scheduler_load");
    r.set_budget_fen(kVoucherFen * (kEnterprises + 1));
    *r.mutable_valid_from() = ToProto(now - absl::Hours(24));
    *r.mutable_valid_until() = ToProto(now + absl::Hours(24 * 365));
    r.set_domestic_ratio_bp(kRatioBp);
    r.set_other_ratio_bp(kRatioBp);
    r.set_sme_ratio_bp(kRatioBp);
    r.set_enterprise_cap_fen(0);
    pb::Program out;
    RETURN_IF_ERROR(
        Check(stubs.admin->CreateProgram(As(admin_token).get(), r, &out),
              "CreateProgram"));
    program_id = out.program_id();
  }
  std::string provider_id;
  {
    pb::RegisterProviderRequest r;
    r.set_request_id("setup-provider");
    r.set_name("scheduler_load provider");
    r.set_credit_code(CreditCode(1));
    pb::Provider out;
    RETURN_IF_ERROR(
        Check(stubs.admin->RegisterProvider(As(admin_token).get(), r, &out),
              "RegisterProvider"));
    provider_id = out.provider_id();
  }
  // Enterprises 0..kEnterprises-1 hold the allocations; the last one is
  // the probe's.
  std::vector<std::string> enterprise_tokens(kEnterprises + 1);
  RETURN_IF_ERROR(ParallelFor(
      target, kEnterprises + 1, kSetupThreads,
      [&](int e, Stubs& s) -> absl::Status {
        std::string enterprise_id;
        {
          pb::RegisterEnterpriseRequest r;
          r.set_request_id(absl::StrCat("setup-enterprise-", e));
          r.set_name(absl::StrCat("scheduler_load enterprise ", e));
          r.set_credit_code(CreditCode(100 + e));
          r.set_category("整机");
          r.set_district("余杭区");
          pb::Enterprise out;
          RETURN_IF_ERROR(
              Check(s.admin->RegisterEnterprise(As(admin_token).get(), r, &out),
                    "RegisterEnterprise"));
          enterprise_id = out.enterprise_id();
        }
        {
          pb::IssueVoucherRequest r;
          r.set_request_id(absl::StrCat("setup-voucher-", e));
          r.set_program_id(program_id);
          r.set_enterprise_id(enterprise_id);
          r.set_face_value_fen(kVoucherFen);
          pb::Voucher out;
          RETURN_IF_ERROR(
              Check(s.admin->IssueVoucher(As(admin_token).get(), r, &out),
                    "IssueVoucher"));
        }
        {
          pb::CreateTokenRequest r;
          r.set_request_id(absl::StrCat("setup-enterprise-token-", e));
          r.set_role(pb::ROLE_ENTERPRISE);
          r.set_enterprise_id(enterprise_id);
          pb::CreateTokenResponse out;
          RETURN_IF_ERROR(
              Check(s.admin->CreateToken(As(admin_token).get(), r, &out),
                    "CreateToken enterprise"));
          enterprise_tokens[e] = out.secret();
        }
        return absl::OkStatus();
      }));
  world.probe_token = enterprise_tokens[kEnterprises];
  timer.Done(absl::StrCat("program, provider, ", kEnterprises + 1,
                          " enterprises with a voucher each"));

  std::vector<std::string> agent_tokens(clusters);
  RETURN_IF_ERROR(
      ParallelFor(target, clusters, kSetupThreads, [&](int i, Stubs& s) {
        return RegisterCluster(s, admin_token, ClusterId(i), provider_id,
                               world.gpus_per_cluster, &agent_tokens[i]);
      }));
  timer.Done(absl::StrCat(clusters, " clusters x ", world.gpus_per_cluster,
                          " GPUs: agent token, Register, approve"));

  std::vector<pb::Allocation> placed(allocations);
  RETURN_IF_ERROR(
      ParallelFor(target, allocations, kSetupThreads, [&](int i, Stubs& s) {
        pb::AllocateRequest r;
        r.set_request_id(absl::StrCat("setup-alloc-", i));
        pb::ResourceRequest* res = r.mutable_resources();
        res->set_gpu_model(kModel);
        res->set_gpu_count(1);
        res->set_max_duration_s(kAllocationSeconds);
        RETURN_IF_ERROR(Check(
            s.enterprise->Allocate(
                As(enterprise_tokens[i % kEnterprises]).get(), r, &placed[i]),
            absl::StrCat("Allocate ", i)));
        if (placed[i].state() != pb::ALLOCATION_STATE_ASSIGNED) {
          return absl::InternalError(
              absl::StrCat("allocation ", placed[i].allocation_id(), " is ",
                           pb::AllocationState_Name(placed[i].state()),
                           ", expected ASSIGNED"));
        }
        return absl::OkStatus();
      }));
  timer.Done(absl::StrCat(allocations, " one-GPU allocations (Allocate)"));

  std::map<std::string, int> index;
  for (int i = 0; i < clusters; ++i) index[ClusterId(i)] = i;
  std::vector<std::vector<Meter>> meters(clusters);
  for (const pb::Allocation& a : placed) {
    auto it = index.find(a.cluster_id());
    if (it == index.end()) {
      return absl::InternalError(absl::StrCat("allocation ", a.allocation_id(),
                                              " landed on unknown cluster ",
                                              a.cluster_id()));
    }
    meters[it->second].push_back(
        Meter{a.allocation_id(), 1, UnixNanos(a.assigned_at())});
  }
  RETURN_IF_ERROR(
      ParallelFor(target, clusters, kSetupThreads, [&](int i, Stubs& s) {
        return Heartbeat(s, agent_tokens[i], ClusterId(i), meters[i],
                         world.gpus_per_cluster, "setup-heartbeat");
      }));
  timer.Done(
      absl::StrCat(clusters, " heartbeats reporting the allocations running"));

  RETURN_IF_ERROR(
      ParallelFor(target, kSpareClusters, kSetupThreads, [&](int i, Stubs& s) {
        const std::string id = absl::StrFormat("spare-%d", i + 1);
        std::string token;
        RETURN_IF_ERROR(RegisterCluster(s, admin_token, id, provider_id,
                                        kSpareGpus, &token));
        return Heartbeat(s, token, id, {}, kSpareGpus, "setup-heartbeat");
      }));
  timer.Done(absl::StrCat(kSpareClusters, " spare clusters x ", kSpareGpus,
                          " free GPUs for the Allocate probe"));

  for (int i = 0; i < clusters; ++i) {
    if (meters[i].empty()) continue;
    ClusterLoad& c = world.clusters.emplace_back();
    c.cluster_id = ClusterId(i);
    c.bearer = Bearer(agent_tokens[i]);
    c.meters = std::move(meters[i]);
  }
  std::printf("setup: %.1f s in all\n", timer.Total());
  return world;
}

// What the streams of one run counted, written by their threads and summed
// by the main thread.
struct alignas(64) Counters {
  std::atomic<int64_t> batches{0};         // RPCs that returned OK
  std::atomic<int64_t> accepted{0};        // ACCEPTED acks of those RPCs
  std::atomic<int64_t> not_accepted{0};    // other acks of those RPCs
  std::atomic<int64_t> failed_rpcs{0};     // RPCs that did not return OK
  std::atomic<int64_t> failed_records{0};  // records of those RPCs
  std::atomic<int64_t> paced{0};  // skips so that no record ends after now
};

struct Totals {
  int64_t batches = 0, accepted = 0, not_accepted = 0, failed_rpcs = 0,
          failed_records = 0, paced = 0;
};

// S threads, each with its own connection to `target`, sending ReportUsage
// batches for the clusters it owns until stopped.
class Streams {
 public:
  Streams(const std::string& target, std::vector<ClusterLoad>& clusters,
          int count, int records_per_batch)
      : counters_(count), latencies_(count) {
    for (int s = 0; s < count; ++s) {
      std::vector<ClusterLoad*> mine;
      for (size_t c = s; c < clusters.size(); c += count)
        mine.push_back(&clusters[c]);
      threads_.emplace_back([this, target, s, mine, records_per_batch] {
        Loop(target, s, mine, records_per_batch);
      });
    }
  }
  ~Streams() { Stop(); }

  void Measure(bool on) { measuring_.store(on); }

  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  Totals totals() const {
    Totals t;
    for (const Counters& c : counters_) {
      t.batches += c.batches.load(std::memory_order_relaxed);
      t.accepted += c.accepted.load(std::memory_order_relaxed);
      t.not_accepted += c.not_accepted.load(std::memory_order_relaxed);
      t.failed_rpcs += c.failed_rpcs.load(std::memory_order_relaxed);
      t.failed_records += c.failed_records.load(std::memory_order_relaxed);
      t.paced += c.paced.load(std::memory_order_relaxed);
    }
    return t;
  }

  // ReportUsage latencies (ms) of the measured window; after Stop().
  std::vector<double> latencies() const {
    std::vector<double> all;
    for (const std::vector<double>& v : latencies_)
      all.insert(all.end(), v.begin(), v.end());
    return all;
  }

  std::string first_problem() const {
    absl::MutexLock lock(&mu_);
    return first_problem_;
  }

 private:
  void Problem(const std::string& what) {
    absl::MutexLock lock(&mu_);
    if (first_problem_.empty()) first_problem_ = what;
  }

  void Loop(const std::string& target, int s, std::vector<ClusterLoad*> mine,
            int records_per_batch) {
    if (mine.empty()) return;
    Counters& counters = counters_[s];
    std::vector<double>& latencies = latencies_[s];
    auto channel = NewChannel(target);
    auto stub = pb::AgentService::NewStub(channel);
    pb::ReportUsageRequest request;
    pb::ReportUsageResponse response;
    int64_t n = 0;
    size_t next = 0;
    size_t skipped = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      ClusterLoad& cluster = *mine[next];
      next = (next + 1) % mine.size();
      std::vector<Meter>& meters = cluster.meters;
      const int per_meter =
          std::max<int>(1, records_per_batch / static_cast<int>(meters.size()));
      // As an agent does, records cover from the end of the previous one up
      // to now, so record ends follow real time (the scheduler's now is no
      // earlier than ours when it applies the batch). Each meter's span is
      // cut into `per_meter` records of at least 1 ms.
      const int64_t now_ns = absl::ToUnixMillis(absl::Now()) * 1'000'000;
      int64_t latest = 0;
      for (const Meter& m : meters) latest = std::max(latest, m.cursor_ns);
      if (latest + per_meter * 1'000'000LL > now_ns) {
        counters.paced.fetch_add(1, std::memory_order_relaxed);
        if (++skipped >= mine.size()) {
          absl::SleepFor(absl::Milliseconds(1));
          skipped = 0;
        }
        continue;
      }
      skipped = 0;
      request.Clear();
      request.set_request_id(absl::StrCat("load-", s, "-", ++n));
      for (const Meter& m : meters) {
        const int64_t span_ms = (now_ns - m.cursor_ns) / 1'000'000;
        for (int j = 0; j < per_meter; ++j) {
          pb::UsageRecord* u = request.add_records();
          u->set_allocation_id(m.allocation_id);
          u->set_sequence(m.next_sequence + j);
          const int64_t from_ms = span_ms * j / per_meter;
          const int64_t to_ms = span_ms * (j + 1) / per_meter;
          SetTimestamp(m.cursor_ns + from_ms * 1'000'000, u->mutable_start());
          SetTimestamp(m.cursor_ns + to_ms * 1'000'000, u->mutable_end());
          u->set_gpu_ms(to_ms - from_ms);  // one GPU, busy
          u->set_mean_utilization_bp(9500);
          u->set_energy_mj(700 * (to_ms - from_ms));  // 700 W, in mJ
        }
      }
      grpc::ClientContext context;
      context.AddMetadata("authorization", cluster.bearer);
      context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
      const bool measured = measuring_.load(std::memory_order_relaxed);
      const auto t0 = std::chrono::steady_clock::now();
      const grpc::Status status =
          stub->ReportUsage(&context, request, &response);
      const auto t1 = std::chrono::steady_clock::now();
      if (measured) latencies.push_back(Seconds(t1 - t0) * 1e3);
      if (!status.ok()) {
        counters.failed_rpcs.fetch_add(1, std::memory_order_relaxed);
        counters.failed_records.fetch_add(request.records_size(),
                                          std::memory_order_relaxed);
        Problem(absl::StrCat("ReportUsage ", cluster.cluster_id, ": ",
                             status.error_code(), " ", status.error_message()));
        continue;
      }
      counters.batches.fetch_add(1, std::memory_order_relaxed);
      if (response.acks_size() != request.records_size()) {
        counters.not_accepted.fetch_add(request.records_size(),
                                        std::memory_order_relaxed);
        Problem(absl::StrCat("ReportUsage ", cluster.cluster_id, ": ",
                             response.acks_size(), " acks for ",
                             request.records_size(), " records"));
        continue;
      }
      int64_t accepted = 0, not_accepted = 0;
      for (int i = 0; i < response.acks_size(); ++i) {
        const pb::UsageAck& ack = response.acks(i);
        const pb::UsageRecord& u = request.records(i);
        Meter& m = meters[i / per_meter];
        const bool done = ack.result() == pb::USAGE_RESULT_ACCEPTED ||
                          ack.result() == pb::USAGE_RESULT_DUPLICATE;
        if (ack.result() == pb::USAGE_RESULT_ACCEPTED) {
          ++accepted;
        } else {
          ++not_accepted;
          Problem(absl::StrCat(u.allocation_id(), " #", u.sequence(), ": ",
                               pb::UsageResult_Name(ack.result()), " ",
                               ack.reason()));
        }
        if (done && u.sequence() == m.next_sequence) {
          ++m.next_sequence;
          m.cursor_ns = UnixNanos(u.end());
        }
      }
      counters.accepted.fetch_add(accepted, std::memory_order_relaxed);
      counters.not_accepted.fetch_add(not_accepted, std::memory_order_relaxed);
    }
  }

  std::vector<Counters> counters_;
  std::vector<std::vector<double>> latencies_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> measuring_{false};
  mutable absl::Mutex mu_;
  std::string first_problem_ ABSL_GUARDED_BY(mu_);
};

// Starts an Allocate (one GPU) every kProbeInterval, as the probe
// enterprise, whatever the latency (an open loop, so that slow answers do
// not thin out the samples), and releases each allocation once placed.
// Worker w of kProbeWorkers fires at start + (k * kProbeWorkers + w) *
// kProbeInterval; a worker whose previous call is still running when its
// turn comes starts late and counts the delay.
class Probe {
 public:
  Probe(const std::string& target, const std::string& token,
        const std::string& name)
      : channel_(NewChannel(target)),
        stub_(pb::EnterpriseService::NewStub(channel_)),
        workers_(kProbeWorkers) {
    const absl::Time start = absl::Now();
    for (int w = 0; w < kProbeWorkers; ++w) {
      threads_.emplace_back([this, token, name, start, w] {
        Loop(token, name, start + w * kProbeInterval, w);
      });
    }
  }
  ~Probe() { Stop(); }

  void Measure(bool on) { measuring_.store(on); }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // After Stop().
  std::vector<double> allocate_ms() const {
    std::vector<double> all;
    for (const Worker& w : workers_)
      all.insert(all.end(), w.allocate_ms.begin(), w.allocate_ms.end());
    return all;
  }
  std::vector<double> release_ms() const {
    std::vector<double> all;
    for (const Worker& w : workers_)
      all.insert(all.end(), w.release_ms.begin(), w.release_ms.end());
    return all;
  }
  int64_t late_starts() const {
    int64_t n = 0;
    for (const Worker& w : workers_) n += w.late;
    return n;
  }
  int64_t errors() const {
    int64_t n = 0;
    for (const Worker& w : workers_) n += w.errors;
    return n;
  }
  std::string first_error() const {
    for (const Worker& w : workers_) {
      if (!w.first_error.empty()) return w.first_error;
    }
    return "";
  }

 private:
  struct Worker {
    std::vector<double> allocate_ms;
    std::vector<double> release_ms;
    int64_t late = 0;
    int64_t errors = 0;
    std::string first_error;
    void Error(absl::string_view what) {
      ++errors;
      if (first_error.empty()) first_error = std::string(what);
    }
  };

  void Loop(const std::string& token, const std::string& name, absl::Time next,
            int w) {
    Worker& me = workers_[w];
    const absl::Duration period = kProbeWorkers * kProbeInterval;
    int64_t n = 0;
    while (!stop_.load()) {
      const absl::Time now = absl::Now();
      if (next > now) {
        absl::SleepFor(next - now);
        if (stop_.load()) break;
      } else if (now - next > kProbeInterval && measuring_.load()) {
        ++me.late;
      }
      next += period;
      if (next < absl::Now()) next = absl::Now();
      const bool measured = measuring_.load();
      pb::AllocateRequest r;
      r.set_request_id(absl::StrCat("probe-", name, "-", w, "-", ++n));
      pb::ResourceRequest* res = r.mutable_resources();
      res->set_gpu_model(kModel);
      res->set_gpu_count(1);
      res->set_max_duration_s(kAllocationSeconds);
      pb::Allocation a;
      auto t0 = std::chrono::steady_clock::now();
      grpc::Status s = stub_->Allocate(As(token).get(), r, &a);
      auto t1 = std::chrono::steady_clock::now();
      if (!s.ok()) {
        me.Error(absl::StrCat("Allocate: ", s.error_message()));
        continue;
      }
      if (a.state() != pb::ALLOCATION_STATE_ASSIGNED) {
        me.Error(absl::StrCat("Allocate: ", a.allocation_id(), " is ",
                              pb::AllocationState_Name(a.state())));
      } else if (measured) {
        me.allocate_ms.push_back(Seconds(t1 - t0) * 1e3);
      }
      pb::ReleaseAllocationRequest rr;
      rr.set_request_id(absl::StrCat("probe-", name, "-", w, "-", n, "-r"));
      rr.set_allocation_id(a.allocation_id());
      pb::Allocation out;
      t0 = std::chrono::steady_clock::now();
      s = stub_->ReleaseAllocation(As(token).get(), rr, &out);
      t1 = std::chrono::steady_clock::now();
      if (!s.ok()) {
        me.Error(absl::StrCat("ReleaseAllocation: ", s.error_message()));
      } else if (measured) {
        me.release_ms.push_back(Seconds(t1 - t0) * 1e3);
      }
    }
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::EnterpriseService::Stub> stub_;
  std::vector<Worker> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> measuring_{false};
  std::vector<std::thread> threads_;  // last: start once the rest exists
};

// The ceiling: an AgentService that accepts every record and does nothing.
class NoopAgentService final : public pb::AgentService::Service {
 public:
  grpc::Status ReportUsage(grpc::ServerContext* context,
                           const pb::ReportUsageRequest* request,
                           pb::ReportUsageResponse* response) override {
    response->mutable_acks()->Reserve(request->records_size());
    for (const pb::UsageRecord& u : request->records()) {
      pb::UsageAck* ack = response->add_acks();
      ack->set_allocation_id(u.allocation_id());
      ack->set_sequence(u.sequence());
      ack->set_result(pb::USAGE_RESULT_ACCEPTED);
    }
    return grpc::Status::OK;
  }
};

struct RunResult {
  double seconds = 0;
  double records_per_s = 0;
  double batches_per_s = 0;
  double process_cores = 0;
  double other_cores = 0;
  double rpc_p50_ms = 0, rpc_p99_ms = 0;
  // The thread that spent most time on a CPU: its share of the wall time
  // on a CPU and waiting for one (a serial bottleneck shows here).
  double busiest_on_cpu = 0, busiest_runqueue = 0;
  double all_runqueue = 0;  // summed over threads, per wall second
  int64_t measured_batches = 0;
  Totals total;  // whole run, warm-up included
  std::string first_problem;
  // Scheduler run only.
  double commands_per_txn = 0;
  double txn_ms = 0;
};

struct Snapshot {
  std::chrono::steady_clock::time_point at;
  Totals totals;
  int64_t process_cpu_ns = 0;
  double machine_busy_s = 0;
  std::map<int, ThreadTimes> threads;
};

Snapshot Take(const Streams& streams) {
  Snapshot s;
  s.at = std::chrono::steady_clock::now();
  s.totals = streams.totals();
  s.process_cpu_ns = ProcessCpuNanos();
  s.machine_busy_s = MachineBusySeconds();
  s.threads = ThreadSchedStats();
  return s;
}

// Runs the streams against `target` for warm-up + `seconds`; `during`
// (may be null) is told when the measured window opens and closes.
RunResult RunLoad(const std::string& target, std::vector<ClusterLoad>& clusters,
                  int streams_count, int records_per_batch, double warmup_s,
                  int seconds, const std::function<void(bool)>& during,
                  scheduler::SchedulerServer* server) {
  Streams streams(target, clusters, streams_count, records_per_batch);
  absl::SleepFor(absl::Seconds(warmup_s));
  // The server leads from its start (the benchmark runs one replica).
  auto writer_stats = [server] {
    engine::WriterStats stats;
    if (server == nullptr) return stats;
    absl::StatusOr<std::shared_ptr<engine::Writer>> writer =
        server->replica().writer();
    if (writer.ok()) stats = (*writer)->stats();
    return stats;
  };
  const engine::WriterStats w0 = writer_stats();
  streams.Measure(true);
  if (during) during(true);
  const Snapshot a = Take(streams);
  absl::SleepFor(absl::Seconds(seconds));
  const Snapshot b = Take(streams);
  streams.Measure(false);
  if (during) during(false);
  const engine::WriterStats w1 = writer_stats();
  streams.Stop();

  RunResult r;
  r.seconds = Seconds(b.at - a.at);
  r.records_per_s =
      static_cast<double>(b.totals.accepted - a.totals.accepted) / r.seconds;
  r.measured_batches = b.totals.batches - a.totals.batches;
  r.batches_per_s = static_cast<double>(r.measured_batches) / r.seconds;
  r.process_cores = static_cast<double>(b.process_cpu_ns - a.process_cpu_ns) /
                    (r.seconds * 1e9);
  r.other_cores = std::max(
      0.0, (b.machine_busy_s - a.machine_busy_s) / r.seconds - r.process_cores);
  std::vector<double> latencies = streams.latencies();
  r.rpc_p50_ms = Quantile(latencies, 0.50);
  r.rpc_p99_ms = Quantile(latencies, 0.99);
  int64_t busiest = -1, all_wait = 0;
  for (const auto& [tid, t1] : b.threads) {
    auto t0 = a.threads.find(tid);
    if (t0 == a.threads.end()) continue;
    const int64_t on = t1.on_cpu_ns - t0->second.on_cpu_ns;
    const int64_t wait = t1.runqueue_ns - t0->second.runqueue_ns;
    all_wait += wait;
    if (on > busiest) {
      busiest = on;
      r.busiest_on_cpu = static_cast<double>(on) / (r.seconds * 1e9);
      r.busiest_runqueue = static_cast<double>(wait) / (r.seconds * 1e9);
    }
  }
  r.all_runqueue = static_cast<double>(all_wait) / (r.seconds * 1e9);
  r.total = streams.totals();
  r.first_problem = streams.first_problem();
  if (server != nullptr && w1.batches > w0.batches) {
    const int64_t txns = w1.batches - w0.batches;
    r.commands_per_txn = static_cast<double>(w1.commands - w0.commands) / txns;
    r.txn_ms = r.seconds * 1e3 / static_cast<double>(txns);
  }
  return r;
}

void PrintRun(const char* name, const RunResult& r) {
  std::printf(
      "%-10s %12s records/s  %8s batches/s  ReportUsage p50 %6.2f ms, p99 "
      "%7.2f ms  cores %.2f, others %.2f\n",
      name, Rate(r.records_per_s).c_str(), Rate(r.batches_per_s).c_str(),
      r.rpc_p50_ms, r.rpc_p99_ms, r.process_cores, r.other_cores);
  if (r.records_per_s > 0) {
    std::printf(
        "           this process: %.1f us of CPU per accepted record; busiest "
        "thread on a CPU %.0f%% of the time and waiting for one %.0f%%; all "
        "threads waited for a CPU %.2f s per s\n",
        r.process_cores * 1e6 / r.records_per_s, 100 * r.busiest_on_cpu,
        100 * r.busiest_runqueue, r.all_runqueue);
  }
  if (r.commands_per_txn > 0) {
    std::printf(
        "           group commit: %.1f commands per transaction, one every "
        "%.2f ms\n",
        r.commands_per_txn, r.txn_ms);
  }
  const Totals& t = r.total;
  const int64_t sent = t.accepted + t.not_accepted + t.failed_records;
  std::printf(
      "           whole run (warm-up included): %lld records sent, %lld "
      "accepted, %lld not accepted, %lld in %lld failed RPCs, %lld pacing "
      "skips\n",
      static_cast<long long>(sent), static_cast<long long>(t.accepted),
      static_cast<long long>(t.not_accepted),
      static_cast<long long>(t.failed_records),
      static_cast<long long>(t.failed_rpcs), static_cast<long long>(t.paced));
  if (!r.first_problem.empty())
    std::printf("           first problem: %s\n", r.first_problem.c_str());
  std::fflush(stdout);
}

// Sum over the scheduler's allocations of the last accepted sequence: the
// records it holds, as an admin reads them.
absl::StatusOr<int64_t> RecordsInScheduler(const std::string& target,
                                           const std::string& admin_token) {
  Stubs stubs(target);
  int64_t total = 0;
  pb::AdminListAllocationsRequest r;
  r.mutable_page()->set_page_size(1000);
  while (true) {
    pb::AdminListAllocationsResponse out;
    RETURN_IF_ERROR(
        Check(stubs.admin->ListAllocations(As(admin_token).get(), r, &out),
              "ListAllocations"));
    for (const pb::Allocation& a : out.allocations())
      total += a.last_sequence();
    if (out.next_page_token().empty()) break;
    r.mutable_page()->set_page_token(out.next_page_token());
  }
  return total;
}

const char* Verdict(bool pass) { return pass ? "PASS" : "BELOW"; }

// What one store's scheduler run measured.
struct StoreFigures {
  std::string name;
  RunResult run;
  double allocate_p50 = 0;
  double allocate_p99 = 0;
};

// Starts an in-process scheduler on the store `store_url` names (the
// embedded one in `data_dir` when empty), builds the world through its API,
// times Allocate idle, then runs the load with the probe and checks that
// the scheduler holds every record the streams saw accepted. Fills
// `ceiling_clusters` (when not null) with the meters the load started
// from, and `stream_count_out` with the streams used.
absl::StatusOr<StoreFigures> MeasureScheduler(
    const std::string& name, const std::string& store_url,
    const std::string& data_dir, int clusters, int allocations, int streams,
    int per_batch, double warmup, int seconds,
    std::vector<ClusterLoad>* ceiling_clusters, int* stream_count_out) {
  RealClock clock;
  pb::SchedulerConfig config;
  config.set_data_dir(data_dir);
  config.set_store(store_url);
  config.set_listen_address("127.0.0.1:0");
  config.set_tick_interval_ms(1000);
  config.set_usage_grace_s(300);
  config.set_heartbeat_interval_s(10);
  // No heartbeats during the run: keep the clusters from being lost.
  config.set_cluster_silence_s(3600);
  absl::StatusOr<std::unique_ptr<scheduler::SchedulerServer>> server =
      scheduler::SchedulerServer::Start(config, clock);
  if (!server.ok()) return server.status();
  const std::string target = absl::StrCat("127.0.0.1:", (*server)->port());
  if ((*server)->admin_token_path().empty()) {
    return absl::FailedPreconditionError(
        "the store is not empty (give --postgres a fresh database)");
  }
  absl::StatusOr<std::string> admin_token =
      ReadFile((*server)->admin_token_path());
  if (!admin_token.ok()) return admin_token.status();
  std::printf("setup through the API (%d client threads):\n", kSetupThreads);
  std::fflush(stdout);
  absl::StatusOr<World> world =
      Setup(target, std::string(absl::StripAsciiWhitespace(*admin_token)),
            clusters, allocations);
  if (!world.ok()) return world.status();
  const int loaded = static_cast<int>(world->clusters.size());
  const int stream_count = std::min(streams, loaded);
  *stream_count_out = stream_count;
  std::printf(
      "  %d clusters carry allocations; %d streams; a batch carries %d "
      "record(s) per allocation\n\n",
      loaded, stream_count,
      std::max(1, per_batch /
                      static_cast<int>(world->clusters.front().meters.size())));
  std::fflush(stdout);

  // Allocate without load, for reference.
  std::vector<double> idle_allocate;
  {
    Probe probe(target, world->probe_token, "idle");
    probe.Measure(true);
    absl::SleepFor(kIdleProbeTime);
    probe.Stop();
    idle_allocate = probe.allocate_ms();
    if (probe.errors() > 0) {
      return absl::InternalError(absl::StrCat("probe: ", probe.first_error()));
    }
  }
  const double idle_p50 = Quantile(idle_allocate, 0.5);
  const double idle_p99 = Quantile(idle_allocate, 0.99);

  // The ceiling sends the same batches: start from the same meters.
  if (ceiling_clusters != nullptr) *ceiling_clusters = world->clusters;

  // The scheduler under load, with the probe.
  Probe probe(target, world->probe_token, "load");
  RunResult sched = RunLoad(
      target, world->clusters, stream_count, per_batch, warmup, seconds,
      [&](bool on) { probe.Measure(on); }, server->get());
  probe.Stop();
  PrintRun("scheduler", sched);
  std::vector<double> allocate = probe.allocate_ms();
  std::vector<double> release = probe.release_ms();
  const double alloc_p50 = Quantile(allocate, 0.5);
  const double alloc_p99 = Quantile(allocate, 0.99);
  const double alloc_max = allocate.empty() ? 0 : allocate.back();
  std::printf(
      "           Allocate under load: %zu calls, p50 %.2f ms, p99 %.2f ms, "
      "max %.2f ms (idle: p50 %.2f ms, p99 %.2f ms); ReleaseAllocation p50 "
      "%.2f ms, p99 %.2f ms\n",
      allocate.size(), alloc_p50, alloc_p99, alloc_max, idle_p50, idle_p99,
      Quantile(release, 0.5), Quantile(release, 0.99));
  if (probe.late_starts() > 0) {
    std::printf(
        "           %lld probe calls started more than %lld ms late (all %d "
        "probe workers busy)\n",
        static_cast<long long>(probe.late_starts()),
        static_cast<long long>(absl::ToInt64Milliseconds(kProbeInterval)),
        kProbeWorkers);
  }
  if (probe.errors() > 0) {
    std::printf("           probe errors: %lld; first: %s\n",
                static_cast<long long>(probe.errors()),
                probe.first_error().c_str());
  }

  // Every record the streams saw accepted is in the scheduler.
  absl::StatusOr<int64_t> in_scheduler =
      RecordsInScheduler(target, world->admin_token);
  if (!in_scheduler.ok()) return in_scheduler.status();
  std::printf(
      "           the scheduler's allocations hold %lld records; the streams "
      "counted %lld accepted%s\n",
      static_cast<long long>(*in_scheduler),
      static_cast<long long>(sched.total.accepted),
      *in_scheduler == sched.total.accepted ? "" : "  (MISMATCH)");
  std::fflush(stdout);
  const int64_t sent = sched.total.accepted + sched.total.not_accepted +
                       sched.total.failed_records;
  const bool refused_too_many =
      sent == 0 || static_cast<double>(sent - sched.total.accepted) >
                       kMaxRefusedShare * static_cast<double>(sent);
  (*server)->Shutdown(absl::Seconds(5));
  server->reset();
  if (refused_too_many || allocate.empty()) {
    return absl::InternalError(absl::StrCat(
        "more than ", 100 * kMaxRefusedShare,
        "% of the records were not accepted, or no Allocate was timed; the "
        "figures are not valid"));
  }
  StoreFigures out;
  out.name = name;
  out.run = sched;
  out.allocate_p50 = alloc_p50;
  out.allocate_p99 = alloc_p99;
  return out;
}

int Run() {
  const int clusters = absl::GetFlag(FLAGS_clusters);
  const int allocations = absl::GetFlag(FLAGS_allocations);
  const int streams = absl::GetFlag(FLAGS_streams);
  const int per_batch = absl::GetFlag(FLAGS_records_per_batch);
  const int seconds = absl::GetFlag(FLAGS_seconds);
  const double warmup = absl::GetFlag(FLAGS_warmup_seconds);
  if (clusters < 1 || clusters > 99'999 || allocations < 1 || streams < 1 ||
      per_batch < 1 || per_batch > 10'000 || seconds < 1 || warmup < 0 ||
      (allocations + clusters - 1) / clusters > 10'000) {
    std::fprintf(stderr,
                 "scheduler_load: need --clusters in 1..99999, --allocations "
                 ">= 1 (at most 10000 per cluster), --streams >= 1, "
                 "--records-per-batch in 1..10000, --seconds >= 1 and "
                 "--warmup-seconds >= 0\n");
    return 2;
  }
  absl::StatusOr<TempDir> dir =
      TempDir::Make("scheduler_load", absl::GetFlag(FLAGS_dir));
  if (!dir.ok()) {
    std::fprintf(stderr, "scheduler_load: %s\n",
                 dir.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "scheduler_load: usage records/s accepted durably by an in-process "
      "voucher-scheduler over gRPC\n");
  std::printf("  data directory   %s (%s), removed at exit\n",
              dir->path().c_str(), FileSystemType(dir->path()).c_str());
  std::printf(
      "  machine          %u CPU(s) online; client, scheduler and ceiling "
      "server share them\n",
      std::thread::hardware_concurrency());
  std::printf(
      "  workload         %d clusters, %d one-GPU allocations; %d streams "
      "(one connection each) sending ReportUsage of %d records as the "
      "clusters' agents, each record running from the previous one's end to "
      "now\n",
      clusters, allocations, streams, per_batch);
  std::printf(
      "  probe            Allocate (then ReleaseAllocation) of one GPU started "
      "every %lld ms, open loop, as another enterprise\n",
      static_cast<long long>(absl::ToInt64Milliseconds(kProbeInterval)));
  std::printf(
      "  timing           %.1f s warm-up, then %d s measured, for the "
      "scheduler and for the no-op ceiling\n\n",
      warmup, seconds);
  std::fflush(stdout);

  // The embedded store, then PostgreSQL when asked for, each measured the
  // same way from a fresh store.
  std::vector<std::pair<std::string, std::string>> stores = {{"SQLite", ""}};
  if (!absl::GetFlag(FLAGS_postgres).empty()) {
    stores.push_back({"PostgreSQL", absl::GetFlag(FLAGS_postgres)});
  }
  std::vector<StoreFigures> figures;
  std::vector<ClusterLoad> ceiling_clusters;
  int stream_count = 0;
  for (const auto& [name, url] : stores) {
    std::printf("=== %s ===\n", name.c_str());
    std::fflush(stdout);
    absl::StatusOr<StoreFigures> f = MeasureScheduler(
        name, url, dir->path() + "/data", clusters, allocations, streams,
        per_batch, warmup, seconds,
        ceiling_clusters.empty() ? &ceiling_clusters : nullptr, &stream_count);
    if (!f.ok()) {
      std::fprintf(stderr, "scheduler_load: %s: %s\n", name.c_str(),
                   f.status().ToString().c_str());
      return 1;
    }
    figures.push_back(*std::move(f));
  }

  // The ceiling: the same streams against a server that does nothing.
  NoopAgentService noop;
  int noop_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &noop_port);
  builder.RegisterService(&noop);
  std::unique_ptr<grpc::Server> noop_server = builder.BuildAndStart();
  if (noop_server == nullptr || noop_port == 0) {
    std::fprintf(stderr, "scheduler_load: cannot start the no-op server\n");
    return 1;
  }
  RunResult ceiling =
      RunLoad(absl::StrCat("127.0.0.1:", noop_port), ceiling_clusters,
              stream_count, per_batch, warmup, seconds, nullptr, nullptr);
  noop_server->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
  PrintRun("ceiling", ceiling);
  if (ceiling.records_per_s <= 0) {
    std::fprintf(stderr, "scheduler_load: the ceiling measured nothing\n");
    return 1;
  }

  const bool at_target_size =
      clusters == kTargetClusters && allocations == kTargetAllocations;
  std::printf("\n%-38s %14s  %-30s %s\n", "measure", "value", "target",
              "result");
  for (const StoreFigures& f : figures) {
    const double ratio = f.run.records_per_s / ceiling.records_per_s;
    const std::string on = " (" + f.name + ")";
    std::printf(
        "%-38s %14s  %-30s %s\n", ("usage records/s accepted" + on).c_str(),
        Rate(f.run.records_per_s).c_str(),
        absl::StrCat(">= ", Rate(kTargetRecordsPerSecond), "/s").c_str(),
        Verdict(f.run.records_per_s >= kTargetRecordsPerSecond));
    std::printf(
        "%-38s %14.2f  %-30s %s\n", ("ratio to the no-op ceiling" + on).c_str(),
        ratio,
        absl::StrCat(">= ", kTargetCeilingShare, " (",
                     Rate(kTargetCeilingShare * ceiling.records_per_s), "/s)")
            .c_str(),
        Verdict(ratio >= kTargetCeilingShare));
    std::printf("%-38s %11.2f ms  %-30s %s\n",
                ("Allocate p99 under load" + on).c_str(), f.allocate_p99,
                absl::StrCat("< ", kTargetAllocateP99Ms, " ms").c_str(),
                Verdict(f.allocate_p99 < kTargetAllocateP99Ms));
    std::printf("%-38s %11.2f ms  %-30s %s\n",
                ("Allocate p50 under load" + on).c_str(), f.allocate_p50, "-",
                "-");
  }
  std::printf("%-38s %14s  %-30s %s\n", "ceiling: no-op gRPC server",
              Rate(ceiling.records_per_s).c_str(), "-", "-");
  if (!at_target_size) {
    std::printf(
        "\nnote: the targets are for %d clusters and %d allocations; this "
        "run had %d and %d.\n",
        kTargetClusters, kTargetAllocations, clusters, allocations);
  }
  if (ceiling.total.paced > 0) {
    std::printf(
        "\nnote: the ceiling streams had to wait %lld times so that no record "
        "would end after now (too few allocations for their pace); the "
        "ceiling is a lower bound.\n",
        static_cast<long long>(ceiling.total.paced));
  }
  double others = ceiling.other_cores;
  for (const StoreFigures& f : figures) {
    others = std::max(others, f.run.other_cores);
  }
  if (others > 0.25) {
    std::printf(
        "\nnote: other processes kept up to %.2f CPUs busy during the "
        "measurements; the figures understate this machine.\n",
        others);
  }
  return 0;
}

}  // namespace
}  // namespace computevoucher::bench

int main(int argc, char** argv) {
  computevoucher::ParseFlags(argc, argv);
  return computevoucher::bench::Run();
}
