// The voucher-agent's meters against the real voucher-scheduler: the exec
// meter running and stopping workloads on their GPUs, the nvml meter over
// the fake libnvidia-ml.so.1, idle detection, TLS and mutual TLS to the
// scheduler, and the usage errors of bad invocations.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/e2e/agent_world.h"

namespace computevoucher::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string AgentBinary() { return BuildDir() + "/agent/voucher-agent"; }
std::string FakeNvmlLibrary() {
  return BuildDir() + "/fake-nvml/libnvidia-ml.so.1";
}
std::string FakeDcmiLibrary() { return BuildDir() + "/fake-dcmi/libdcmi.so"; }

// Whether process `pid` is gone (or a zombie nobody has reaped yet, which
// runs nothing any more).
bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  absl::StatusOr<std::string> stat =
      ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return true;
  // "<pid> (<comm>) <state> ...": the state follows the last ')'.
  const size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() &&
         (*stat)[paren + 2] == 'Z';
}

class AgentMeterTest : public AgentWorld {
 protected:
  // The cluster as the admin lists it; fails the test when it is missing.
  pb::Cluster GetCluster(const std::string& cluster_id) {
    pb::ListClustersRequest r;
    pb::ListClustersResponse out;
    grpc::Status s = admin_->ListClusters(As(admin_token_).get(), r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    for (const pb::Cluster& c : out.clusters()) {
      if (c.cluster_id() == cluster_id) return c;
    }
    ADD_FAILURE() << "no cluster " << cluster_id;
    return pb::Cluster();
  }

  // Writes `text` to `name` in the test directory; returns its path.
  std::string WriteTestFile(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // Runs the agent with exactly `args` (after the binary) and waits for it
  // to exit; returns its exit code (-1 when it did not exit) and its log.
  std::pair<int, std::string> RunAgent(const std::string& name,
                                       std::vector<std::string> args,
                                       std::vector<std::string> env = {}) {
    args.insert(args.begin(), AgentBinary());
    ChildProcess agent(args, dir_ + "/" + name + ".log", std::move(env));
    const std::optional<int> code = agent.Wait(absl::Seconds(20));
    return {code.value_or(-1), agent.Log()};
  }

  std::string Read(const std::string& path) {
    return ReadFile(path).value_or("");
  }
};

TEST_F(AgentMeterTest, ExecMeterRunsTheWorkloadOnItsGpus) {
  StartAgent("sz-b", {"--meter=exec"});
  ApproveCluster("sz-b");
  Issue("E-000001", 10'000'00);
  const std::string seen = dir_ + "/seen";
  const pb::Allocation a = Allocate("H100", 2, 3600,
                                    {"/bin/sh", "-c",
                                     "echo \"gpus=$CUDA_VISIBLE_DEVICES "
                                     "id=$COMPUTEVOUCHER_ALLOCATION_ID\" > " +
                                         seen + "; exit 3"});
  ASSERT_EQ(a.cluster_id(), "sz-b");
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_ENDED))
      << agent("sz-b").Log();
  const pb::Allocation ended = GetAllocation(a.allocation_id());
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_WORKLOAD_EXITED)
      << ended.ShortDebugString();
  EXPECT_EQ(ended.exit_code(), 3);
  EXPECT_EQ(Read(seen), "gpus=0,1 id=" + a.allocation_id() + "\n");
  EXPECT_THAT(agent("sz-b").Log(), HasSubstr("started " + a.allocation_id() +
                                             ": 2xH100 on GPUs 0,1"));
  EXPECT_THAT(agent("sz-b").Log(),
              HasSubstr("stopping " + a.allocation_id() +
                        ": its workload exited with code 3"));
  // The workload wrote the file just before it exited.
  struct stat written;
  ASSERT_EQ(stat(seen.c_str(), &written), 0);
  ExpectMeteredOnce("sz-b", a.allocation_id(),
                    absl::TimeFromTimespec(written.st_mtim));
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  ExpectVerifies();
}

