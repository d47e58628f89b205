#include "tests/bench/scheduler_load_world.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "tests/bench/bench_util.h"

namespace computevoucher::bench::scheduler_load {

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

namespace {

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

// A program without a cap per enterprise; returns its id.
absl::StatusOr<std::string> CreateProgram(Stubs& stubs,
                                          const std::string& admin_token,
                                          absl::Time now) {
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
  return out.program_id();
}

// The provider of every cluster; returns its id.
absl::StatusOr<std::string> RegisterProvider(Stubs& stubs,
                                             const std::string& admin_token) {
  pb::RegisterProviderRequest r;
  r.set_request_id("setup-provider");
  r.set_name("scheduler_load provider");
  r.set_credit_code(CreditCode(1));
  pb::Provider out;
  RETURN_IF_ERROR(
      Check(stubs.admin->RegisterProvider(As(admin_token).get(), r, &out),
            "RegisterProvider"));
  return out.provider_id();
}

// Enterprise `e` with a voucher of `program_id`; sets `token` to a token of
// its own.
absl::Status AddEnterprise(Stubs& s, const std::string& admin_token,
                           const std::string& program_id, int e,
                           std::string* token) {
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
    RETURN_IF_ERROR(Check(s.admin->IssueVoucher(As(admin_token).get(), r, &out),
                          "IssueVoucher"));
  }
  {
    pb::CreateTokenRequest r;
    r.set_request_id(absl::StrCat("setup-enterprise-token-", e));
    r.set_role(pb::ROLE_ENTERPRISE);
    r.set_enterprise_id(enterprise_id);
    pb::CreateTokenResponse out;
    RETURN_IF_ERROR(Check(s.admin->CreateToken(As(admin_token).get(), r, &out),
                          "CreateToken enterprise"));
    *token = out.secret();
  }
  return absl::OkStatus();
}

// `allocations` one-GPU allocations, allocation i by the enterprise of
// enterprise_tokens[i % kEnterprises], into `placed`.
absl::Status PlaceAllocations(const std::string& target, int allocations,
                              const std::vector<std::string>& enterprise_tokens,
                              std::vector<pb::Allocation>& placed) {
  placed.resize(allocations);
  return ParallelFor(target, allocations, kSetupThreads, [&](int i, Stubs& s) {
    pb::AllocateRequest r;
    r.set_request_id(absl::StrCat("setup-alloc-", i));
    pb::ResourceRequest* res = r.mutable_resources();
    res->set_gpu_model(kModel);
    res->set_gpu_count(1);
    res->set_max_duration_s(kAllocationSeconds);
    RETURN_IF_ERROR(
        Check(s.enterprise->Allocate(
                  As(enterprise_tokens[i % kEnterprises]).get(), r, &placed[i]),
              absl::StrCat("Allocate ", i)));
    if (placed[i].state() != pb::ALLOCATION_STATE_ASSIGNED) {
      return absl::InternalError(absl::StrCat(
          "allocation ", placed[i].allocation_id(), " is ",
          pb::AllocationState_Name(placed[i].state()), ", expected ASSIGNED"));
    }
    return absl::OkStatus();
  });
}

// The meters of `placed`, by the index of the cluster they landed on.
absl::StatusOr<std::vector<std::vector<Meter>>> MetersByCluster(
    const std::vector<pb::Allocation>& placed, int clusters) {
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
  return meters;
}

// Clusters with free GPUs, where the probe's allocations land.
absl::Status AddSpareClusters(const std::string& target,
                              const std::string& admin_token,
                              const std::string& provider_id) {
  return ParallelFor(
      target, kSpareClusters, kSetupThreads, [&](int i, Stubs& s) {
        const std::string id = absl::StrFormat("spare-%d", i + 1);
        std::string token;
        RETURN_IF_ERROR(RegisterCluster(s, admin_token, id, provider_id,
                                        kSpareGpus, &token));
        return Heartbeat(s, token, id, {}, kSpareGpus, "setup-heartbeat");
      });
}

}  // namespace

absl::StatusOr<World> Setup(const std::string& target,
                            const std::string& admin_token, int clusters,
                            int allocations) {
  World world;
  world.admin_token = admin_token;
  world.gpus_per_cluster = (allocations + clusters - 1) / clusters;
  Stubs stubs(target);
  StepTimer timer;
  const absl::Time now = absl::Now();

  ASSIGN_OR_RETURN(const std::string program_id,
                   CreateProgram(stubs, admin_token, now));
  ASSIGN_OR_RETURN(const std::string provider_id,
                   RegisterProvider(stubs, admin_token));
  // Enterprises 0..kEnterprises-1 hold the allocations; the last one is
  // the probe's.
  std::vector<std::string> enterprise_tokens(kEnterprises + 1);
  RETURN_IF_ERROR(ParallelFor(target, kEnterprises + 1, kSetupThreads,
                              [&](int e, Stubs& s) {
                                return AddEnterprise(s, admin_token, program_id,
                                                     e, &enterprise_tokens[e]);
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

  std::vector<pb::Allocation> placed;
  RETURN_IF_ERROR(
      PlaceAllocations(target, allocations, enterprise_tokens, placed));
  timer.Done(absl::StrCat(allocations, " one-GPU allocations (Allocate)"));

  ASSIGN_OR_RETURN(std::vector<std::vector<Meter>> meters,
                   MetersByCluster(placed, clusters));
  RETURN_IF_ERROR(
      ParallelFor(target, clusters, kSetupThreads, [&](int i, Stubs& s) {
        return Heartbeat(s, agent_tokens[i], ClusterId(i), meters[i],
                         world.gpus_per_cluster, "setup-heartbeat");
      }));
  timer.Done(
      absl::StrCat(clusters, " heartbeats reporting the allocations running"));

  RETURN_IF_ERROR(AddSpareClusters(target, admin_token, provider_id));
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

}  // namespace computevoucher::bench::scheduler_load
