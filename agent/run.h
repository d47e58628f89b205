// voucher-agent as a whole: what main() calls once the flags are read.
#ifndef COMPUTEVOUCHER_AGENT_RUN_H_
#define COMPUTEVOUCHER_AGENT_RUN_H_

#include <cstdint>

#include "computevoucher/v1/config.pb.h"

namespace computevoucher::agent {

namespace pb = ::computevoucher::v1;

// Settings of the simulated telemetry that have no place in AgentConfig
// (they describe a pretend cluster, not a real one).
struct SimulatedTelemetry {
  int32_t utilization_bp = 9000;
  int64_t watts = 700;
};

// Normalizes `config`, reads the token, builds the telemetry source, the
// runtime (discovering a Slurm partition's GPUs), the spool, the stubs and
// /metrics, and runs the agent until SIGTERM or SIGINT. Returns the process
// exit code: 0 after a clean stop, 2 for a configuration that cannot work
// (the message, naming the setting, is on stderr).
int RunAgent(pb::AgentConfig config, const SimulatedTelemetry& simulated);

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_RUN_H_
