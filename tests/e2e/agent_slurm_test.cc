// The `slurm` runtime against a real Slurm (slurm-wlm 22.05) and the real
// scheduler and agent binaries: holding jobs for the tenant, steps inside
// them, pending jobs not charged, an operator's scancel, slurmctld not
// answering, an agent killed and restarted (its jobs found again, never
// leaked or duplicated), batch jobs, extensions, and enterprises with no
// Slurm user.
//
// The cluster is the one scripts/testing/slurm.sh starts (one node,
// cvnode1, 4 fake h100 GPUs in partition `gpu`); scripts/test.sh starts it
// for the whole run and names its slurm.conf in CV_TEST_SLURM_CONF. The
// tests share it, one at a time (a CTest resource lock), and each leaves
// the partition empty. Jobs run as `nobody`, so the tests run as root.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/agent_world.h"

namespace computevoucher::testing {
namespace {

using ::testing::HasSubstr;

std::string SlurmConf() {
  const char* conf = std::getenv("CV_TEST_SLURM_CONF");
  return conf != nullptr ? conf : "";
}

// A job of the partition as squeue lists it.
struct SlurmJob {
  int64_t id = 0;
  std::string state;
  std::string user;
  int64_t start_s = 0;
  std::string time_limit;
  std::string name;
};

class AgentSlurmTest : public AgentWorld {
 protected:
  void SetUp() override {
    if (SlurmConf().empty()) {
      GTEST_SKIP() << "CV_TEST_SLURM_CONF is not set (scripts/test.sh starts "
                      "a Slurm cluster and sets it)";
    }
    if (geteuid() != 0) GTEST_SKIP() << "Slurm jobs as other users need root";
    AgentWorld::SetUp();
    ASSERT_TRUE(PartitionEmpty()) << Slurm("squeue");
  }

  void TearDown() override {
    if (!SlurmConf().empty() && geteuid() == 0) {
      agents_.clear();
      Slurm("scancel --partition=gpu");
      EXPECT_TRUE(PollUntil([&] { return PartitionEmpty(); }))
          << Slurm("squeue");
    }
    AgentWorld::TearDown();
  }

  // Runs a Slurm command line (through the shell) against the test cluster;
  // returns what it printed.
  std::string Slurm(const std::string& command) {
    const std::string out = dir_ + "/slurm.out";
    Shell(absl::StrCat("SLURM_CONF='", SlurmConf(),
                       "' SLURM_TIME_FORMAT=%s timeout 20 ", command, " > ",
                       out, " 2>&1"));
    return ReadFile(out).value_or("");
  }

  // Live jobs of the partition (pending, running, completing).
  std::vector<SlurmJob> Jobs() {
    std::vector<SlurmJob> jobs;
    for (absl::string_view line : absl::StrSplit(
             Slurm("squeue --noheader --partition=gpu --format='%i|%T|%u|%S|%l|%j'"),
             '\n', absl::SkipWhitespace())) {
      std::vector<std::string> f = absl::StrSplit(line, '|');
      if (f.size() != 6) continue;
      SlurmJob j;
      // A pending job has no start (N/A): 0.
      if (!absl::SimpleAtoi(f[0], &j.id)) continue;
      j.state = f[1];
      j.user = f[2];
      if (!absl::SimpleAtoi(f[3], &j.start_s)) j.start_s = 0;
      j.time_limit = f[4];
      j.name = f[5];
      jobs.push_back(j);
    }
    return jobs;
  }

  std::vector<SlurmJob> JobsNamed(const std::string& name) {
    std::vector<SlurmJob> out;
    for (const SlurmJob& j : Jobs()) {
      if (j.name == name) out.push_back(j);
    }
    return out;
  }

  bool PartitionEmpty() {
    return Slurm("squeue --noheader --partition=gpu --format=%i").empty();
  }

