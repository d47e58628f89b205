#include "agent/workload.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/sandbox.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::agent {
namespace {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::AllOf;
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
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("workload", temp_));
    dir_ = temp_.path();
    log_path_ = dir_ + "/workload.log";
  }

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

  // Opens a file without O_CLOEXEC, as careless agent code would, and
  // expects the workload `make(script)` to have only stdin, stdout and
  // stderr open, and not to read it.
  void ExpectOnlyStdioPassedOn(
      const std::function<WorkloadSpec(const std::string&)>& make) {
    const std::string secret = dir_ + "/agent-secret";
    std::ofstream(secret) << "agent secret";
    const int fd = open(secret.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    // No pipe in the script: the shell would hold its ends.
    absl::StatusOr<std::unique_ptr<Workload>> started =
        Workload::Start(make(absl::StrCat("ls /proc/$$/fd; { cat <&", fd,
                                          "; } 2>/dev/null || echo no-fd")));
    close(fd);
    ASSERT_THAT(started, IsOk());
    EXPECT_EQ(WaitForExit(**started), 0);
    EXPECT_EQ(Log(), "0\n1\n2\nno-fd\n");
  }

  TempDir temp_;  // destroyed after the members declared below
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

TEST_F(WorkloadTest, DoesNotPassOnDescriptorsTheAgentLeftOpen) {
  ExpectOnlyStdioPassedOn(
      [&](const std::string& script) { return Shell(script); });
}

TEST_F(WorkloadTest, SandboxAsRootIsInvalidArgument) {
  WorkloadSpec spec = Shell("exit 0");
  spec.sandbox = SandboxSpec{};
  spec.sandbox->work_dir = dir_;
  EXPECT_THAT(Workload::Start(spec),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("must not run as root")));
}

TEST_F(WorkloadTest, SandboxWithoutBwrapIsFailedPreconditionNamingIt) {
  for (const std::string bwrap :
       {"/nonexistent/bwrap", "computevoucher-no-such-bwrap"}) {
    WorkloadSpec spec = Shell("exit 0");
    spec.sandbox = SandboxSpec{};
    spec.sandbox->bwrap_path = bwrap;
    spec.sandbox->uid = geteuid() == 0 ? 65534 : geteuid();
    spec.sandbox->gid = geteuid() == 0 ? 65534 : getegid();
    spec.sandbox->work_dir = dir_;
    EXPECT_THAT(
        Workload::Start(spec),
        StatusIs(absl::StatusCode::kFailedPrecondition,
                 AllOf(HasSubstr("process.bwrap_path"), HasSubstr(bwrap))))
        << bwrap;
    EXPECT_FALSE(std::filesystem::exists(log_path_)) << bwrap;
  }
}

// Host pids of the processes with `arg` among their arguments that still
// run.
std::vector<pid_t> PidsWithArgument(const std::string& arg) {
  std::vector<pid_t> pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    const std::string cmdline =
        ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/cmdline"));
    for (absl::string_view a : absl::StrSplit(cmdline, '\0')) {
      if (a == arg && !ProcessGone(pid)) {
        pids.push_back(pid);
        break;
      }
    }
  }
  return pids;
}

// Workloads in a bubblewrap sandbox, as user nobody, with fake GPU device
// files (character devices 1:3, like /dev/null) in a temporary directory.
// They need root, as the agent does in production, to switch users and
// make device files.
class SandboxTest : public WorkloadTest {
 protected:
  void SetUp() override {
    WorkloadTest::SetUp();
    if (geteuid() != 0) {
      GTEST_SKIP() << "sandboxed workloads switch to user nobody and the "
                      "tests mknod device files: run as root";
    }
    // The user must cross it to its working directory and devices.
    ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);
    ASSERT_EQ(mkdir((dir_ + "/dev").c_str(), 0755), 0);
    for (const char* name :
         {"nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidiactl"}) {
      const std::string path = dir_ + "/dev/" + name;
      ASSERT_EQ(mknod(path.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0)
          << path << ": " << std::strerror(errno);
      ASSERT_EQ(chmod(path.c_str(), 0666), 0);
    }
    pb::ProcessRuntimeConfig config;
    config.set_run_as_user("nobody");
    config.set_work_root(dir_ + "/work");
    config.set_gpu_device_pattern(dir_ + "/dev/nvidia%d");
    config.add_shared_devices(dir_ + "/dev/nvidiactl");
    config.add_shared_devices(dir_ + "/dev/nvidia-uvm");  // Missing.
    absl::StatusOr<ProcessSettings> runtime =
        ResolveProcessSettings(config, "/unused");
    ASSERT_THAT(runtime, IsOk()) << "is bubblewrap installed? "
                                    "(scripts/setup.sh)";
    runtime_ = *runtime;
    work_dir_ = std::filesystem::path(dir_ + "/work/alloc-42")
                    .lexically_normal()
                    .string();
    token_ = absl::StrCat("cv-grandchild-",
                          std::filesystem::path(dir_).filename().string());
  }

