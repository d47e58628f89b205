// The engine's log: one line to stderr, as "voucher-scheduler: <line>",
// flushed at once so that it reaches the journal or a log file even if the
// process is killed next.
#ifndef COMPUTEVOUCHER_SCHEDULER_ENGINE_LOG_H_
#define COMPUTEVOUCHER_SCHEDULER_ENGINE_LOG_H_

#include "absl/strings/string_view.h"

namespace computevoucher::engine {

void Log(absl::string_view line);

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_SCHEDULER_ENGINE_LOG_H_