  // Waits for exactly one live job of the allocation in `state`.
  std::optional<SlurmJob> WaitForJob(const std::string& allocation_id,
                                     const std::string& state) {
    std::optional<SlurmJob> found;
    PollUntil([&] {
      std::vector<SlurmJob> jobs = JobsNamed("cv-" + allocation_id);
      if (jobs.size() == 1 && jobs[0].state == state) found = jobs[0];
      return found.has_value();
    });
    return found;
  }

  // The agent of sz-b on the Slurm runtime; E-000001 runs as nobody.
  ChildProcess& StartSlurmAgent(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--runtime=slurm",
        "--slurm-partition=gpu",
        "--slurm-accounts=E-000001=nobody:robots",
        "--slurm-poll-interval-ms=200",
        "--slurm-command-timeout-ms=2000",
        "--slurm-batch-log-dir=" + dir_ + "/batch",
        "--slurm-login-host=login.sz-b.example",
        "--idle-after-s=2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartAgent("sz-b", args, {"SLURM_CONF=" + SlurmConf()});
  }

  void SetUpCluster() {
    StartSlurmAgent();
    ApproveCluster("sz-b");
    Issue("E-000001", 100'000'00);
  }
};

TEST_F(AgentSlurmTest, HoldsAJobForTheTenantWhoRunsStepsInIt) {
  SetUpCluster();
  // The partition's 4 GPUs, not the 8 of --inventory, are what is sold.
  EXPECT_TRUE(WaitForLog("sz-b", "4 GPUs")) << agent("sz-b").Log();
  const pb::Allocation a = Allocate("H100", 2, 3600);
  ASSERT_EQ(a.cluster_id(), "sz-b");
  std::optional<SlurmJob> job = WaitForJob(a.allocation_id(), "RUNNING");
  ASSERT_TRUE(job) << Slurm("squeue") << agent("sz-b").Log();
  EXPECT_EQ(job->user, "nobody");
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_RUNNING));
  // The access instructions name the job to run steps in.
  ASSERT_TRUE(PollUntil([&] {
    return absl::StrContains(GetAllocation(a.allocation_id()).access(),
                             absl::StrCat("srun --jobid=", job->id));
  })) << GetAllocation(a.allocation_id()).ShortDebugString();
  EXPECT_THAT(GetAllocation(a.allocation_id()).access(),
              HasSubstr("login.sz-b.example"));
  // The tenant runs a step in it and gets the allocation's GPUs.
  const std::string step = Slurm(absl::StrCat(
      "runuser -u nobody -- srun --chdir=/tmp --jobid=", job->id,
      " sh -c 'echo gpus=$CUDA_VISIBLE_DEVICES'"));
  EXPECT_THAT(step, HasSubstr("gpus=0,1"));
  // Usage flows, with Slurm's evidence.
  ASSERT_TRUE(PollUntil([&] { return Usage(a.allocation_id()).size() >= 2; }));
  EXPECT_THAT(Usage(a.allocation_id())[0].record().evidence(),
              HasSubstr(absl::StrCat("slurm job ", job->id, " RUNNING")));

  Release(a.allocation_id());
  ASSERT_TRUE(PollUntil([&] {
    return JobsNamed("cv-" + a.allocation_id()).empty();
  })) << Slurm("squeue");
  ExpectMeteredOnce("sz-b", a.allocation_id());
  ExpectVerifies();
}