  WorkloadSpec Sandboxed(std::vector<std::string> argv) const {
    WorkloadSpec spec = Spec(std::move(argv));
    absl::StatusOr<std::optional<SandboxSpec>> sandbox =
        PrepareSandbox(runtime_, spec.allocation_id, spec.gpu_indices);
    EXPECT_THAT(sandbox, IsOk());
    if (sandbox.ok()) spec.sandbox = **sandbox;
    return spec;
  }
  WorkloadSpec SandboxedShell(const std::string& script) const {
    return Sandboxed({"/bin/sh", "-c", script});
  }
  // Runs `script` in the sandbox to its end; its exit code.
  std::optional<int> RunSandboxed(const std::string& script) const {
    absl::StatusOr<std::unique_ptr<Workload>> w =
        Workload::Start(SandboxedShell(script));
    EXPECT_THAT(w, IsOk());
    if (!w.ok()) return std::nullopt;
    return WaitForExit(**w);
  }
  // A shell script line starting, in the background, a process that
  // ignores SIGTERM and carries token_ among its arguments; it logs
  // "grandchild ready" once it ignores SIGTERM.
  std::string StartGrandchild() const {
    return absl::StrCat(
        "sh -c 'trap \"\" TERM; echo grandchild ready; "
        "while :; do sleep 0.05; done' ",
        token_, " &\n");
  }
  // Waits until the grandchild and the main process (logging "main
  // ready") are ready.
  ::testing::AssertionResult WaitForGrandchild() const {
    ::testing::AssertionResult ready = WaitForLog("grandchild ready\n");
    if (ready) ready = WaitForLog("main ready\n");
    if (ready && PidsWithArgument(token_).empty()) {
      ready = ::testing::AssertionFailure() << "no process has " << token_;
    }
    return ready;
  }
  ::testing::AssertionResult WaitUntilGone(const std::string& arg) const {
    if (WaitFor([&] { return PidsWithArgument(arg).empty(); })) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << arg << " still runs as " << PidsWithArgument(arg).size()
           << " processes";
  }

  ProcessSettings runtime_;
  std::string work_dir_;
  std::string token_;
};

TEST_F(SandboxTest, RunsAsTheConfiguredUser) {
  EXPECT_EQ(RunSandboxed("id -u; id -g; id -G; touch made-here"), 0);
  EXPECT_EQ(Log(), absl::StrCat(runtime_.uid, "\n", runtime_.gid, "\n",
                                runtime_.gid, "\n"));
  struct stat st;
  ASSERT_EQ(stat((work_dir_ + "/made-here").c_str(), &st), 0)
      << std::strerror(errno) << "; log: " << Log();
  EXPECT_EQ(st.st_uid, runtime_.uid);
  EXPECT_EQ(st.st_gid, runtime_.gid);
}

TEST_F(SandboxTest, SeesItsGpuDevicesOnly) {
  std::string script;
  for (const char* name :
       {"nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidiactl"}) {
    absl::StrAppend(&script, "if test -c ", dir_, "/dev/", name, "; then echo ",
                    name, " present; else echo ", name, " absent; fi\n");
  }
  // Bound with --dev-bind: usable as devices, not just visible.
  absl::StrAppend(&script, "cat ", dir_, "/dev/nvidia2 && echo read-ok\n",
                  "test -c /dev/null && echo dev-null\n",
                  "ls /dev | grep -c nvidia || true\n");
  EXPECT_EQ(RunSandboxed(script), 0);
  EXPECT_EQ(Log(),
            "nvidia0 absent\nnvidia1 absent\nnvidia2 present\n"
            "nvidia3 present\nnvidiactl present\nread-ok\ndev-null\n0\n");
}

TEST_F(SandboxTest, CannotSeeTheAgentsTokenAndSpool) {
  // Stands for the agent's state: root's, mode 0700, with secrets.
  const std::string agent_dir = dir_ + "/agent";
  ASSERT_EQ(mkdir(agent_dir.c_str(), 0700), 0);
  ASSERT_EQ(mkdir((agent_dir + "/spool").c_str(), 0700), 0);
  std::ofstream(agent_dir + "/token") << "s3cret-token\n";
  std::ofstream(agent_dir + "/spool/spool.log") << "s3cret-spool\n";
  std::string script;
  for (const std::string& path :
       {agent_dir + "/token", agent_dir + "/spool/spool.log"}) {
    absl::StrAppend(&script, "cat ", path, " && echo read ", path, "\n");
  }
  for (const std::string& path :
       {agent_dir, std::string("/root"), std::string("/home"),
        std::string("/var/lib"), std::string("/run"), std::string("/sys")}) {
    absl::StrAppend(&script, "test -e ", path, " && echo exists ", path, "\n");
  }
  absl::StrAppend(&script, "echo done\n");
  ASSERT_TRUE(std::filesystem::exists("/root"));  // Else the check is void.
  EXPECT_EQ(RunSandboxed(script), 0);
  const std::string log = Log();
  EXPECT_THAT(log, HasSubstr("done\n"));
  EXPECT_THAT(log, Not(HasSubstr("s3cret")));
  EXPECT_THAT(log, Not(HasSubstr("read ")));
  EXPECT_THAT(log, Not(HasSubstr("exists ")));
  EXPECT_THAT(log, HasSubstr(agent_dir + "/token: No such file"));
}

