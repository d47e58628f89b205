#include "agent/runtime.h"

#include <string>

#include "absl/time/clock.h"
#include "agent/process_runtime.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace computevoucher::agent {
namespace {

using ::testing::HasSubstr;

TEST(ExpandAccess, ReplacesKnownPlaceholdersOnly) {
  EXPECT_EQ(ExpandAccess("ssh {login_host}; srun --jobid={job_id} {what}",
                         {{"login_host", "login1"}, {"job_id", "42"}}),
            "ssh login1; srun --jobid=42 {what}");
  EXPECT_EQ(ExpandAccess("{unclosed", {{"unclosed", "x"}}), "{unclosed");
}

TEST(ExpandAccess, KeepsWhatTheSchedulerTakes) {
  std::string long_text;
  for (int i = 0; i < 1100; ++i) long_text += "算";
  const std::string out = ExpandAccess("{x}", {{"x", long_text}});
  EXPECT_EQ(out.size(), 1024u * 3);  // 1024 whole characters
  EXPECT_EQ(ExpandAccess("job {x}\nnext", {{"x", "4\x1b" "2"}}), "job 4?2\nnext");
}

pb::DesiredAllocation Desired(std::vector<std::string> command) {
  pb::DesiredAllocation d;
  d.set_allocation_id("AL-00000001");
  d.set_gpu_model("H100");
  d.set_gpu_count(2);
  for (std::string& c : command) d.add_workload_command(std::move(c));
  return d;
}

TEST(SimulatedRuntime, AReservationStartsAtOnceAndNeverEnds) {
  std::unique_ptr<Runtime> runtime =
      NewSimulatedRuntime("reserved {gpus} for {allocation_id}");
  RuntimeSpec spec;
  spec.desired = Desired({});
  absl::StatusOr<std::unique_ptr<RuntimeAllocation>> a =
      runtime->Start(spec, absl::Now());
  ASSERT_TRUE(a.ok()) << a.status();
  const RuntimeStatus s = (*a)->Status(absl::Now());
  EXPECT_TRUE(s.started);
  EXPECT_FALSE(s.ended.has_value());
  EXPECT_EQ((*a)->Access(), "reserved 2xH100 for AL-00000001");
  (*a)->Stop(absl::Now(), absl::Seconds(1));
  EXPECT_TRUE((*a)->Gone(absl::Now()));
}

TEST(ProcessRuntime, ReportsTheWorkloadsExit) {
  const std::string dir = ::testing::TempDir();
  pb::ProcessRuntimeConfig config;
  config.set_sandbox("none");
  absl::StatusOr<std::unique_ptr<Runtime>> runtime =
      NewProcessRuntime(config, dir, dir + "/work", "");
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  RuntimeSpec spec;
  spec.desired = Desired({"/bin/sh", "-c", "exit 7"});
  spec.gpu_indices = {0, 1};
  absl::StatusOr<std::unique_ptr<RuntimeAllocation>> a =
      (*runtime)->Start(spec, absl::Now());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT((*a)->Access(), HasSubstr(dir + "/AL-00000001.log"));
  std::optional<RuntimeEnd> end;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!end && absl::Now() < deadline) {
    end = (*a)->Status(absl::Now()).ended;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->exit_code, 7);
  EXPECT_TRUE((*a)->Gone(absl::Now()));
}

TEST(ProcessRuntime, ACommandThatCannotStartEndsWith127) {
  pb::ProcessRuntimeConfig config;
  config.set_sandbox("none");
  absl::StatusOr<std::unique_ptr<Runtime>> runtime =
      NewProcessRuntime(config, "/nonexistent-dir", "/nonexistent-dir/work", "");
  ASSERT_TRUE(runtime.ok());
  RuntimeSpec spec;
  spec.desired = Desired({"/bin/true"});
  absl::StatusOr<std::unique_ptr<RuntimeAllocation>> a =
      (*runtime)->Start(spec, absl::Now());
  ASSERT_TRUE(a.ok()) << a.status();
  const RuntimeStatus s = (*a)->Status(absl::Now());
  ASSERT_TRUE(s.ended.has_value());
  EXPECT_EQ(s.ended->exit_code, 127);
}

}  // namespace
}  // namespace computevoucher::agent
