#include "agent/internal/slurm_text.h"

#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::agent::slurm {
namespace {

using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseJobs, ReadsSqueueLinesWithTheNameLast) {
  absl::StatusOr<std::vector<Job>> jobs = ParseJobs(
      "4|PENDING|N/A|N/A|root|(null)|Resources|cv-AL-00000004\n"
      "5|RUNNING|1796477297|1796477597|nobody|robots|None|odd|name\n");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id, 4);
  EXPECT_EQ((*jobs)[0].state, "PENDING");
  EXPECT_FALSE((*jobs)[0].start.has_value());
  EXPECT_EQ((*jobs)[0].reason, "Resources");
  EXPECT_EQ((*jobs)[0].name, "cv-AL-00000004");
  EXPECT_EQ((*jobs)[1].start, absl::FromUnixSeconds(1796477297));
  EXPECT_EQ((*jobs)[1].end, absl::FromUnixSeconds(1796477597));
  EXPECT_EQ((*jobs)[1].user, "nobody");
  EXPECT_EQ((*jobs)[1].account, "robots");
  EXPECT_EQ((*jobs)[1].name, "odd|name");
}

TEST(ParseJobs, RefusesLinesItCannotRead) {
  for (const char* text : {"x|RUNNING|1|2|u|a|r|n", "5|RUNNING|1|2"}) {
    EXPECT_THAT(ParseJobs(text), StatusIs(absl::StatusCode::kInternal))
        << text;
  }
  EXPECT_TRUE(ParseJobs("\n  \n").ok());
}

TEST(ParseSteps, ReadsStepIdsAndElapsedTimes) {
  absl::StatusOr<std::vector<Step>> steps =
      ParseSteps("5.0|0:01|bash\n5.batch|1:02:03|batch\n6.1|2-00:00:05|train\n");
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 3u);
  EXPECT_EQ((*steps)[0].job_id, 5);
  EXPECT_EQ((*steps)[0].step, "0");
  EXPECT_EQ((*steps)[0].elapsed, absl::Seconds(1));
  EXPECT_EQ((*steps)[1].step, "batch");
  EXPECT_EQ((*steps)[1].elapsed, absl::Hours(1) + absl::Minutes(2) +
                                     absl::Seconds(3));
  EXPECT_EQ((*steps)[2].elapsed, absl::Hours(48) + absl::Seconds(5));
  EXPECT_EQ((*steps)[2].name, "train");
  EXPECT_FALSE(ParseSteps("5|0:01|x").ok());
  EXPECT_FALSE(ParseSteps("5.0|soon|x").ok());
}

TEST(ParseGpuGres, CountsGpusPerTypeAndIgnoresTheRest) {
  const std::vector<std::pair<std::string, std::map<std::string, int>>> cases = {
      {"gpu:h100:4", {{"h100", 4}}},
      {"gpu:h100:4(S:0-1)", {{"h100", 4}}},
      {"gpu:h100:2(IDX:0,2),gpu:a100:1(IDX:0)", {{"h100", 2}, {"a100", 1}}},
      {"gpu:8", {{"", 8}}},
      {"gpu:h100:4,license:1,mps:100", {{"h100", 4}}},
      {"(null)", {}},
      {"", {}},
  };
  for (const auto& [text, want] : cases) {
    absl::StatusOr<std::map<std::string, int>> got = ParseGpuGres(text);
    ASSERT_TRUE(got.ok()) << text << ": " << got.status();
    EXPECT_EQ(*got, want) << text;
  }
  EXPECT_FALSE(ParseGpuGres("gpu:h100:many").ok());
  // Found by the fuzzer: a negative count was taken as it is, and large
  // ones could overflow the sum.
  EXPECT_FALSE(ParseGpuGres("gpu:-1").ok());
  EXPECT_FALSE(ParseGpuGres("gpu:h100:-4").ok());
  EXPECT_FALSE(ParseGpuGres("gpu:h100:2000000000,gpu:h100:2000000000").ok());
  EXPECT_FALSE(ParseGpuGres("gpu:1000001").ok());
  EXPECT_FALSE(ParseGpuGres("gpu:h100:600000,gpu:h100:400001").ok());
  ASSERT_TRUE(ParseGpuGres("gpu:h100:600000,gpu:h100:400000").ok());
  EXPECT_EQ(ParseGpuGres("gpu:h100:600000,gpu:h100:400000")->at("h100"),
            1'000'000);
}