TEST_F(SandboxTest, TmpIsPrivate) {
  std::string host_file = "/tmp/cv-sandbox-host-XXXXXX";
  const int fd = mkstemp(host_file.data());
  ASSERT_GE(fd, 0) << std::strerror(errno);
  close(fd);
  const std::string sandbox_file = host_file + ".from-sandbox";
  std::optional<int> code = RunSandboxed(
      absl::StrCat("test -e ", host_file, " && echo visible\n", "echo mine > ",
                   sandbox_file, " && cat ", sandbox_file, "\n"));
  const bool leaked = std::filesystem::exists(sandbox_file);
  std::filesystem::remove(host_file);
  std::filesystem::remove(sandbox_file);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(Log(), "mine\n");
  EXPECT_FALSE(leaked) << sandbox_file;
}

TEST_F(SandboxTest, SystemIsReadOnly) {
  const std::string probe =
      std::filesystem::path(dir_).filename().string() + "-probe";
  std::vector<std::string> dirs = {"/usr", "/etc", "/usr/bin"};
  if (std::filesystem::is_directory("/opt")) dirs.push_back("/opt");
  std::string script;
  std::string expected;
  for (const std::string& dir : dirs) {
    absl::StrAppend(&script, "touch ", dir, "/", probe, " 2>&1 | grep -c ",
                    "'Read-only file system'\n");
    absl::StrAppend(&expected, "1\n");
  }
  EXPECT_EQ(RunSandboxed(script), 0);
  EXPECT_EQ(Log(), expected);
  for (const std::string& dir : dirs) {
    const std::string path = absl::StrCat(dir, "/", probe);
    EXPECT_FALSE(std::filesystem::exists(path)) << path;
    std::filesystem::remove(path);
  }
}

TEST_F(SandboxTest, WorkDirIsWritableCwdAndHome) {
  EXPECT_EQ(RunSandboxed("pwd; echo \"$HOME\"; echo data > out.txt"), 0);
  EXPECT_EQ(Log(), absl::StrCat(work_dir_, "\n", work_dir_, "\n"));
  EXPECT_EQ(ReadFileOrEmpty(work_dir_ + "/out.txt"), "data\n");
}

TEST_F(SandboxTest, GetsOnlyTheWorkloadsEnvironment) {
  ASSERT_EQ(setenv("CV_WORKLOAD_TEST_SECRET", "agent-only", 1), 0);
  absl::StatusOr<std::unique_ptr<Workload>> started =
      Workload::Start(Sandboxed({"env"}));
  unsetenv("CV_WORKLOAD_TEST_SECRET");
  ASSERT_THAT(started, IsOk());
  EXPECT_EQ(WaitForExit(**started), 0);
  std::vector<std::string> lines =
      absl::StrSplit(Log(), '\n', absl::SkipEmpty());
  EXPECT_THAT(
      lines,
      ::testing::UnorderedElementsAre(
          "CUDA_VISIBLE_DEVICES=2,3", "COMPUTEVOUCHER_ALLOCATION_ID=alloc-42",
          "HOME=" + work_dir_, "PWD=" + work_dir_,
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
          "/sbin:/bin"));
}

