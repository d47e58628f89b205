// The `process` runtime: an allocation's workload command runs as a child
// process on the allocation's GPUs (agent/workload.h), sandboxed as
// configured in ProcessRuntimeConfig; an allocation without a command is a
// reservation. The workload ending by itself ends the allocation with its
// exit code; a command that cannot start ends it with 127.
#ifndef COMPUTEVOUCHER_AGENT_PROCESS_RUNTIME_H_
#define COMPUTEVOUCHER_AGENT_PROCESS_RUNTIME_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/runtime.h"
#include "computevoucher/v1/config.pb.h"

namespace computevoucher::agent {

// Workload output goes to `log_dir`/<allocation_id>.log; working
// directories under `config.work_root`, or `default_work_root` when unset.
// Errors as ResolveProcessSettings (agent/sandbox.h): a setting that cannot
// work (e.g. an unknown or root run_as_user, a missing bwrap).
absl::StatusOr<std::unique_ptr<Runtime>> NewProcessRuntime(
    const pb::ProcessRuntimeConfig& config, std::string log_dir,
    std::string default_work_root, std::string access_template);

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_PROCESS_RUNTIME_H_
