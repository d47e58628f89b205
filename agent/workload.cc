#include "agent/workload.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace cv::agent {
namespace {

constexpr char kCudaVisibleDevices[] = "CUDA_VISIBLE_DEVICES";
constexpr char kAllocationIdVar[] = "COMPUTEVOUCHER_ALLOCATION_ID";

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

// Runs in the child between fork and exec. The agent is multithreaded, so
// only async-signal-safe calls are allowed here: everything it needs was
// prepared by the parent.
[[noreturn]] void RunChild(pid_t parent, int devnull_fd, int log_fd,
                           char* const* argv, char* const* envp,
                           const std::string& exec_error_prefix) {
  setpgid(0, 0);
  // The death signal is armed only now; if the agent died before this
  // point we were already reparented and must not run unsupervised. Note
  // that it fires when the forking *thread* exits, so Start must be called
  // from a thread that lives as long as the agent.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
    _exit(1);
  }
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

  if (dup2(devnull_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
      dup2(log_fd, STDERR_FILENO) < 0) {
    _exit(127);
  }
  execvpe(argv[0], argv, envp);

  const int err = errno;
  WriteAll(STDERR_FILENO, exec_error_prefix.data(), exec_error_prefix.size());
  // strerrordesc_np reads a static table: unlike strerror, it neither
  // allocates nor consults the locale.
  const char* desc = strerrordesc_np(err);
  if (desc == nullptr) desc = "unknown error";
  WriteAll(STDERR_FILENO, desc, std::strlen(desc));
  WriteAll(STDERR_FILENO, "\n", 1);
  _exit(127);
}

// waitpid() that retries on EINTR.
pid_t WaitPid(pid_t pid, int* status, int options) {
  pid_t r;
  do {
    r = waitpid(pid, status, options);
  } while (r < 0 && errno == EINTR);
  return r;
}

int ExitCodeFromStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 128;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Workload>> Workload::Start(
    const WorkloadSpec& spec) {
  if (spec.argv.empty()) {
    return absl::InvalidArgumentError("workload_command: must not be empty");
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
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  std::vector<std::string> added = {
      absl::StrCat(kCudaVisibleDevices, "=",
                   absl::StrJoin(spec.gpu_indices, ",")),
      absl::StrCat(kAllocationIdVar, "=", spec.allocation_id)};
  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (IsEntryFor(*e, kCudaVisibleDevices) ||
        IsEntryFor(*e, kAllocationIdVar)) {
      continue;
    }
    envp.push_back(*e);
  }
  for (std::string& entry : added) envp.push_back(entry.data());
  envp.push_back(nullptr);

  const std::string exec_error_prefix =
      absl::StrCat("computevoucher: cannot execute ", spec.argv[0], ": ");

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(
        absl::StrCat("workload_command ", spec.argv[0],
                     ": fork failed: ", std::strerror(errno)));
  }
  if (pid == 0) {
    RunChild(parent, devnull_fd, log_fd, argv.data(), envp.data(),
             exec_error_prefix);
  }
  // Also done by the child; doing it here too means the group exists
  // before Start returns, so a RequestStop cannot miss it. Fails harmlessly
  // once the child has exec'd.
  setpgid(pid, pid);
  return std::unique_ptr<Workload>(new Workload(pid));
}

Workload::~Workload() {
  if (exit_code_.has_value()) {
    // Poll already killed the group while the unreaped child still held its
    // id; the id may since belong to someone else.
    return;
  }
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);  // In case it left its group.
  int status = 0;
  WaitPid(pid_, &status, 0);
}

std::optional<int> Workload::Poll() {
  if (exit_code_.has_value()) return exit_code_;
  // Look without reaping first: while the child is an unreaped zombie its
  // pid, and so its process group id, cannot be reused, so leftover
  // members of the group (a `cmd &` that outlived the main process) can be
  // killed without risk of hitting an unrelated group.
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
  if (info.si_pid == 0) return std::nullopt;  // Still running.

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
  if (!exit_code_.has_value()) kill(-pid_, SIGTERM);
}

std::optional<int> Workload::Poll(absl::Time now) {
  std::optional<int> code = Poll();
  if (code.has_value()) return code;
  if (stop_requested_at_.has_value() && !killed_ &&
      now >= *stop_requested_at_ + grace_) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    killed_ = true;
  }
  return std::nullopt;
}

}  // namespace cv::agent
