// What the Slurm runtime reads from and writes to Slurm's client commands
// (22.05), as plain functions so that they are tested without a cluster.
// The runtime runs the commands with SLURM_TIME_FORMAT=%s, so every time
// is Unix seconds ("N/A", "Unknown" or "0" where Slurm has none).
#ifndef COMPUTEVOUCHER_AGENT_INTERNAL_SLURM_TEXT_H_
#define COMPUTEVOUCHER_AGENT_INTERNAL_SLURM_TEXT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace computevoucher::agent::slurm {

// Job names the agent gives its holding jobs: "cv-" + the allocation id.
inline constexpr char kJobPrefix[] = "cv-";

// squeue's output format for jobs, and one job as read from it.
inline constexpr char kJobFormat[] = "%i|%T|%S|%e|%u|%a|%r|%j";
struct Job {
  int64_t id = 0;
  std::string state;  // "PENDING", "RUNNING", "CANCELLED", ...
  std::optional<absl::Time> start;
  std::optional<absl::Time> end;
  std::string user;
  std::string account;
  std::string reason;
  std::string name;
};

// squeue's output format for steps, and one step.
inline constexpr char kStepFormat[] = "%i|%M|%j";
struct Step {
  int64_t job_id = 0;
  // "0", "1", ... for the tenant's steps; "batch", "extern" for Slurm's.
  std::string step;
  absl::Duration elapsed;
  std::string name;
};

// sinfo's -O format for nodes, and one node.
inline constexpr char kNodeFormat[] =
    "NodeList:256|,Gres:512|,GresUsed:512|,StateLong:64|";
struct Node {
  std::string name;
  // GPUs per gres type ("" for untyped "gpu:4").
  std::map<std::string, int> gpus;
  std::map<std::string, int> gpus_used;
  std::string state;  // "idle", "mixed", "allocated", "down*", "drained", ...
};

// Parses squeue's lines in kJobFormat; a line that does not parse is an
// error naming it (Slurm's output changed, or a foreign format).
absl::StatusOr<std::vector<Job>> ParseJobs(absl::string_view text);
absl::StatusOr<std::vector<Step>> ParseSteps(absl::string_view text);
absl::StatusOr<std::vector<Node>> ParseNodes(absl::string_view text);

// "gpu:h100:4(S:0-1),gpu:a100:2,license:1" → {h100: 4, a100: 2}: GPUs per
// type, other GRES ignored. "(null)" and "" are none. A count that is not
// a number, is negative, or makes a type's total exceed 1,000,000 is an
// error.
absl::StatusOr<std::map<std::string, int>> ParseGpuGres(absl::string_view gres);

// Elapsed time as squeue prints it: [days-][hours:]minutes:seconds.
absl::StatusOr<absl::Duration> ParseElapsed(absl::string_view text);

// A job that will not run again: COMPLETED, CANCELLED, FAILED, TIMEOUT,
// NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE, OUT_OF_MEMORY.
bool IsTerminal(absl::string_view state);

// A node whose GPUs can be given: not down, drained, draining, failing or
// not responding.
bool IsUsable(absl::string_view state);

// The exit code in `scontrol show job -o` output ("ExitCode=2:0" → 2,
// "ExitCode=0:9" → 137); nullopt when absent.
std::optional<int> ParseExitCode(absl::string_view scontrol_line);

// Minutes for --time / TimeLimit so that a job started at `from` runs past
// `deadline` (the agent stops it there itself): at least 1, rounded up,
// plus one minute of margin.
int64_t TimeLimitMinutes(absl::Time from, absl::Time deadline);

// `argv` as one POSIX shell command line, each argument single-quoted.
std::string ShellQuote(const std::vector<std::string>& argv);

}  // namespace computevoucher::agent::slurm

#endif  // COMPUTEVOUCHER_AGENT_INTERNAL_SLURM_TEXT_H_