TEST_F(AgentSlurmTest, APendingJobIsNotCharged) {
  SetUpCluster();
  // Another user's job holds every GPU of the partition.
  Slurm("sbatch --partition=gpu --gpus=h100:4 --job-name=other --output=/dev/null "
        "--wrap 'exec sleep infinity'");
  ASSERT_TRUE(PollUntil([&] {
    std::vector<SlurmJob> other = JobsNamed("other");
    return other.size() == 1 && other[0].state == "RUNNING";
  }));
  const pb::Allocation a = Allocate("H100", 2, 3600);
  ASSERT_TRUE(WaitForJob(a.allocation_id(), "PENDING"))
      << Slurm("squeue") << agent("sz-b").Log();
  // Several report intervals pass: nothing is charged, it is not running.
  absl::SleepFor(absl::Seconds(2));  // time passing is what is tested
  EXPECT_TRUE(Usage(a.allocation_id()).empty());
  EXPECT_EQ(GetAllocation(a.allocation_id()).state(),
            pb::ALLOCATION_STATE_ASSIGNED);

  const absl::Time freed = absl::Now();
  Slurm("scancel --name=other");
  std::optional<SlurmJob> job = WaitForJob(a.allocation_id(), "RUNNING");
  ASSERT_TRUE(job) << Slurm("squeue");
  ASSERT_TRUE(PollUntil([&] { return !Usage(a.allocation_id()).empty(); }));
  const pb::UsageRecord first = Usage(a.allocation_id())[0].record();
  // Charged from Slurm's StartTime (whole seconds), not from assignment.
  EXPECT_EQ(*FromProto("start", first.start()),
            absl::FromUnixSeconds(job->start_s))
      << first.ShortDebugString();
  EXPECT_GE(*FromProto("start", first.start()),
            absl::FromUnixSeconds(absl::ToUnixSeconds(freed)));
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_RUNNING));
  Release(a.allocation_id());
  ASSERT_TRUE(WaitForLog("sz-b", a.allocation_id() + ": done"));
  ExpectVerifies();
}

TEST_F(AgentSlurmTest, AnOperatorsScancelEndsTheAllocationOnTheCluster) {
  SetUpCluster();
  const pb::Allocation a = Allocate("H100", 1, 3600);
  std::optional<SlurmJob> job = WaitForJob(a.allocation_id(), "RUNNING");
  ASSERT_TRUE(job) << agent("sz-b").Log();
  ASSERT_TRUE(PollUntil([&] { return !Usage(a.allocation_id()).empty(); }));
  // Slurm's EndTime is in whole seconds.
  const absl::Time cancelled = absl::Now() - absl::Seconds(1);
  Slurm(absl::StrCat("scancel ", job->id));
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_ENDED))
      << agent("sz-b").Log();
  const pb::Allocation ended = GetAllocation(a.allocation_id());
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_ENDED_ON_CLUSTER)
      << ended.ShortDebugString();
  EXPECT_THAT(ended.end_detail(),
              HasSubstr(absl::StrCat("slurm job ", job->id, " CANCELLED")));
  // Charged up to Slurm's end of the job, before the scheduler heard of it.
  ExpectMeteredOnce("sz-b", a.allocation_id(), cancelled);
  ExpectVerifies();
}

TEST_F(AgentSlurmTest, MetersOnWhileSlurmctldDoesNotAnswer) {
  SetUpCluster();
  const pb::Allocation a = Allocate("H100", 1, 3600);
  ASSERT_TRUE(WaitForJob(a.allocation_id(), "RUNNING"));
  // The agent has seen it run (it cannot know otherwise).
  ASSERT_TRUE(PollUntil([&] { return !Usage(a.allocation_id()).empty(); }));
  const std::string pid_file =
      SlurmConf().substr(0, SlurmConf().rfind('/')) + "/slurmctld.pid.launch";
  const std::string pid_text = ReadFile(pid_file).value_or("");
  int pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(pid_text), &pid))
      << pid_file;
  // A stopped controller accepts connections and never answers: the
  // commands hang until the agent's time limit.
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  struct Resume {
    int pid;
    ~Resume() { kill(pid, SIGCONT); }
  } resume{pid};
  ASSERT_TRUE(WaitForLog("sz-b", "no answer within")) << agent("sz-b").Log();
  const size_t before = Usage(a.allocation_id()).size();
  ASSERT_TRUE(PollUntil([&] {
    return Usage(a.allocation_id()).size() >= before + 3;
  })) << "metering stopped while Slurm was away\n"
      << agent("sz-b").Log();
  EXPECT_EQ(GetAllocation(a.allocation_id()).state(),
            pb::ALLOCATION_STATE_RUNNING);
  kill(pid, SIGCONT);
  EXPECT_TRUE(WaitForLog("sz-b", "runtime slurm answers")) << agent("sz-b").Log();
  Release(a.allocation_id());
  ASSERT_TRUE(PollUntil([&] {
    return JobsNamed("cv-" + a.allocation_id()).empty();
  })) << agent("sz-b").Log();
  ExpectMeteredOnce("sz-b", a.allocation_id());
  ExpectVerifies();
}

