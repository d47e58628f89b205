#include "tests/e2e/agent_world.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tests/testing/world.h"
#include "tests/testing/world_api.h"

namespace computevoucher::testing {
namespace {

std::string SchedulerBinary() {
  return BuildDir() + "/scheduler/voucher-scheduler";
}
std::string AgentBinary() { return BuildDir() + "/agent/voucher-agent"; }

struct ClusterSetup {
  const char* provider_id;
  const char* inventory;
  const char* prices;
};
const std::map<std::string, ClusterSetup>& Clusters() {
  static const auto* clusters = new std::map<std::string, ClusterSetup>{
      {"hz-a",
       {"PR-000001", "8xH100:other,16x910B:domestic", "H100=20.00,910B=12.00"}},
      {"sz-b", {"PR-000002", "8xH100:other", "H100=18.00"}},
  };
  return *clusters;
}

}  // namespace

void AgentWorld::SetUp() {
  ASSERT_NO_FATAL_FAILURE(MakeTempDir("agent-e2e", temp_));
  dir_ = temp_.path();
  data_dir_ = dir_ + "/data";
  StartScheduler();
  ASSERT_GT(port_, 0);
  absl::StatusOr<std::string> token = ReadFile(data_dir_ + "/admin.token");
  ASSERT_TRUE(token.ok()) << token.status();
  admin_token_ = std::string(absl::StripAsciiWhitespace(*token));

  pb::CreateProgramRequest program = WorldProgram();
  const absl::Time now = absl::Now();
  *program.mutable_valid_from() = ToProto(now - absl::Hours(24));
  *program.mutable_valid_until() = ToProto(now + absl::Hours(24 * 365));
  absl::Status created = CreateWorldThroughApi(
      *admin_, admin_token_, [this] { return NextRequestId(); }, program);
  ASSERT_TRUE(created.ok()) << created;
  auto create_token = [&](pb::Role role, const std::string& enterprise_id,
                          const std::string& cluster_id,
                          const std::string& provider_id) {
    pb::CreateTokenRequest r;
    r.set_role(role);
    r.set_enterprise_id(enterprise_id);
    r.set_cluster_id(cluster_id);
    r.set_provider_id(provider_id);
    absl::StatusOr<std::string> secret = CreateTokenThroughApi(
        *admin_, admin_token_, [this] { return NextRequestId(); }, r);
    EXPECT_TRUE(secret.ok()) << secret.status();
    return secret.value_or("");
  };
  e1_token_ = create_token(pb::ROLE_ENTERPRISE, "E-000001", "", "");
  for (const auto& [cluster_id, setup] : Clusters()) {
    std::ofstream(agent_token_file(cluster_id))
        << create_token(pb::ROLE_AGENT, "", cluster_id, setup.provider_id)
        << "\n";
  }
}

void AgentWorld::TearDown() {
  agents_.clear();
  scheduler_.reset();
}

std::string AgentWorld::NextRequestId() {
  return absl::StrCat("e2e-", ++requests_);
}

std::string AgentWorld::scheduler_address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

std::vector<std::string> AgentWorld::SchedulerArgs(const std::string& data_dir,
                                                   int port) const {
  std::vector<std::string> args = {SchedulerBinary(),
                                   "--data-dir=" + data_dir,
                                   absl::StrCat("--listen=127.0.0.1:", port),
                                   "--tick-interval-ms=100",
                                   "--heartbeat-interval-s=1",
                                   "--cluster-silence-s=60",
                                   "--usage-grace-s=60"};
  args.insert(args.end(), store_args_.begin(), store_args_.end());
  return args;
}

void AgentWorld::StartScheduler(std::vector<std::string> extra_args) {
  const std::string port_file = dir_ + "/scheduler.port";
  std::filesystem::remove(port_file);
  std::vector<std::string> args = SchedulerArgs(data_dir_, port_);
  args.push_back("--port-file=" + port_file);
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  scheduler_ = std::make_unique<ChildProcess>(args, dir_ + "/scheduler.log");
  port_ = WaitForPortFile(*scheduler_, port_file);
  auto channel = grpc::CreateChannel(scheduler_address(),
                                     grpc::InsecureChannelCredentials());
  admin_ = pb::AdminService::NewStub(channel);
  enterprise_ = pb::EnterpriseService::NewStub(channel);
}

int AgentWorld::StopScheduler(int signal) { return scheduler_->Stop(signal); }

void AgentWorld::ConnectWith(
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  auto channel = grpc::CreateChannel(scheduler_address(), credentials);
  admin_ = pb::AdminService::NewStub(channel);
  enterprise_ = pb::EnterpriseService::NewStub(channel);
}

ChildProcess& AgentWorld::StartAgent(const std::string& cluster_id,
                                     std::vector<std::string> extra_args,
                                     std::vector<std::string> env) {
  const ClusterSetup& setup = Clusters().at(cluster_id);
  std::vector<std::string> args = {
      AgentBinary(),
      "--scheduler=" + scheduler_address(),
      "--token-file=" + agent_token_file(cluster_id),
      "--spool-dir=" + spool_dir(cluster_id),
      absl::StrCat("--inventory=", setup.inventory),
      absl::StrCat("--prices=", setup.prices),
      absl::StrCat("--heartbeat-interval-ms=", kHeartbeatMs),
      absl::StrCat("--report-interval-ms=", kReportMs)};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto& slot = agents_[cluster_id];
  slot.reset();  // a previous agent of the cluster is killed first
  slot = std::make_unique<ChildProcess>(
      args, dir_ + "/" + cluster_id + "-agent.log", std::move(env));
  return *slot;
}

void AgentWorld::ApproveCluster(const std::string& cluster_id) {
  const bool registered = PollUntil([&] {
    pb::ListClustersRequest r;
    pb::ListClustersResponse out;
    if (!admin_->ListClusters(As(admin_token_).get(), r, &out).ok()) {
      return false;
    }
    for (const pb::Cluster& c : out.clusters()) {
      if (c.cluster_id() == cluster_id) return true;
    }
    return false;
  });
  ASSERT_TRUE(registered) << cluster_id << " did not register; agent log:\n"
                          << agent(cluster_id).Log();
  pb::SetClusterStateRequest approve;
  approve.set_request_id(NextRequestId());
  approve.set_cluster_id(cluster_id);
  approve.set_state(pb::CLUSTER_STATE_APPROVED);
  pb::Cluster approved;
  grpc::Status s =
      admin_->SetClusterState(As(admin_token_).get(), approve, &approved);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

std::unique_ptr<grpc::ClientContext> AgentWorld::As(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(20));
  return context;
}

pb::Voucher AgentWorld::Issue(const std::string& enterprise_id,
                              int64_t face_value_fen,
                              std::optional<absl::Time> valid_until) {
  pb::IssueVoucherRequest r;
  r.set_request_id(NextRequestId());
  r.set_program_id("P-000001");
  r.set_enterprise_id(enterprise_id);
  r.set_face_value_fen(face_value_fen);
  if (valid_until) *r.mutable_valid_until() = ToProto(*valid_until);
  pb::Voucher v;
  grpc::Status s = admin_->IssueVoucher(As(admin_token_).get(), r, &v);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return v;
}

pb::Allocation AgentWorld::Allocate(const std::string& gpu_model,
                                    int32_t gpu_count, int64_t duration_s,
                                    std::vector<std::string> workload_command,
                                    const std::string& voucher_id) {
  pb::AllocateRequest r;
  r.set_request_id(NextRequestId());
  r.mutable_resources()->set_gpu_model(gpu_model);
  r.mutable_resources()->set_gpu_count(gpu_count);
  r.mutable_resources()->set_max_duration_s(duration_s);
  r.mutable_resources()->set_voucher_id(voucher_id);
  for (std::string& arg : workload_command) {
    r.add_workload_command(std::move(arg));
  }
  pb::Allocation a;
  grpc::Status s = enterprise_->Allocate(As(e1_token_).get(), r, &a);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return a;
}

pb::Allocation AgentWorld::Release(const std::string& allocation_id) {
  pb::ReleaseAllocationRequest r;
  r.set_request_id(NextRequestId());
  r.set_allocation_id(allocation_id);
  pb::Allocation released;
  grpc::Status s =
      enterprise_->ReleaseAllocation(As(e1_token_).get(), r, &released);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return released;
}

pb::Allocation AgentWorld::GetAllocation(const std::string& allocation_id) {
  pb::GetAllocationRequest r;
  r.set_allocation_id(allocation_id);
  pb::Allocation a;
  grpc::Status s = enterprise_->GetAllocation(As(e1_token_).get(), r, &a);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return a;
}

std::vector<pb::ChargedUsage> AgentWorld::Usage(
    const std::string& allocation_id) {
  std::vector<pb::ChargedUsage> out;
  pb::ListUsageRequest r;
  r.set_allocation_id(allocation_id);
  r.mutable_page()->set_page_size(1000);
  while (true) {
    pb::ListUsageResponse page;
    grpc::Status s = enterprise_->ListUsage(As(e1_token_).get(), r, &page);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok()) break;
    out.insert(out.end(), page.usage().begin(), page.usage().end());
    if (page.next_page_token().empty()) break;
    r.mutable_page()->set_page_token(page.next_page_token());
  }
  return out;
}

