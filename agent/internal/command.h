// Runs an external command (Slurm's client commands) with a time limit and
// captures what it prints.
//
// Slurm's clients hang while slurmctld is down; every call the agent makes
// must come back within its limit whatever the other side does, so the
// child runs in its own process group and the whole group is killed at the
// deadline.
//
// Thread-safe (posix_spawn; no state).
#ifndef COMPUTEVOUCHER_AGENT_INTERNAL_COMMAND_H_
#define COMPUTEVOUCHER_AGENT_INTERNAL_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace computevoucher::agent {

struct CommandResult {
  // Exit status, or 128 + the signal that ended it.
  int exit_code = 0;
  // What it printed, each cut at kMaxCommandOutput bytes.
  std::string out;
  std::string err;
};

// Most bytes kept of a command's stdout and of its stderr.
inline constexpr size_t kMaxCommandOutput = size_t{8} << 20;

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Runs argv (argv[0] looked up in PATH when it has no '/') with the
  // agent's environment plus `env` ("NAME=value", overriding), stdin from
  // /dev/null. Errors: InvalidArgument for an empty argv; Unavailable
  // naming the command when it cannot be started or runs past `timeout`
  // (then it is killed). A command that exits non-zero is not an error
  // here: the caller reads exit_code.
  virtual absl::StatusOr<CommandResult> Run(
      const std::vector<std::string>& argv, const std::vector<std::string>& env,
      absl::Duration timeout) = 0;
};

// The real thing.
CommandRunner& SystemCommandRunner();

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_INTERNAL_COMMAND_H_
