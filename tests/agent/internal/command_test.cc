#include "agent/internal/command.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::agent {
namespace {

using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;

TEST(SystemCommandRunner, CapturesOutputAndExitCode) {
  absl::StatusOr<CommandResult> r = SystemCommandRunner().Run(
      {"/bin/sh", "-c", "echo out; echo err >&2; echo $CV_TEST_VAR; exit 4"},
      {"CV_TEST_VAR=set"}, absl::Seconds(10));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_EQ(r->out, "out\nset\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(SystemCommandRunner, KillsACommandThatRunsPastItsLimit) {
  const absl::Time start = absl::Now();
  // The grandchild keeps the pipes open: the whole group must go.
  absl::StatusOr<CommandResult> r = SystemCommandRunner().Run(
      {"/bin/sh", "-c", "sleep 30 & sleep 30"}, {}, absl::Milliseconds(300));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(r.status().message(), HasSubstr("/bin/sh: no answer within"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(SystemCommandRunner, ACommandThatCannotStartIsUnavailable) {
  EXPECT_THAT(SystemCommandRunner().Run({"/nonexistent/squeue"}, {},
                                        absl::Seconds(5)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(SystemCommandRunner().Run({}, {}, absl::Seconds(5)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SystemCommandRunner, FindsCommandsInPath) {
  absl::StatusOr<CommandResult> r =
      SystemCommandRunner().Run({"true"}, {}, absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0);
}

}  // namespace
}  // namespace computevoucher::agent
