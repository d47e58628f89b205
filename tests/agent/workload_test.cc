#include "agent/workload.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace cv::agent {
namespace {

using ::cv::testing::IsOk;
using ::cv::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kDeadline = absl::Seconds(10);
constexpr absl::Duration kPollInterval = absl::Milliseconds(5);

// An injected clock value for RequestStop/Poll(now); unrelated to real time.
const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls `condition` until it holds or the deadline passes.
bool WaitFor(const std::function<bool()>& condition,
             absl::Duration timeout = kDeadline) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(kPollInterval);
  }
  return true;
}

// Polls the workload until it exits; nullopt on timeout.
std::optional<int> WaitForExit(Workload& w,
                               std::optional<absl::Time> now = std::nullopt) {
  std::optional<int> code;
  WaitFor([&] {
    code = now.has_value() ? w.Poll(*now) : w.Poll();
    return code.has_value();
  });
  return code;
}

// Whether `pid` no longer runs: gone, or a zombie waiting for init (or a
// subreaper that may not reap promptly) to collect it.
bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) == -1 && errno == ESRCH) return true;
  const std::string stat =
      ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return true;
  // Format: "pid (comm) S ..."; comm may contain spaces and parentheses.
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() &&
         stat[close + 2] == 'Z';
}

class WorkloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = absl::StrCat(::testing::TempDir(), "/workload-XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    log_path_ = dir_ + "/workload.log";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  WorkloadSpec Spec(std::vector<std::string> argv) const {
    WorkloadSpec spec;
    spec.allocation_id = "alloc-42";
    spec.argv = std::move(argv);
    spec.gpu_indices = {2, 3};
    spec.log_path = log_path_;
    return spec;
  }
  WorkloadSpec Shell(const std::string& script) const {
    return Spec({"/bin/sh", "-c", script});
  }
  std::string Log() const { return ReadFileOrEmpty(log_path_); }

  // Waits until the log contains `marker`, written by a script once it is
  // ready (e.g. has installed a trap).
  ::testing::AssertionResult WaitForLog(const std::string& marker) const {
    if (WaitFor([&] { return Log().find(marker) != std::string::npos; })) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "log never contained \"" << marker << "\"; log: " << Log();
  }

  std::string dir_;
  std::string log_path_;
};

TEST_F(WorkloadTest, PropagatesExitCode) {
  ASSERT_OK_AND_ASSIGN(auto w, Workload::Start(Shell("exit 7")));
  EXPECT_GT(w->pid(), 0);
  EXPECT_FALSE(w->stopping());
  EXPECT_EQ(WaitForExit(*w), 7);
  // The exit code is cached once reaped.
  EXPECT_EQ(w->Poll(), 7);
  EXPECT_EQ(w->Poll(kT0), 7);
}

TEST_F(WorkloadTest, ExitCodeZero) {
  ASSERT_OK_AND_ASSIGN(auto w, Workload::Start(Spec({"true"})));
  EXPECT_EQ(WaitForExit(*w), 0);
}