bool AgentWorld::WaitForState(const std::string& allocation_id,
                              pb::AllocationState state,
                              absl::Duration timeout) {
  return PollUntil(
      [&] { return GetAllocation(allocation_id).state() == state; }, timeout);
}

bool AgentWorld::WaitForLog(const std::string& cluster_id,
                            const std::string& text, absl::Duration timeout) {
  return PollUntil(
      [&] { return agent(cluster_id).Log().find(text) != std::string::npos; },
      timeout);
}

void AgentWorld::ExpectMeteredOnce(const std::string& cluster_id,
                                   const std::string& allocation_id,
                                   std::optional<absl::Time> exited_by) {
  ASSERT_TRUE(WaitForLog(cluster_id, allocation_id + ": done; all its usage is "
                                                     "acknowledged"))
      << agent(cluster_id).Log();
  const pb::Allocation a = GetAllocation(allocation_id);
  ASSERT_EQ(a.state(), pb::ALLOCATION_STATE_ENDED);
  const std::vector<pb::ChargedUsage> usage = Usage(allocation_id);
  ASSERT_FALSE(usage.empty());
  const absl::Time assigned = *FromProto("assigned_at", a.assigned_at());
  const absl::Time ended = *FromProto("ended_at", a.ended_at());
  // A workload that exits by itself is metered until the agent sees the
  // exit, before the scheduler hears of it (ended_at, a heartbeat later).
  ExpectMeteredOnce(a, usage, exited_by.value_or(ended));
  const pb::UsageRecord& first = usage.front().record();
  EXPECT_LT(*FromProto("start", first.start()), assigned + absl::Seconds(5))
      << "record 0: " << first.ShortDebugString();
  const absl::Time last_end = *FromProto("end", usage.back().record().end());
  if (exited_by) {
    EXPECT_LE(last_end, ended) << "usage after the exit was reported";
  } else {
    EXPECT_LT(last_end, ended + absl::Seconds(5));
  }
}

