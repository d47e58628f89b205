// A workload process of the `exec` meter: an allocation's command, run as a
// child process on the allocation's GPUs.
//
// The child runs in its own process group, with CUDA_VISIBLE_DEVICES set to
// the allocation's GPU indices (comma-separated) and
// COMPUTEVOUCHER_ALLOCATION_ID to its id, stdin from /dev/null, and stdout
// and stderr appended to a log file. It gets SIGKILL if the agent dies
// (PR_SET_PDEATHSIG), so a restarted agent never finds orphans it does not
// know; the scheduler still wants the allocation and the agent starts it
// again.
//
// With a sandbox (agent/sandbox.h) the child drops to the sandbox's user
// (supplementary groups, gid, then uid, when the agent runs as root) and
// execs bubblewrap, which runs the command in the sandbox with exactly
// CUDA_VISIBLE_DEVICES, COMPUTEVOUCHER_ALLOCATION_ID, HOME (the working
// directory) and PATH in its environment; without, it runs as the agent's
// own user and inherits the agent's environment. The log file is opened by
// the agent either way, and descriptors the agent leaves open without
// FD_CLOEXEC are not inherited.
//
// Thread-compatible.
#ifndef COMPUTEVOUCHER_AGENT_WORKLOAD_H_
#define COMPUTEVOUCHER_AGENT_WORKLOAD_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/sandbox.h"

namespace computevoucher::agent {

struct WorkloadSpec {
  std::string allocation_id;
  // Program and arguments; argv[0] is looked up in PATH.
  std::vector<std::string> argv;
  std::vector<int> gpu_indices;
  // File receiving stdout and stderr (created, mode 0640, appended to).
  std::string log_path;
  // nullopt: unsandboxed, as the agent's own user.
  std::optional<SandboxSpec> sandbox;
};

namespace internal {
class BwrapStartup;
}  // namespace internal

class Workload {
 public:
  // Forks and execs. Errors: InvalidArgument for an empty argv, a sandbox
  // uid 0 or a relative working directory; FailedPrecondition when the
  // sandbox's bwrap cannot be found, or the agent (neither root nor the
  // sandbox's user) cannot switch to its user; Internal when the log file
  // cannot be opened or fork fails. A program that cannot be executed exits
  // with code 127 (as a shell does; in a sandbox, 126 when it is found but
  // not executable), seen by Poll; bwrap failing to set the sandbox up
  // exits 1 and says why in the log.
  static absl::StatusOr<std::unique_ptr<Workload>> Start(
      const WorkloadSpec& spec);

  // Kills the process group (and the sandbox) with SIGKILL and reaps the
  // child if it still runs.
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  // Reaps without blocking. The exit code once the child has exited: its
  // exit status, or 128 + the signal that ended it (the same through
  // bwrap); nullopt while it runs. Whatever of the workload outlives its
  // main process is then killed.
  std::optional<int> Poll();

  // Starts stopping: SIGTERM to the process group at `now`; Poll(now) sends
  // SIGKILL to the group once `grace` has passed. Repeated calls do not
  // restart the grace period. In a sandbox, SIGTERM goes to the workload's
  // process group inside it (processes that left that group get only the
  // SIGKILL, which reaches everything in the sandbox); while bwrap is still
  // setting up, SIGTERM waits for the workload to start, sent by Poll.
  void RequestStop(absl::Time now, absl::Duration grace);

  // Like Poll(), and sends SIGKILL when a requested stop's grace period has
  // passed at `now`.
  std::optional<int> Poll(absl::Time now);

  // Whether a stop was requested.
  bool stopping() const { return stop_requested_at_.has_value(); }

  // The child's pid; in a sandbox, the outer bwrap's (the workload has
  // another in the host's pid namespace, and 2 in its own).
  pid_t pid() const { return pid_; }

 private:
  Workload(pid_t pid, std::unique_ptr<internal::BwrapStartup> bwrap);
  // SIGTERM to the workload, or marks it pending while a sandbox starts.
  void Terminate();
  // SIGKILL to everything of the workload.
  void KillAll();

  pid_t pid_;
  // Sandboxed workloads only.
  std::unique_ptr<internal::BwrapStartup> bwrap_;
  bool term_pending_ = false;
  std::optional<int> exit_code_;
  std::optional<absl::Time> stop_requested_at_;
  absl::Duration grace_;
  bool killed_ = false;
};

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_WORKLOAD_H_
