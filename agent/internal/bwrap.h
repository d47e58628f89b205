// How agent/workload.cc drives bubblewrap (0.8 or later): the command line
// of a sandbox (agent/sandbox.h says what it contains) and what bwrap
// reports back while it starts. For agent/ only.
//
// Signals and the sandbox: bwrap's outer process stays in the workload's
// process group and does not forward signals; with --new-session the
// sandbox's init (bwrap's pid 1) and the workload are in a session and
// process group of their own, whose id is the init's pid as the host sees
// it. bwrap writes that pid to kBwrapInfoFd (--info-fd) and closes it; the
// shell that bwrap starts closes kBwrapStartedFd just before exec'ing the
// command; so once the pipe's last write end is closed the workload runs in
// that group, and SIGTERM goes to it. SIGKILL goes to the outer bwrap,
// whose death takes the sandbox's init (--die-with-parent), and so the
// whole pid namespace, with it.
#ifndef COMPUTEVOUCHER_AGENT_INTERNAL_BWRAP_H_
#define COMPUTEVOUCHER_AGENT_INTERNAL_BWRAP_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/sandbox.h"

namespace computevoucher::agent::internal {

// The descriptors bwrap gets from the child: both are write ends of the
// pipe BwrapStartup reads.
inline constexpr int kBwrapInfoFd = 3;
inline constexpr int kBwrapStartedFd = 4;

// PATH inside the sandbox.
inline constexpr char kSandboxPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The path of executable `name`: `name` itself when it has a '/', else the
// first match in $PATH's absolute directories. FailedPrecondition naming
// `field` and `name` when there is none.
absl::StatusOr<std::string> FindExecutable(const std::string& name,
                                           absl::string_view field);

// The full command line that runs `command` in `sandbox` with exactly the
// environment `env` plus HOME (the working directory) and PATH
// (kSandboxPath). `bwrap` is bwrap's absolute path. Looks at the host's
// root directory to mirror its system directories.
std::vector<std::string> BwrapArgv(
    const std::string& bwrap, const SandboxSpec& sandbox,
    const std::vector<std::pair<std::string, std::string>>& env,
    const std::vector<std::string>& command);

// Reads, without blocking, what bwrap writes to the pipe of kBwrapInfoFd
// and kBwrapStartedFd. Owns the pipe's read end. Thread-compatible.
class BwrapStartup {
 public:
  // `read_fd` must be non-blocking.
  explicit BwrapStartup(int read_fd) : fd_(read_fd) {}
  ~BwrapStartup();
  BwrapStartup(const BwrapStartup&) = delete;
  BwrapStartup& operator=(const BwrapStartup&) = delete;

  // The process group of the sandboxed workload once it runs; nullopt
  // while bwrap is still setting up, and for good when bwrap failed before
  // starting it.
  std::optional<pid_t> WorkloadGroup();

 private:
  int fd_;
  std::string info_;
  std::optional<pid_t> group_;
};

}  // namespace computevoucher::agent::internal

#endif  // COMPUTEVOUCHER_AGENT_INTERNAL_BWRAP_H_
