// Reaping child processes: shared by the workloads (agent/workload.h) and
// Slurm's client commands (agent/internal/command.h).
#ifndef COMPUTEVOUCHER_AGENT_INTERNAL_WAIT_H_
#define COMPUTEVOUCHER_AGENT_INTERNAL_WAIT_H_

#include <sys/types.h>
#include <sys/wait.h>

#include <cerrno>

namespace computevoucher::agent {

// waitpid() that retries on EINTR.
inline pid_t WaitPid(pid_t pid, int* status, int options) {
  pid_t r;
  do {
    r = waitpid(pid, status, options);
  } while (r < 0 && errno == EINTR);
  return r;
}

// A wait status as a shell reports it: the exit status, or 128 + the
// signal that ended the process.
inline int ExitCodeFromStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 128;
}

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_INTERNAL_WAIT_H_