TEST_F(SandboxTest, HasItsOwnPidNamespaceAndTheHostsNetwork) {
  // Interface names, from /proc/net/dev: "  eth0: 123 ...".
  auto interfaces = [](const std::string& net_dev) {
    std::vector<std::string> names;
    for (absl::string_view line : absl::StrSplit(net_dev, '\n')) {
      const size_t colon = line.find(':');
      if (colon == absl::string_view::npos) continue;
      names.emplace_back(absl::StripAsciiWhitespace(line.substr(0, colon)));
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  EXPECT_EQ(RunSandboxed("cat /proc/1/comm; echo ---; cat /proc/net/dev"), 0);
  const std::string log = Log();
  const size_t split = log.find("---\n");
  ASSERT_NE(split, std::string::npos) << log;
  EXPECT_EQ(log.substr(0, split), "bwrap\n");
  const std::vector<std::string> inside = interfaces(log.substr(split + 4));
  EXPECT_FALSE(inside.empty()) << log;
  EXPECT_EQ(inside, interfaces(ReadFileOrEmpty("/proc/self/net/dev")));
}

TEST_F(SandboxTest, CannotCreateUserNamespaces) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/unshare"));
  EXPECT_EQ(RunSandboxed("unshare --user true 2>/dev/null && echo nested; "
                         "echo done"),
            0);
  EXPECT_EQ(Log(), "done\n");
}

TEST_F(SandboxTest, ExitCodePassesThroughBwrap) {
  struct Case {
    std::string script;
    int code;
  };
  const std::vector<Case> cases = {
      {"exit 0", 0},
      {"exit 7", 7},
      {"exit 255", 255},
      {"kill -TERM $$", 128 + SIGTERM},
      {"kill -KILL $$", 128 + SIGKILL},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(RunSandboxed(c.script), c.code) << c.script << "; log: " << Log();
  }
}

TEST_F(SandboxTest, CommandThatCannotBeExecutedExits127Or126) {
  ASSERT_OK_AND_ASSIGN(
      auto missing,
      Workload::Start(Sandboxed({"computevoucher-no-such-program", "x"})));
  EXPECT_EQ(WaitForExit(*missing), 127);
  EXPECT_THAT(Log(), HasSubstr("computevoucher-no-such-program: not found"));

  // Found but not executable: 126, as a shell says.
  std::ofstream(work_dir_ + "/data.txt") << "not a program\n";
  ASSERT_OK_AND_ASSIGN(auto not_executable,
                       Workload::Start(Sandboxed({"./data.txt"})));
  EXPECT_EQ(WaitForExit(*not_executable), 126);
  EXPECT_THAT(Log(), HasSubstr("./data.txt: Permission denied"));
}

TEST_F(SandboxTest, StopSendsSigtermIntoTheSandbox) {
  ASSERT_OK_AND_ASSIGN(auto w, Workload::Start(Sandboxed({"sleep", "1000"})));
  // At once: bwrap may still be setting up, and SIGTERM then waits for the
  // workload to run.
  w->RequestStop(kT0, absl::Hours(1));
  EXPECT_EQ(WaitForExit(*w, kT0), 128 + SIGTERM);
}

TEST_F(SandboxTest, StopReachesAGrandchildThatIgnoresSigterm) {
  ASSERT_OK_AND_ASSIGN(
      auto w, Workload::Start(SandboxedShell(absl::StrCat(
                  "trap 'echo got-term' TERM\n", StartGrandchild(),
                  "echo main ready\n", "while :; do sleep 0.05; done\n"))));
  ASSERT_TRUE(WaitForGrandchild());

  const absl::Duration grace = absl::Seconds(30);
  w->RequestStop(kT0, grace);
  // SIGTERM crosses into the sandbox: the main process's trap runs.
  EXPECT_TRUE(WaitFor([&] {
    EXPECT_EQ(w->Poll(kT0 + grace - absl::Milliseconds(1)), std::nullopt);
    return Log().find("got-term") != std::string::npos;
  })) << Log();
  EXPECT_FALSE(PidsWithArgument(token_).empty());

  EXPECT_EQ(WaitForExit(*w, kT0 + grace), 128 + SIGKILL);
  EXPECT_TRUE(WaitUntilGone(token_));
}

TEST_F(SandboxTest, LeftoverProcessesDieWithTheMainProcess) {
  ASSERT_OK_AND_ASSIGN(
      auto w, Workload::Start(SandboxedShell(absl::StrCat(
                  StartGrandchild(), "echo main ready\n", "while ! grep -q go ",
                  "go-file 2>/dev/null; do sleep "
                  "0.01; done\n",
                  "exit 3\n"))));
  ASSERT_TRUE(WaitForGrandchild());
  std::ofstream(work_dir_ + "/go-file") << "go\n";
  EXPECT_EQ(WaitForExit(*w), 3);
  EXPECT_TRUE(WaitUntilGone(token_));
}

TEST_F(SandboxTest, DestructorKillsTheSandbox) {
  ASSERT_OK_AND_ASSIGN(auto w,
                       Workload::Start(SandboxedShell(absl::StrCat(
                           StartGrandchild(), "echo main ready\n", "wait\n"))));
  ASSERT_TRUE(WaitForGrandchild());
  const pid_t pid = w->pid();
  w.reset();
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_TRUE(WaitUntilGone(token_));
}

TEST_F(SandboxTest, DoesNotPassOnDescriptorsTheAgentLeftOpen) {
  // Not even bwrap's startup pipe.
  ExpectOnlyStdioPassedOn(
      [&](const std::string& script) { return SandboxedShell(script); });
}

}  // namespace
}  // namespace computevoucher::agent