TEST_F(AgentMeterTest, ExecMeterStopsAReleasedWorkload) {
  StartAgent("sz-b", {"--meter=exec", "--stop-grace-s=1"});
  ApproveCluster("sz-b");
  Issue("E-000001", 10'000'00);
  // One workload leaves on SIGTERM, the other ignores it and must be killed
  // once the grace period has passed.
  const std::string polite = dir_ + "/polite";
  const std::string stubborn = dir_ + "/stubborn";
  const pb::Allocation a = Allocate(
      "H100", 2, 3600,
      {"/bin/sh", "-c",
       "trap 'echo term > " + polite + ".got-term; exit 0' TERM; echo $$ > " +
           polite + ".pid; while :; do sleep 0.1; done"});
  const pb::Allocation b = Allocate("H100", 2, 3600,
                                    {"/bin/sh", "-c",
                                     "trap '' TERM; echo $$ > " + stubborn +
                                         ".pid; while :; do sleep 0.1; done"});
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_RUNNING))
      << agent("sz-b").Log();
  ASSERT_TRUE(WaitForState(b.allocation_id(), pb::ALLOCATION_STATE_RUNNING))
      << agent("sz-b").Log();
  pid_t polite_pid = 0, stubborn_pid = 0;
  ASSERT_TRUE(PollUntil([&] {
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(Read(polite + ".pid")),
                            &polite_pid) &&
           absl::SimpleAtoi(absl::StripAsciiWhitespace(Read(stubborn + ".pid")),
                            &stubborn_pid);
  })) << agent("sz-b").Log();
  EXPECT_FALSE(ProcessGone(polite_pid));
  EXPECT_FALSE(ProcessGone(stubborn_pid));

  const absl::Time released = absl::Now();
  Release(a.allocation_id());
  Release(b.allocation_id());
  EXPECT_TRUE(PollUntil([&] { return Read(polite + ".got-term") == "term\n"; }))
      << "the workload got no SIGTERM; agent log:\n"
      << agent("sz-b").Log();
  EXPECT_TRUE(PollUntil([&] { return ProcessGone(polite_pid); }));
  EXPECT_TRUE(PollUntil([&] { return ProcessGone(stubborn_pid); }))
      << "the workload ignoring SIGTERM was not killed; agent log:\n"
      << agent("sz-b").Log();
  EXPECT_GE(absl::Now() - released, absl::Seconds(1))
      << "killed before its grace period was over";
  ExpectMeteredOnce("sz-b", a.allocation_id());
  ExpectMeteredOnce("sz-b", b.allocation_id());
  EXPECT_TRUE(agent("sz-b").Running());
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  ExpectVerifies();
}

TEST_F(AgentMeterTest, NvmlMeterDiscoversGpusAndReportsUtilisationAndEnergy) {
  // Both GPUs at a constant 40%, each using 700 J between two readings.
  constexpr int64_t kStepMj = 700'000;
  const std::string script = WriteTestFile(
      "nvml.script", absl::StrCat("gpu 0 name=\"NVIDIA H100 80GB HBM3\"\n"
                                  "gpu 1 name=\"NVIDIA H100 80GB HBM3\"\n"
                                  "utilization 0 40\n"
                                  "utilization 1 40\n"
                                  "energy 0 start=1000 step=",
                                  kStepMj,
                                  "\n"
                                  "energy 1 start=5000 step=",
                                  kStepMj, "\n"));
  StartAgent("sz-b",
             {"--meter=nvml", "--nvml-library=" + FakeNvmlLibrary(),
              "--inventory=1xH100:other", "--prices=H100=18.00"},
             {"FAKE_NVML_SCRIPT=" + script});
  ApproveCluster("sz-b");
  const pb::Cluster cluster = GetCluster("sz-b");
  ASSERT_EQ(cluster.inventory_size(), 1) << cluster.ShortDebugString();
  EXPECT_EQ(cluster.inventory(0).model(), "H100");
  EXPECT_EQ(cluster.inventory(0).gpu_count(), 2) << "the count NVML found";
  EXPECT_EQ(cluster.inventory(0).price_fen_per_gpu_hour(), 1800);

  Issue("E-000001", 10'000'00);
  const pb::Allocation a = Allocate("H100", 2, 3600);
  ASSERT_EQ(a.cluster_id(), "sz-b");
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_RUNNING))
      << agent("sz-b").Log();
  // A few records, so that some carry readings.
  ASSERT_TRUE(PollUntil([&] { return Usage(a.allocation_id()).size() >= 4; }))
      << agent("sz-b").Log();
  Release(a.allocation_id());
  ExpectMeteredOnce("sz-b", a.allocation_id());

  int64_t energy_mj = 0;
  int sampled = 0;
  for (const pb::ChargedUsage& charged : Usage(a.allocation_id())) {
    const pb::UsageRecord& u = charged.record();
    SCOPED_TRACE(u.ShortDebugString());
    // Both GPUs advance by a step at every reading, so energy comes in
    // whole pairs of steps.
    EXPECT_EQ(u.energy_mj() % (2 * kStepMj), 0);
    energy_mj += u.energy_mj();
    if (u.mean_utilization_bp() != 0) {
      EXPECT_EQ(u.mean_utilization_bp(), 4000);
      ++sampled;
    }
  }
  EXPECT_GE(sampled, 2);
  EXPECT_GT(energy_mj, 0);
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
}