TEST(ParseNodes, ReadsSinfoColumns) {
  absl::StatusOr<std::vector<Node>> nodes = ParseNodes(
      "cvnode1    |gpu:h100:4   |gpu:h100:2(IDX:0-1)   |mixed     |\n"
      "cvnode2|gpu:h100:4|gpu:h100:0(IDX:N/A)|down*|\n");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].name, "cvnode1");
  EXPECT_EQ((*nodes)[0].gpus.at("h100"), 4);
  EXPECT_EQ((*nodes)[0].gpus_used.at("h100"), 2);
  EXPECT_EQ((*nodes)[0].state, "mixed");
  EXPECT_TRUE(IsUsable((*nodes)[0].state));
  EXPECT_FALSE(IsUsable((*nodes)[1].state));
}

TEST(IsUsable, OnlyNodesThatCanRunJobs) {
  for (const char* state : {"idle", "mixed", "allocated", "completing"}) {
    EXPECT_TRUE(IsUsable(state)) << state;
  }
  for (const char* state : {"down", "down*", "drained", "draining", "idle*",
                            "fail", "maint", "unknown", "powered_down"}) {
    EXPECT_FALSE(IsUsable(state)) << state;
  }
}

TEST(IsTerminal, EndedStatesOnly) {
  for (const char* state : {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT",
                            "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY"}) {
    EXPECT_TRUE(IsTerminal(state)) << state;
  }
  for (const char* state : {"PENDING", "RUNNING", "COMPLETING", "SUSPENDED",
                            "CONFIGURING"}) {
    EXPECT_FALSE(IsTerminal(state)) << state;
  }
}

TEST(ParseExitCode, ReadsCodeOrSignal) {
  EXPECT_EQ(ParseExitCode("JobId=3 JobState=FAILED ExitCode=2:0 Reboot=0"), 2);
  EXPECT_EQ(ParseExitCode("JobState=CANCELLED ExitCode=0:15"), 128 + 15);
  EXPECT_EQ(ParseExitCode("JobState=COMPLETED ExitCode=0:0"), 0);
  EXPECT_EQ(ParseExitCode("JobState=COMPLETED"), std::nullopt);
}

TEST(TimeLimitMinutes, RoundsUpWithAMinuteOfMargin) {
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  const std::vector<std::pair<absl::Duration, int64_t>> cases = {
      {absl::Seconds(600), 11}, {absl::Seconds(601), 12},
      {absl::Seconds(1), 2},    {absl::ZeroDuration(), 1},
      {absl::Seconds(-30), 1},  {absl::Hours(2), 121},
  };
  for (const auto& [length, want] : cases) {
    EXPECT_EQ(TimeLimitMinutes(t0, t0 + length), want) << length;
  }
}

TEST(ShellQuote, QuotesEveryArgument) {
  EXPECT_EQ(ShellQuote({"/bin/sh", "-c", "echo $HOME; exit 3"}),
            "'/bin/sh' '-c' 'echo $HOME; exit 3'");
  EXPECT_EQ(ShellQuote({"it's"}), "'it'\\''s'");
}

// Found by the slurm fuzzer: an elapsed time too long for 64 bits of
// seconds overflowed a signed multiplication.
TEST(ParseElapsed, RefusesTimesTooLongForSixtyFourBits) {
  EXPECT_THAT(
      ParseElapsed("1:7133701809754865662:03"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of range")));
  EXPECT_THAT(ParseElapsed("-1-00:00:01"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<absl::Duration> two_days = ParseElapsed("2-00:00:05");
  ASSERT_TRUE(two_days.ok());
  EXPECT_EQ(*two_days, absl::Hours(48) + absl::Seconds(5));
}

}  // namespace
}  // namespace computevoucher::agent::slurm