TEST_F(WorkloadTest, SetsGpuAndAllocationEnvironment) {
  // Values inherited from the agent must be replaced, not duplicated.
  const char* old_cuda = getenv("CUDA_VISIBLE_DEVICES");
  const std::optional<std::string> saved =
      old_cuda == nullptr ? std::nullopt : std::optional<std::string>(old_cuda);
  ASSERT_EQ(setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7", 1), 0);
  ASSERT_EQ(setenv("COMPUTEVOUCHER_ALLOCATION_ID", "stale", 1), 0);
  ASSERT_EQ(setenv("CV_WORKLOAD_TEST_KEPT", "yes", 1), 0);
  absl::StatusOr<std::unique_ptr<Workload>> started =
      Workload::Start(Spec({"env"}));
  if (saved.has_value()) {
    setenv("CUDA_VISIBLE_DEVICES", saved->c_str(), 1);
  } else {
    unsetenv("CUDA_VISIBLE_DEVICES");
  }
  unsetenv("COMPUTEVOUCHER_ALLOCATION_ID");
  unsetenv("CV_WORKLOAD_TEST_KEPT");
  ASSERT_THAT(started, IsOk());
  EXPECT_EQ(WaitForExit(**started), 0);

  const std::string log = Log();
  EXPECT_THAT(log, HasSubstr("CUDA_VISIBLE_DEVICES=2,3\n"));
  EXPECT_THAT(log, HasSubstr("COMPUTEVOUCHER_ALLOCATION_ID=alloc-42\n"));
  EXPECT_THAT(log, Not(HasSubstr("CUDA_VISIBLE_DEVICES=0,1")));
  EXPECT_THAT(log, Not(HasSubstr("=stale")));
  EXPECT_THAT(log, HasSubstr("CV_WORKLOAD_TEST_KEPT=yes\n"));
}

TEST_F(WorkloadTest, NoGpusHidesAllDevices) {
  WorkloadSpec spec = Spec({"env"});
  spec.gpu_indices = {};
  ASSERT_OK_AND_ASSIGN(auto w, Workload::Start(spec));
  EXPECT_EQ(WaitForExit(*w), 0);
  EXPECT_THAT(Log(), HasSubstr("\nCUDA_VISIBLE_DEVICES=\n"));
}

TEST_F(WorkloadTest, StdoutAndStderrAppendToLogStdinIsDevNull) {
  {
    std::ofstream out(log_path_);
    out << "earlier run\n";
  }
  // `cat` returns at once only if stdin is at EOF.
  ASSERT_OK_AND_ASSIGN(
      auto w, Workload::Start(Shell("echo to-stdout; echo to-stderr >&2; "
                                    "cat; echo after-cat")));
  EXPECT_EQ(WaitForExit(*w), 0);
  EXPECT_EQ(Log(), "earlier run\nto-stdout\nto-stderr\nafter-cat\n");
}

TEST_F(WorkloadTest, CreatesLogWithMode0640) {
  const mode_t old_umask = umask(022);
  absl::StatusOr<std::unique_ptr<Workload>> started =
      Workload::Start(Shell("exit 0"));
  umask(old_umask);
  ASSERT_THAT(started, IsOk());
  EXPECT_EQ(WaitForExit(**started), 0);
  struct stat st;
  ASSERT_EQ(stat(log_path_.c_str(), &st), 0) << std::strerror(errno);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(WorkloadTest, ParentDoesNotKeepLogOpen) {
  auto count_fds = [] {
    int n = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/self/fd")) {
      ++n;
    }
    return n;
  };
  const int before = count_fds();
  ASSERT_OK_AND_ASSIGN(auto w, Workload::Start(Shell("exit 0")));
  EXPECT_EQ(count_fds(), before);
  EXPECT_EQ(WaitForExit(*w), 0);
}

TEST_F(WorkloadTest, MissingProgramExits127) {
  ASSERT_OK_AND_ASSIGN(
      auto w, Workload::Start(Spec({"computevoucher-no-such-program", "x"})));
  EXPECT_EQ(WaitForExit(*w), 127);
  EXPECT_THAT(Log(), HasSubstr("computevoucher-no-such-program"));
  EXPECT_THAT(Log(), HasSubstr("No such file or directory"));
}

TEST_F(WorkloadTest, EmptyArgvIsInvalidArgument) {
  EXPECT_THAT(Workload::Start(Spec({})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("workload_command")));
}

TEST_F(WorkloadTest, UnwritableLogIsInternalNamingPath) {
  WorkloadSpec spec = Shell("exit 0");
  spec.log_path = dir_ + "/no-such-dir/workload.log";
  EXPECT_THAT(Workload::Start(spec),
              StatusIs(absl::StatusCode::kInternal, HasSubstr(spec.log_path)));
}

TEST_F(WorkloadTest, StopEndsProcessWithSigterm) {
  ASSERT_OK_AND_ASSIGN(auto w, Workload::Start(Spec({"sleep", "1000"})));
  EXPECT_EQ(w->Poll(kT0), std::nullopt);
  w->RequestStop(kT0, absl::Hours(1));
  EXPECT_TRUE(w->stopping());
  // The grace period (an hour of injected time) never passes: SIGTERM alone
  // ends it.
  EXPECT_EQ(WaitForExit(*w, kT0), 128 + SIGTERM);
}

TEST_F(WorkloadTest, IgnoredSigtermGetsSigkillOnlyAfterGrace) {
  ASSERT_OK_AND_ASSIGN(auto w,
                       Workload::Start(Shell("trap '' TERM; echo trapped; "
                                             "while :; do sleep 0.05; done")));
  ASSERT_TRUE(WaitForLog("trapped\n"));
  const absl::Duration grace = absl::Seconds(30);
  w->RequestStop(kT0, grace);
  // A later request does not restart the grace period.
  w->RequestStop(kT0 + absl::Seconds(20), grace);

  // Over a real interval long enough for SIGTERM to have acted, the process
  // survives every Poll before the grace period has passed.
  const absl::Time real_end = absl::Now() + absl::Milliseconds(200);
  for (absl::Duration t = absl::ZeroDuration(); absl::Now() < real_end;
       t += absl::Seconds(1)) {
    const absl::Time now = kT0 + std::min(t, grace - absl::Milliseconds(1));
    ASSERT_EQ(w->Poll(now), std::nullopt) << "at " << now;
    absl::SleepFor(kPollInterval);
  }
  EXPECT_EQ(kill(w->pid(), 0), 0) << std::strerror(errno);

  EXPECT_EQ(WaitForExit(*w, kT0 + grace), 128 + SIGKILL);
}

TEST_F(WorkloadTest, StopKillsGrandchildren) {
  const std::string pid_file = dir_ + "/grandchild.pid";
  ASSERT_OK_AND_ASSIGN(
      auto w, Workload::Start(Shell(absl::StrCat(
                  "sleep 1000 & echo $! > ", pid_file, ".tmp && mv ", pid_file,
                  ".tmp ", pid_file, "; wait"))));
  ASSERT_TRUE(WaitFor([&] { return !ReadFileOrEmpty(pid_file).empty(); }));
  int grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripAsciiWhitespace(ReadFileOrEmpty(pid_file)), &grandchild));
  ASSERT_FALSE(ProcessGone(grandchild));

  w->RequestStop(kT0, absl::Seconds(30));
  EXPECT_EQ(WaitForExit(*w, kT0), 128 + SIGTERM);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(grandchild); }))
      << "grandchild " << grandchild << " still runs";
}