TEST_F(AgentMeterTest, NvmlMeterWithoutTheLibraryFailsClearly) {
  StartAgent("sz-b",
             {"--meter=nvml", "--nvml-library=/nonexistent/libnvidia-ml.so.1"});
  EXPECT_EQ(agent("sz-b").Wait(absl::Seconds(20)), 2);
  EXPECT_THAT(agent("sz-b").Log(),
              HasSubstr("cannot load /nonexistent/libnvidia-ml.so.1"));
  EXPECT_THAT(agent("sz-b").Log(), HasSubstr("NVIDIA driver"));

  // A GPU the inventory has no model (and so no price) for.
  const std::string script =
      WriteTestFile("nvml.script",
                    "gpu 0 name=\"NVIDIA H100 80GB HBM3\"\n"
                    "gpu 1 name=\"NVIDIA A100-SXM4-80GB\"\n");
  StartAgent("hz-a", {"--meter=nvml", "--nvml-library=" + FakeNvmlLibrary()},
             {"FAKE_NVML_SCRIPT=" + script});
  EXPECT_EQ(agent("hz-a").Wait(absl::Seconds(20)), 2);
  EXPECT_THAT(agent("hz-a").Log(),
              HasSubstr("GPU 1 \"NVIDIA A100-SXM4-80GB\" matches no "
                        "inventory model"));
}

TEST_F(AgentMeterTest, DcmiTelemetryMetersAscendNpus) {
  const std::string script = WriteTestFile(
      "dcmi.script",
      "npu 0:0 chip_name=910B3\nnpu 0:1 chip_name=910B3\nnpu 1:0 "
      "chip_name=910B3\nutilization 0:0 55\nutilization 0:1 55\n"
      "power 0:0 3000\npower 0:1 3000\n");
  StartAgent("hz-a",
             {"--telemetry=dcmi", "--dcmi-library=" + FakeDcmiLibrary(),
              "--inventory=1x910B:domestic", "--prices=910B=12.00"},
             {"FAKE_DCMI_SCRIPT=" + script});
  ApproveCluster("hz-a");
  const pb::Cluster cluster = GetCluster("hz-a");
  ASSERT_EQ(cluster.inventory_size(), 1) << cluster.ShortDebugString();
  EXPECT_EQ(cluster.inventory(0).gpu_count(), 3) << "the count DCMI found";
  EXPECT_EQ(cluster.inventory(0).hardware_class(), pb::HARDWARE_CLASS_DOMESTIC);
  Issue("E-000001", 10'000'00);
  const pb::Allocation a = Allocate("910B", 2, 3600);
  ASSERT_EQ(a.cluster_id(), "hz-a");
  ASSERT_TRUE(PollUntil([&] { return Usage(a.allocation_id()).size() >= 4; }))
      << agent("hz-a").Log();
  Release(a.allocation_id());
  ExpectMeteredOnce("hz-a", a.allocation_id());
  int64_t energy_mj = 0;
  for (const pb::ChargedUsage& charged : Usage(a.allocation_id())) {
    const pb::UsageRecord& u = charged.record();
    if (u.mean_utilization_bp() != 0) {
      EXPECT_EQ(u.mean_utilization_bp(), 5500);
    }
    energy_mj += u.energy_mj();
  }
  // Two NPUs at 300 W: energy integrated from power, 600 mJ per ms.
  EXPECT_GT(energy_mj, 0);
  EXPECT_EQ(agent("hz-a").Stop(SIGTERM), 0);
}

