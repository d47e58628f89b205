#include "agent/internal/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/internal/wait.h"

extern char** environ;

namespace computevoucher::agent {
namespace {

// The agent's environment with `extra` laid over it.
std::vector<std::string> MergedEnvironment(
    const std::vector<std::string>& extra) {
  std::map<std::string, std::string> vars;
  auto add = [&vars](const std::string& entry) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) return;
    vars[entry.substr(0, eq)] = entry;
  };
  for (char** e = environ; *e != nullptr; ++e) add(*e);
  for (const std::string& e : extra) add(e);
  std::vector<std::string> merged;
  for (auto& [name, entry] : vars) merged.push_back(std::move(entry));
  return merged;
}

class SystemRunner final : public CommandRunner {
 public:
  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env,
                                    absl::Duration timeout) override {
    if (argv.empty()) {
      return absl::InvalidArgumentError("command: must not be empty");
    }
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
      return absl::UnavailableError(
          absl::StrCat(argv[0], ": pipe: ", std::strerror(errno)));
    }
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
      close(out_pipe[0]);
      close(out_pipe[1]);
      return absl::UnavailableError(
          absl::StrCat(argv[0], ": pipe: ", std::strerror(errno)));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Own process group, so the deadline can kill whatever it started;
    // default signal handling and mask whatever the agent blocks.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                   POSIX_SPAWN_SETSIGMASK);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const std::vector<std::string> merged = MergedEnvironment(env);
    std::vector<char*> envp;
    for (const std::string& e : merged) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_t pid = -1;
    const int spawned = posix_spawnp(&pid, args[0], &actions, &attr,
                                     args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (spawned != 0) {
      close(out_pipe[0]);
      close(err_pipe[0]);
      return absl::UnavailableError(absl::StrCat(
          argv[0], ": cannot run: ", std::strerror(spawned)));
    }

    CommandResult result;
    const absl::Time deadline = absl::Now() + timeout;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_fds = 2;
    bool timed_out = false;
    char buffer[65536];
    while (open_fds > 0) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        timed_out = true;
        break;
      }
      const int ready = poll(
          fds, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno != EINTR) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
          continue;
        }
        const size_t room = kMaxCommandOutput - std::min(kMaxCommandOutput,
                                                         sinks[i]->size());
        sinks[i]->append(buffer, std::min(room, static_cast<size_t>(n)));
      }
    }
    for (pollfd& p : fds) {
      if (p.fd >= 0) close(p.fd);
    }
    if (timed_out) kill(-pid, SIGKILL);
    int status = 0;
    // Output closed: the command is exiting; a grandchild that kept the
    // pipes open was killed with the group above or finishes on its own.
    while (true) {
      const pid_t r = WaitPid(pid, &status, timed_out ? 0 : WNOHANG);
      if (r == pid || r < 0) break;
      if (absl::Now() >= deadline) {
        timed_out = true;
        kill(-pid, SIGKILL);
        continue;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    if (timed_out) {
      return absl::UnavailableError(
          absl::StrCat(argv[0], ": no answer within ",
                       absl::FormatDuration(timeout), "; killed"));
    }
    result.exit_code = ExitCodeFromStatus(status);
    return result;
  }
};

}  // namespace

CommandRunner& SystemCommandRunner() {
  static SystemRunner* runner = new SystemRunner();
  return *runner;
}

}  // namespace computevoucher::agent