TEST_F(WorkloadTest, LeftoverGrandchildrenKilledWhenMainProcessExits) {
  const std::string pid_file = dir_ + "/grandchild.pid";
  ASSERT_OK_AND_ASSIGN(
      auto w, Workload::Start(Shell(absl::StrCat(
                  "sleep 1000 & echo $! > ", pid_file, ".tmp && mv ", pid_file,
                  ".tmp ", pid_file, "; exit 3"))));
  EXPECT_EQ(WaitForExit(*w), 3);
  int grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripAsciiWhitespace(ReadFileOrEmpty(pid_file)), &grandchild));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(grandchild); }))
      << "grandchild " << grandchild << " still runs";
}

TEST_F(WorkloadTest, DestructorKillsAndReapsRunningProcess) {
  ASSERT_OK_AND_ASSIGN(auto w, Workload::Start(Spec({"sleep", "1000"})));
  const pid_t pid = w->pid();
  ASSERT_EQ(kill(pid, 0), 0);
  w.reset();
  // The destructor reaped it, so the pid is gone at once, not a zombie.
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(WorkloadTest, DestructorKillsGroupOfRunningProcess) {
  const std::string pid_file = dir_ + "/grandchild.pid";
  ASSERT_OK_AND_ASSIGN(
      auto w, Workload::Start(Shell(absl::StrCat(
                  "sleep 1000 & echo $! > ", pid_file, ".tmp && mv ", pid_file,
                  ".tmp ", pid_file, "; wait"))));
  ASSERT_TRUE(WaitFor([&] { return !ReadFileOrEmpty(pid_file).empty(); }));
  int grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripAsciiWhitespace(ReadFileOrEmpty(pid_file)), &grandchild));
  w.reset();
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(grandchild); }))
      << "grandchild " << grandchild << " still runs";
}

TEST_F(WorkloadTest, ChildGetsDefaultSignalsWhateverTheAgentSet) {
  // The agent may ignore and block SIGTERM; the workload must still die of
  // it.
  struct sigaction ignore;
  std::memset(&ignore, 0, sizeof(ignore));
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_action;
  ASSERT_EQ(sigaction(SIGTERM, &ignore, &old_action), 0);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigset_t old_mask;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);
  absl::StatusOr<std::unique_ptr<Workload>> started =
      Workload::Start(Spec({"sleep", "1000"}));
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGTERM, &old_action, nullptr);
  ASSERT_THAT(started, IsOk());

  (*started)->RequestStop(kT0, absl::Hours(1));
  EXPECT_EQ(WaitForExit(**started, kT0), 128 + SIGTERM);
}

TEST_F(WorkloadTest, RunsInItsOwnProcessGroup) {
  ASSERT_OK_AND_ASSIGN(auto w, Workload::Start(Spec({"sleep", "1000"})));
  // Start returns only after the group exists.
  EXPECT_EQ(getpgid(w->pid()), w->pid());
  EXPECT_NE(getpgid(w->pid()), getpgrp());
}

}  // namespace
}  // namespace cv::agent