TEST_F(AgentMeterTest, DcmiTelemetryWithoutTheLibraryFailsClearly) {
  StartAgent("hz-a", {"--telemetry=dcmi", "--dcmi-library=/nonexistent/libdcmi.so"});
  EXPECT_EQ(agent("hz-a").Wait(absl::Seconds(20)), 2);
  EXPECT_THAT(agent("hz-a").Log(), HasSubstr("/nonexistent/libdcmi.so"));
  EXPECT_THAT(agent("hz-a").Log(), HasSubstr("Ascend driver"));
}

TEST_F(AgentMeterTest, ProcessRuntimeRunsTheWorkloadSandboxedAsTheTenantUser) {
  if (geteuid() != 0) GTEST_SKIP() << "switching to another user needs root";
  // The cluster's GPUs as device files (clones of /dev/null).
  const std::string devices = dir_ + "/dev";
  ASSERT_EQ(mkdir(devices.c_str(), 0755), 0);
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(Shell(absl::StrCat("mknod ", devices, "/nvidia", i, " c 1 3 && chmod 666 ",
                                 devices, "/nvidia", i)),
              0);
  }
  const std::string work = dir_ + "/work";
  // The working directories must be reachable by the tenant user; the
  // token file is the agent's alone, as in production.
  ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);
  ASSERT_EQ(chmod(agent_token_file("sz-b").c_str(), 0600), 0);
  // The device pattern has no flag: a config file sets it.
  const std::string config = WriteTestFile(
      "agent.conf", "process { gpu_device_pattern: \"" + devices + "/nvidia%d\" }\n");
  StartAgent("sz-b", {"--config=" + config, "--runtime=process",
                      "--run-as=nobody", "--work-root=" + work,
                      "--stop-grace-s=1", "--access-template=output in {log}"});
  ApproveCluster("sz-b");
  Issue("E-000001", 10'000'00);
  // What the workload can see, written to its working directory.
  const pb::Allocation a = Allocate(
      "H100", 2, 3600,
      {"/bin/sh", "-c",
       "{ id -u; echo gpus=$CUDA_VISIBLE_DEVICES; ls " + devices +
           "; cat " + agent_token_file("sz-b") + " || echo no-token; ls " +
           spool_dir("sz-b") + " || echo no-spool; } > out 2>&1; exit 5"});
  ASSERT_EQ(a.cluster_id(), "sz-b");
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_ENDED))
      << agent("sz-b").Log();
  const pb::Allocation ended = GetAllocation(a.allocation_id());
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_WORKLOAD_EXITED);
  EXPECT_EQ(ended.exit_code(), 5);
  EXPECT_THAT(ended.access(),
              HasSubstr(spool_dir("sz-b") + "/" + a.allocation_id() + ".log"));
  const std::string out = Read(work + "/" + a.allocation_id() + "/out");
  EXPECT_THAT(out, HasSubstr("65534\ngpus=0,1\nnvidia0\nnvidia1\n")) << out;
  EXPECT_THAT(out, Not(HasSubstr("nvidia2")));
  EXPECT_THAT(out, HasSubstr("no-token"));
  EXPECT_THAT(out, HasSubstr("no-spool"));
  const std::string token = Read(agent_token_file("sz-b"));
  ASSERT_FALSE(token.empty());
  EXPECT_THAT(out, Not(HasSubstr(std::string(absl::StripAsciiWhitespace(token)))));
  // The workload wrote `out` just before it exited.
  struct stat written;
  ASSERT_EQ(stat((work + "/" + a.allocation_id() + "/out").c_str(), &written), 0);
  ExpectMeteredOnce("sz-b", a.allocation_id(),
                    absl::TimeFromTimespec(written.st_mtim));
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
}