void AgentWorld::ExpectMeteredOnce(const pb::Allocation& a,
                                   const std::vector<pb::ChargedUsage>& usage,
                                   absl::Time metered_until) {
  const absl::Time assigned = *FromProto("assigned_at", a.assigned_at());
  int64_t gpu_ms = 0;
  absl::Time previous_end;
  for (size_t i = 0; i < usage.size(); ++i) {
    const pb::UsageRecord& u = usage[i].record();
    SCOPED_TRACE(absl::StrCat("record ", i, ": ", u.ShortDebugString()));
    EXPECT_EQ(u.sequence(), static_cast<int64_t>(i) + 1);
    const absl::Time start = *FromProto("start", u.start());
    const absl::Time end = *FromProto("end", u.end());
    if (i == 0) {
      EXPECT_GE(start, assigned);
    } else {
      EXPECT_EQ(start, previous_end) << "a gap or an overlap";
    }
    EXPECT_EQ(u.gpu_ms(),
              absl::ToInt64Milliseconds(end - start) * a.gpu_count());
    gpu_ms += u.gpu_ms();
    previous_end = end;
  }
  // The agent meters in whole milliseconds; the scheduler's clock is finer.
  EXPECT_GE(previous_end,
            absl::FromUnixMillis(absl::ToUnixMillis(metered_until)))
      << "usage up to the end was not reported";
  EXPECT_EQ(a.used_gpu_ms(), gpu_ms);
  EXPECT_EQ(a.last_sequence(), static_cast<int64_t>(usage.size()))
      << "a record was refused";
}

int AgentWorld::Verify(std::string* out) {
  if (scheduler_->Running()) {
    EXPECT_EQ(StopScheduler(SIGTERM), 0);
  }
  const std::string path = dir_ + "/verify.out";
  std::string command = SchedulerBinary() + " verify --data-dir " + data_dir_;
  for (const std::string& arg : store_args_) command += " '" + arg + "'";
  const int rc = Shell(command + " > " + path + " 2>&1");
  *out = ReadFile(path).value_or("");
  return rc;
}

void AgentWorld::ExpectVerifies() {
  std::string out;
  EXPECT_EQ(Verify(&out), 0) << out;
}

}  // namespace computevoucher::testing
