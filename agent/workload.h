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

namespace cv::agent {

struct WorkloadSpec {
  std::string allocation_id;
  // Program and arguments; argv[0] is looked up in PATH.
  std::vector<std::string> argv;
  std::vector<int> gpu_indices;
  // File receiving stdout and stderr (created, mode 0640, appended to).
  std::string log_path;
};

class Workload {
 public:
  // Forks and execs. Errors: InvalidArgument for an empty argv; Internal
  // when the log file cannot be opened or fork fails. A program that cannot
  // be executed exits with code 127 (as a shell does), seen by Poll.
  static absl::StatusOr<std::unique_ptr<Workload>> Start(
      const WorkloadSpec& spec);

  // Kills the process group with SIGKILL and reaps the child if it still
  // runs.
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  // Reaps without blocking. The exit code once the child has exited: its
  // exit status, or 128 + the signal that ended it; nullopt while it runs.
  std::optional<int> Poll();

  // Starts stopping: SIGTERM to the process group at `now`; Poll(now) sends
  // SIGKILL to the group once `grace` has passed. Repeated calls do not
  // restart the grace period.
  void RequestStop(absl::Time now, absl::Duration grace);

  // Like Poll(), and sends SIGKILL when a requested stop's grace period has
  // passed at `now`.
  std::optional<int> Poll(absl::Time now);

  // Whether a stop was requested.
  bool stopping() const { return stop_requested_at_.has_value(); }

  pid_t pid() const { return pid_; }

 private:
  explicit Workload(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::optional<int> exit_code_;
  std::optional<absl::Time> stop_requested_at_;
  absl::Duration grace_;
  bool killed_ = false;
};

}  // namespace cv::agent

#endif  // COMPUTEVOUCHER_AGENT_WORKLOAD_H_