TEST_F(AgentMeterTest, IdleAllocationIsFlagged) {
  Issue("E-000001", 10'000'00);
  StartAgent("sz-b", {"--simulated-utilization-bp=0", "--idle-after-s=1"});
  ApproveCluster("sz-b");
  // sz-b is the only cluster yet, and only hz-a has 910B.
  const pb::Allocation idle = Allocate("H100", 2, 3600);
  StartAgent("hz-a", {"--idle-after-s=1"});  // 90% by default
  ApproveCluster("hz-a");
  const pb::Allocation busy = Allocate("910B", 2, 3600);
  ASSERT_EQ(idle.cluster_id(), "sz-b");
  ASSERT_EQ(busy.cluster_id(), "hz-a");
  ASSERT_TRUE(WaitForState(idle.allocation_id(), pb::ALLOCATION_STATE_RUNNING));
  ASSERT_TRUE(WaitForState(busy.allocation_id(), pb::ALLOCATION_STATE_RUNNING));
  const absl::Time running = absl::Now();
  EXPECT_TRUE(PollUntil([&] {
    return GetAllocation(idle.allocation_id()).idle();
  })) << agent("sz-b").Log();
  EXPECT_THAT(agent("sz-b").Log(),
              HasSubstr(idle.allocation_id() + ": idle: its GPUs have been "
                                               "under 5% utilisation for 1s"));
  // The busy one stays unflagged past its idle period and a few heartbeats.
  const absl::Duration watched = absl::Seconds(1) +
                                 5 * absl::Milliseconds(kHeartbeatMs) -
                                 (absl::Now() - running);
  EXPECT_FALSE(PollUntil(
      [&] { return GetAllocation(busy.allocation_id()).idle(); }, watched));
  EXPECT_THAT(agent("hz-a").Log(), Not(HasSubstr(": idle")));

  Release(idle.allocation_id());
  Release(busy.allocation_id());
  ExpectMeteredOnce("sz-b", idle.allocation_id());
  ExpectMeteredOnce("hz-a", busy.allocation_id());
  for (const pb::ChargedUsage& u : Usage(idle.allocation_id())) {
    EXPECT_EQ(u.record().mean_utilization_bp(), 0);
  }
}

TEST_F(AgentMeterTest, AgentConnectsOverTlsAndMutualTls) {
  ASSERT_TRUE(MakeTestCertificates(dir_));
  if (HasFatalFailure()) return;
  const std::string ca = "--tls-ca=" + dir_ + "/ca.pem";
  grpc::SslCredentialsOptions server_only;
  server_only.pem_root_certs = Read(dir_ + "/ca.pem");
  grpc::SslCredentialsOptions with_client = server_only;
  with_client.pem_cert_chain = Read(dir_ + "/client.pem");
  with_client.pem_private_key = Read(dir_ + "/client.key");
  const std::vector<std::string> server_tls = {
      "--tls-cert=" + dir_ + "/server.pem",
      "--tls-key=" + dir_ + "/server.key"};
  Issue("E-000001", 10'000'00);

  // TLS: the agent checks the scheduler's certificate.
  ASSERT_EQ(StopScheduler(), 0);
  StartScheduler(server_tls);
  ConnectWith(grpc::SslCredentials(server_only));
  StartAgent("sz-b", {ca});
  ApproveCluster("sz-b");
  const pb::Allocation a = Allocate("H100", 2, 3600);
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_RUNNING))
      << agent("sz-b").Log();
  ASSERT_TRUE(PollUntil(
      [&] { return GetAllocation(a.allocation_id()).used_gpu_ms() > 0; }));
  Release(a.allocation_id());
  ExpectMeteredOnce("sz-b", a.allocation_id());

  // Mutual TLS: the scheduler checks the agent's certificate too.
  ASSERT_EQ(StopScheduler(), 0);
  std::vector<std::string> mutual = server_tls;
  mutual.push_back("--tls-client-ca=" + dir_ + "/ca.pem");
  mutual.push_back("--require-client-cert");
  StartScheduler(mutual);
  ConnectWith(grpc::SslCredentials(with_client));
  StartAgent("sz-b", {ca, "--tls-cert=" + dir_ + "/client.pem",
                      "--tls-key=" + dir_ + "/client.key"});
  const pb::Allocation b = Allocate("H100", 2, 3600);
  ASSERT_TRUE(WaitForState(b.allocation_id(), pb::ALLOCATION_STATE_RUNNING))
      << agent("sz-b").Log();
  ASSERT_TRUE(PollUntil(
      [&] { return GetAllocation(b.allocation_id()).used_gpu_ms() > 0; }));
  Release(b.allocation_id());
  ExpectMeteredOnce("sz-b", b.allocation_id());

  // Without a client certificate the agent is turned away, and keeps trying.
  StartAgent("hz-a", {ca});
  EXPECT_TRUE(WaitForLog("hz-a", "Register failed: UNAVAILABLE"))
      << agent("hz-a").Log();
  EXPECT_TRUE(agent("hz-a").Running());
  pb::ListClustersResponse clusters;
  ASSERT_TRUE(admin_
                  ->ListClusters(As(admin_token_).get(),
                                 pb::ListClustersRequest(), &clusters)
                  .ok());
  for (const pb::Cluster& c : clusters.clusters()) {
    EXPECT_NE(c.cluster_id(), "hz-a") << "registered without a certificate";
  }
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  EXPECT_EQ(agent("hz-a").Stop(SIGTERM), 0);
}

