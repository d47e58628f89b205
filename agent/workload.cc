#include "agent/workload.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/internal/wait.h"
#include "agent/internal/bwrap.h"
#include "common/status_macros.h"

extern char** environ;

namespace computevoucher::agent {
namespace {

constexpr char kCudaVisibleDevices[] = "CUDA_VISIBLE_DEVICES";
constexpr char kAllocationIdVar[] = "COMPUTEVOUCHER_ALLOCATION_ID";
constexpr int kMaxFdsToMark = 1 << 16;

// Closes a descriptor on scope exit.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

// Moves `fd` to a number above stderr. The child dup2()s its descriptors
// onto 0, 1 and 2; were one of them already there (an agent started with a
// closed stdio), dup2 would be a no-op that leaves FD_CLOEXEC set, or one
// dup2 would overwrite the other's source.
int AboveStdio(int fd) {
  if (fd < 0 || fd > STDERR_FILENO) return fd;
  const int moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  const int saved_errno = errno;
  close(fd);
  errno = saved_errno;
  return moved;
}

bool IsEntryFor(const char* entry, const char* name) {
  const size_t n = std::strlen(name);
  return std::strncmp(entry, name, n) == 0 && entry[n] == '=';
}

// write() the whole buffer, for the child after fork: no allocation, no
// locks.
void WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

// What the child does between fork and exec, prepared by the parent: after
// fork it may not allocate.
struct ChildPlan {
  pid_t parent;
  int devnull_fd;
  int log_fd;
  // Write end of the bwrap startup pipe, above kBwrapStartedFd; -1 when
  // unsandboxed.
  int bwrap_fd;
  // Descriptors from 3 below this are marked close-on-exec where
  // close_range is missing.
  int fd_limit;
  bool switch_user;
  uid_t uid;
  gid_t gid;
  const char* program;
  char* const* argv;
  char* const* envp;
  const std::string* switch_error_prefix;
  const std::string* exec_error_prefix;
};

[[noreturn]] void ExitWithError(const std::string& prefix, int err) {
  WriteAll(STDERR_FILENO, prefix.data(), prefix.size());
  // strerrordesc_np reads a static table: unlike strerror, it neither
  // allocates nor consults the locale.
  const char* desc = strerrordesc_np(err);
  if (desc == nullptr) desc = "unknown error";
  WriteAll(STDERR_FILENO, desc, std::strlen(desc));
  WriteAll(STDERR_FILENO, "\n", 1);
  _exit(127);
}

// Runs in the child between fork and exec. The agent is multithreaded, so
// only async-signal-safe calls are allowed here: everything it needs was
// prepared by the parent.
[[noreturn]] void RunChild(const ChildPlan& plan) {
  setpgid(0, 0);
  // Ignored dispositions and the signal mask survive exec; the agent may
  // ignore or block signals the workload needs to react to.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    sigaction(sig, &dfl, nullptr);  // Fails for SIGKILL, SIGSTOP: harmless.
  }
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);

  if (dup2(plan.devnull_fd, STDIN_FILENO) < 0 ||
      dup2(plan.log_fd, STDOUT_FILENO) < 0 ||
      dup2(plan.log_fd, STDERR_FILENO) < 0) {
    _exit(127);
  }
  // Whatever the agent opened without O_CLOEXEC (a spool, a token file)
  // must not reach the workload: bwrap passes inherited descriptors on.
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < plan.fd_limit; ++fd) {
      fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  if (plan.bwrap_fd >= 0 &&
      (dup2(plan.bwrap_fd, internal::kBwrapInfoFd) < 0 ||
       dup2(plan.bwrap_fd, internal::kBwrapStartedFd) < 0)) {
    _exit(127);
  }
  if (plan.switch_user) {
    // Groups first: once the uid is not 0 they can no longer be changed.
    if (setgroups(1, &plan.gid) != 0 ||
        setresgid(plan.gid, plan.gid, plan.gid) != 0 ||
        setresuid(plan.uid, plan.uid, plan.uid) != 0) {
      ExitWithError(*plan.switch_error_prefix, errno);
    }
  }
  // The death signal is armed only now, as changing credentials clears it;
  // if the agent died before this point we were already reparented and
  // must not run unsupervised. Note that it fires when the forking *thread*
  // exits, so Start must be called from a thread that lives as long as the
  // agent.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != plan.parent) {
    _exit(1);
  }
  execvpe(plan.program, plan.argv, plan.envp);
  ExitWithError(*plan.exec_error_prefix, errno);
}

