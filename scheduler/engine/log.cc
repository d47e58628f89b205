#include "scheduler/engine/log.h"

#include "common/log.h"

namespace computevoucher::engine {

void Log(absl::string_view line) { LogLine("voucher-scheduler", line); }

}  // namespace computevoucher::engine