TEST_F(AgentSlurmTest, ARestartedAgentFindsItsJobsAndCancelsStrays) {
  SetUpCluster();
  const pb::Allocation a = Allocate("H100", 1, 3600);
  std::optional<SlurmJob> job = WaitForJob(a.allocation_id(), "RUNNING");
  ASSERT_TRUE(job);
  ASSERT_TRUE(PollUntil([&] { return !Usage(a.allocation_id()).empty(); }));
  agent("sz-b").Stop(SIGKILL);
  // While it is down: a duplicate of its job, and a job of an allocation
  // it does not have.
  Slurm("sbatch --partition=gpu --gpus=h100:1 --output=/dev/null --job-name=cv-" +
        a.allocation_id() + " --wrap 'exec sleep infinity'");
  Slurm("sbatch --partition=gpu --gpus=h100:1 --output=/dev/null "
        "--job-name=cv-AL-99999999 --wrap 'exec sleep infinity'");
  ASSERT_TRUE(PollUntil([&] { return Jobs().size() == 3; })) << Slurm("squeue");

  StartSlurmAgent();
  ASSERT_TRUE(WaitForLog("sz-b", absl::StrCat("found its job ", job->id)))
      << agent("sz-b").Log();
  ASSERT_TRUE(PollUntil([&] {
    std::vector<SlurmJob> jobs = Jobs();
    return jobs.size() == 1 && jobs[0].id == job->id;
  })) << Slurm("squeue") << agent("sz-b").Log();
  const size_t before = Usage(a.allocation_id()).size();
  ASSERT_TRUE(PollUntil([&] {
    return Usage(a.allocation_id()).size() >= before + 2;
  }));
  // A clean stop leaves the job to the next agent.
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  EXPECT_EQ(JobsNamed("cv-" + a.allocation_id()).size(), 1u);
  StartSlurmAgent();
  ASSERT_TRUE(WaitForLog("sz-b", absl::StrCat("found its job ", job->id)));
  Release(a.allocation_id());
  ExpectMeteredOnce("sz-b", a.allocation_id());
  ExpectVerifies();
}

TEST_F(AgentSlurmTest, AJobOfAnAllocationEndedWhileTheAgentWasDownIsCancelled) {
  SetUpCluster();
  const pb::Allocation a = Allocate("H100", 1, 3600);
  ASSERT_TRUE(WaitForJob(a.allocation_id(), "RUNNING"));
  ASSERT_TRUE(PollUntil([&] { return !Usage(a.allocation_id()).empty(); }));
  agent("sz-b").Stop(SIGKILL);
  Release(a.allocation_id());
  StartSlurmAgent();
  // The job does not outlive its allocation, and its usage up to the
  // restart is reported once.
  ASSERT_TRUE(PollUntil([&] {
    return JobsNamed("cv-" + a.allocation_id()).empty();
  })) << Slurm("squeue") << agent("sz-b").Log();
  ExpectMeteredOnce("sz-b", a.allocation_id());
  ExpectVerifies();
}