// The program, arguments and environment the child execs, owned here for
// the child to point into.
struct ChildExec {
  std::vector<std::string> args;
  std::vector<std::string> env;  // Entries of our own, "NAME=value".
  std::vector<char*> argv;
  std::vector<char*> envp;
};

// Unsandboxed: the command, with the agent's environment and the GPU
// variables replaced. Sandboxed: bwrap's command line, and an empty
// environment for bwrap itself: the workload's is on the command line, and
// nothing of the agent's reaches it.
void BuildExec(const WorkloadSpec& spec, const std::string& bwrap_path,
               ChildExec& exec) {
  const std::vector<std::pair<std::string, std::string>> workload_env = {
      {kCudaVisibleDevices, absl::StrJoin(spec.gpu_indices, ",")},
      {kAllocationIdVar, spec.allocation_id}};
  if (spec.sandbox.has_value()) {
    exec.args =
        internal::BwrapArgv(bwrap_path, *spec.sandbox, workload_env, spec.argv);
  } else {
    exec.args = spec.argv;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      if (IsEntryFor(*e, kCudaVisibleDevices) ||
          IsEntryFor(*e, kAllocationIdVar)) {
        continue;
      }
      exec.envp.push_back(*e);
    }
    for (const auto& [name, value] : workload_env) {
      exec.env.push_back(absl::StrCat(name, "=", value));
    }
  }
  for (std::string& entry : exec.env) exec.envp.push_back(entry.data());
  exec.envp.push_back(nullptr);
  for (std::string& arg : exec.args) exec.argv.push_back(arg.data());
  exec.argv.push_back(nullptr);
}

// Where close_range is missing, the child marks descriptors below this
// close-on-exec one by one.
int FdLimit() {
  struct rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) return kMaxFdsToMark;
  return static_cast<int>(std::min<rlim_t>(files.rlim_cur, kMaxFdsToMark));
}

// The pipe bwrap reports its startup on: the read end non-blocking for
// BwrapStartup, the write end above the descriptors the child sets up.
absl::StatusOr<std::unique_ptr<internal::BwrapStartup>> MakeBwrapPipe(
    int* write_fd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(
        absl::StrCat("bwrap startup pipe: ", std::strerror(errno)));
  }
  auto startup = std::make_unique<internal::BwrapStartup>(fds[0]);
  // Only the read end is non-blocking: pipe2 sets it on both.
  const int moved =
      fcntl(fds[1], F_DUPFD_CLOEXEC, internal::kBwrapStartedFd + 1);
  const int saved_errno = errno;
  close(fds[1]);
  if (moved < 0) {
    return absl::InternalError(
        absl::StrCat("bwrap startup pipe: ", std::strerror(saved_errno)));
  }
  fcntl(moved, F_SETFL, fcntl(moved, F_GETFL) & ~O_NONBLOCK);
  *write_fd = moved;
  return startup;
}

absl::Status CheckSandbox(const SandboxSpec& sandbox) {
  if (sandbox.uid == 0 || sandbox.gid == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sandbox: must not run as root, got uid ", sandbox.uid,
                     " gid ", sandbox.gid));
  }
  if (!absl::StartsWith(sandbox.work_dir, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("sandbox work_dir: must be an absolute path, got \"",
                     sandbox.work_dir, "\""));
  }
  const uid_t self = geteuid();
  if (self != 0 && self != sandbox.uid) {
    return absl::FailedPreconditionError(absl::StrCat(
        "process.run_as_user: the agent runs as uid ", self,
        " and cannot switch to uid ", sandbox.uid, "; run it as root"));
  }
  return absl::OkStatus();
}


}  // namespace

