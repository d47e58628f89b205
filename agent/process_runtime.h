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

namespace cv::agent {

// `config` is normalized (NormalizeAgentConfig); workload output goes to
// `log_dir`/<allocation_id>.log. InvalidArgument names a setting that
// cannot work (e.g. an unknown run_as_user).
absl::StatusOr<std::unique_ptr<Runtime>> NewProcessRuntime(
    const pb::ProcessRuntimeConfig& config, std::string log_dir,
    std::string access_template);

}  // namespace cv::agent

#endif  // COMPUTEVOUCHER_AGENT_PROCESS_RUNTIME_H_