TEST_F(AgentSlurmTest, BatchJobsReportTheirExitCode) {
  // The job writes its output as the tenant's user: the log directory's
  // parents must let it through, as the agent's README says.
  ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);
  SetUpCluster();
  const pb::Allocation a = Allocate(
      "H100", 2, 3600,
      {"/bin/sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES; sleep 1; exit 3"});
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_ENDED))
      << agent("sz-b").Log();
  const pb::Allocation ended = GetAllocation(a.allocation_id());
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_WORKLOAD_EXITED)
      << ended.ShortDebugString();
  EXPECT_EQ(ended.exit_code(), 3);
  const std::string log = dir_ + "/batch/" + a.allocation_id() + ".out";
  EXPECT_EQ(ReadFile(log).value_or(""), "gpus=0,1\n");
  EXPECT_THAT(ended.access(), HasSubstr(log));
  ASSERT_TRUE(WaitForLog("sz-b", a.allocation_id() + ": done"));
  ExpectVerifies();
}

TEST_F(AgentSlurmTest, AnExtensionMovesTheTimeLimit) {
  SetUpCluster();
  const pb::Allocation a = Allocate("H100", 1, 600);
  std::optional<SlurmJob> job = WaitForJob(a.allocation_id(), "RUNNING");
  ASSERT_TRUE(job);
  EXPECT_EQ(job->time_limit, "11:00");  // 10 minutes and one of margin
  pb::ExtendAllocationRequest r;
  r.set_request_id(NextRequestId());
  r.set_allocation_id(a.allocation_id());
  r.set_extra_duration_s(3600);
  pb::Allocation extended;
  grpc::Status s =
      enterprise_->ExtendAllocation(As(e1_token_).get(), r, &extended);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(PollUntil([&] {
    std::vector<SlurmJob> jobs = JobsNamed("cv-" + a.allocation_id());
    // 70 minutes and one of margin, from Slurm's start time (whole
    // seconds, so possibly one minute more).
    return jobs.size() == 1 && (jobs[0].time_limit == "1:11:00" ||
                                jobs[0].time_limit == "1:12:00");
  })) << Slurm("squeue") << agent("sz-b").Log();
  Release(a.allocation_id());
  ASSERT_TRUE(WaitForLog("sz-b", a.allocation_id() + ": done"));
}

TEST_F(AgentSlurmTest, AnEnterpriseWithoutASlurmUserIsRefused) {
  StartSlurmAgent({"--slurm-accounts=E-000002=nobody"});
  ApproveCluster("sz-b");
  Issue("E-000001", 100'000'00);
  const pb::Allocation a = Allocate("H100", 1, 3600);
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_ENDED))
      << agent("sz-b").Log();
  const pb::Allocation ended = GetAllocation(a.allocation_id());
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_ENDED_ON_CLUSTER);
  EXPECT_THAT(ended.end_detail(),
              HasSubstr("enterprise \"E-000001\" has no Slurm user"));
  EXPECT_TRUE(Jobs().empty()) << Slurm("squeue");
  EXPECT_TRUE(Usage(a.allocation_id()).empty());
  ExpectVerifies();
}

TEST_F(AgentSlurmTest, AStepLessJobIsFlaggedIdle) {
  SetUpCluster();
  const pb::Allocation a = Allocate("H100", 1, 3600);
  std::optional<SlurmJob> job = WaitForJob(a.allocation_id(), "RUNNING");
  ASSERT_TRUE(job);
  // No step runs: idle after --idle-after-s=2, although the simulated
  // telemetry shows busy GPUs.
  ASSERT_TRUE(PollUntil([&] { return GetAllocation(a.allocation_id()).idle(); }))
      << agent("sz-b").Log();
  EXPECT_THAT(agent("sz-b").Log(),
              HasSubstr(a.allocation_id() +
                        ": idle: no step of the tenant's has run"));
  Release(a.allocation_id());
  ASSERT_TRUE(WaitForLog("sz-b", a.allocation_id() + ": done"));
}

}  // namespace
}  // namespace computevoucher::testing