absl::StatusOr<std::unique_ptr<Workload>> Workload::Start(
    const WorkloadSpec& spec) {
  if (spec.argv.empty()) {
    return absl::InvalidArgumentError("workload_command: must not be empty");
  }
  std::string bwrap_path;
  if (spec.sandbox.has_value()) {
    RETURN_IF_ERROR(CheckSandbox(*spec.sandbox));
    ASSIGN_OR_RETURN(bwrap_path,
                     internal::FindExecutable(spec.sandbox->bwrap_path,
                                              "process.bwrap_path"));
  }

  const int log_fd = AboveStdio(open(
      spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat(
        "log_path ", spec.log_path, ": cannot open: ", std::strerror(errno)));
  }
  FdCloser close_log(log_fd);
  const int devnull_fd = AboveStdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (devnull_fd < 0) {
    return absl::InternalError(
        absl::StrCat("/dev/null: cannot open: ", std::strerror(errno)));
  }
  FdCloser close_devnull(devnull_fd);

  // Everything the child needs is built here: after fork it may not
  // allocate.
  ChildExec exec;
  BuildExec(spec, bwrap_path, exec);
  ChildPlan plan{};
  plan.devnull_fd = devnull_fd;
  plan.log_fd = log_fd;
  plan.bwrap_fd = -1;
  plan.fd_limit = FdLimit();
  plan.program = exec.argv[0];
  plan.argv = exec.argv.data();
  plan.envp = exec.envp.data();
  std::unique_ptr<internal::BwrapStartup> bwrap;
  if (spec.sandbox.has_value()) {
    plan.switch_user = geteuid() != spec.sandbox->uid;
    plan.uid = spec.sandbox->uid;
    plan.gid = spec.sandbox->gid;
    ASSIGN_OR_RETURN(bwrap, MakeBwrapPipe(&plan.bwrap_fd));
  }
  FdCloser close_bwrap_fd(plan.bwrap_fd);

  const std::string exec_error_prefix =
      absl::StrCat("computevoucher: cannot execute ", exec.args[0], ": ");
  const std::string switch_error_prefix =
      absl::StrCat("computevoucher: cannot switch to uid ", plan.uid, " gid ",
                   plan.gid, ": ");
  plan.exec_error_prefix = &exec_error_prefix;
  plan.switch_error_prefix = &switch_error_prefix;

  plan.parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(
        absl::StrCat("workload_command ", spec.argv[0],
                     ": fork failed: ", std::strerror(errno)));
  }
  if (pid == 0) RunChild(plan);
  // Also done by the child; doing it here too means the group exists
  // before Start returns, so a RequestStop cannot miss it. Fails harmlessly
  // once the child has exec'd.
  setpgid(pid, pid);
  return std::unique_ptr<Workload>(new Workload(pid, std::move(bwrap)));
}

Workload::Workload(pid_t pid, std::unique_ptr<internal::BwrapStartup> bwrap)
    : pid_(pid), bwrap_(std::move(bwrap)) {}

Workload::~Workload() {
  if (exit_code_.has_value()) {
    // Poll already killed the group while the unreaped child still held its
    // id; the id may since belong to someone else.
    return;
  }
  KillAll();
  int status = 0;
  WaitPid(pid_, &status, 0);
}

void Workload::Terminate() {
  if (bwrap_ == nullptr) {
    kill(-pid_, SIGTERM);
    return;
  }
  // Not to the outer bwrap: it would die of it and take the sandbox with
  // it at once.
  const std::optional<pid_t> group = bwrap_->WorkloadGroup();
  term_pending_ = !group.has_value();
  if (group.has_value()) kill(-*group, SIGTERM);
}

void Workload::KillAll() {
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);  // In case it left its group.
  // Redundant with --die-with-parent once the sandbox's init has armed it.
  if (bwrap_ != nullptr) {
    if (const std::optional<pid_t> group = bwrap_->WorkloadGroup()) {
      kill(-*group, SIGKILL);
    }
  }
}

std::optional<int> Workload::Poll() {
  if (exit_code_.has_value()) return exit_code_;
  // Look without reaping first: while the child is an unreaped zombie its
  // pid, and so its process group id, cannot be reused, so leftover
  // members of the group (a `cmd &` that outlived the main process) can be
  // killed without risk of hitting an unrelated group. A sandbox dies with
  // its outer bwrap (--die-with-parent).
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  int r;
  do {
    r = waitid(P_PID, static_cast<id_t>(pid_), &info,
               WEXITED | WNOHANG | WNOWAIT);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    // ECHILD: someone else reaped it (e.g. SIGCHLD set to SIG_IGN); the
    // exit status is lost.
    exit_code_ = -1;
    return exit_code_;
  }
  if (info.si_pid == 0) {  // Still running.
    if (term_pending_) Terminate();
    return std::nullopt;
  }

  kill(-pid_, SIGKILL);  // ESRCH when nothing is left: fine.
  int status = 0;
  if (WaitPid(pid_, &status, 0) == pid_) {
    exit_code_ = ExitCodeFromStatus(status);
  } else {
    exit_code_ = -1;
  }
  return exit_code_;
}

void Workload::RequestStop(absl::Time now, absl::Duration grace) {
  if (stop_requested_at_.has_value()) return;
  stop_requested_at_ = now;
  grace_ = grace;
  if (!exit_code_.has_value()) Terminate();
}

std::optional<int> Workload::Poll(absl::Time now) {
  std::optional<int> code = Poll();
  if (code.has_value()) return code;
  if (stop_requested_at_.has_value() && !killed_ &&
      now >= *stop_requested_at_ + grace_) {
    KillAll();
    killed_ = true;
  }
  return std::nullopt;
}

}  // namespace computevoucher::agent