TEST_F(AgentMeterTest, BadFlagsAreUsageErrors) {
  const std::string empty_token = WriteTestFile("empty.token", "\n");
  const std::string scheduler = "--scheduler=" + scheduler_address();
  const std::string token = "--token-file=" + agent_token_file("sz-b");
  const std::string spool = "--spool-dir=" + spool_dir("sz-b");
  const std::string inventory = "--inventory=8xH100:other";
  const std::string prices = "--prices=H100=18.00";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{token, spool, inventory, prices}, "scheduler_address: required"},
      {{scheduler, spool, inventory, prices}, "token_file: required"},
      {{scheduler, token, inventory, prices}, "spool_dir: required"},
      {{scheduler, token, spool, inventory, prices, "--meter=bogus"},
       "meter: must be simulated, nvml or exec, got \"bogus\""},
      {{scheduler, token, spool, inventory, prices, "--runtime=k8s"},
       "runtime: must be simulated, process or slurm, got \"k8s\""},
      {{scheduler, token, spool, inventory, prices, "--telemetry=rocm"},
       "telemetry: must be simulated, nvml or dcmi, got \"rocm\""},
      {{scheduler, token, spool, inventory, prices, "--meter=exec",
        "--runtime=process"},
       "meter: a deprecated alias of runtime and telemetry"},
      {{scheduler, token, spool, inventory, prices, "--runtime=process",
        "--run-as=root"},
       "process.run_as_user"},
      {{scheduler, token, spool, inventory, prices, "--runtime=slurm"},
       "slurm.partition: required"},
      {{scheduler, token, spool, inventory, prices, "--runtime=slurm",
        "--slurm-partition=gpu", "--slurm-accounts=E-000001"},
       "slurm_accounts: must be ENTERPRISE=USER[:ACCOUNT], got \"E-000001\""},
      {{scheduler, "--token-file=/nonexistent/agent.token", spool, inventory,
        prices},
       "--token-file: /nonexistent/agent.token: "},
      {{scheduler, token, spool, "--inventory=8H100", prices},
       "inventory: item \"8H100\" is malformed"},
      {{scheduler, token, spool, "--inventory=8xH100:alien", prices},
       "inventory: item \"8xH100:alien\" needs a class of domestic or other"},
      {{scheduler, token, spool, "--inventory=8xH100:other,16x910B:domestic",
        prices},
       "prices: no price for model 910B"},
      {{scheduler, token, spool, inventory}, "prices: no price for model H100"},
      {{scheduler, token, spool, inventory, prices, "--report-interval-ms=5"},
       "report_interval_ms: must be 100..3600000, got 5"},
      {{scheduler, token, spool, inventory, prices, "stray"},
       "unexpected argument \"stray\""},
      {{scheduler, "--token-file=" + empty_token, spool, inventory, prices},
       "--token-file: " + empty_token + " is empty"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const std::string invocation = absl::StrJoin(c.args, " ");
    const auto [code, log] = RunAgent(absl::StrCat("bad-", i), c.args);
    EXPECT_EQ(code, 2) << invocation << "\n" << log;
    EXPECT_THAT(log, HasSubstr("voucher-agent: " + c.message)) << invocation;
  }
}

}  // namespace
}  // namespace computevoucher::testing
