// `voucher-scheduler archive`: moves the oldest part of the log out of the
// store into files (engine/archive.h).
#ifndef COMPUTEVOUCHER_SCHEDULER_ARCHIVE_COMMAND_H_
#define COMPUTEVOUCHER_SCHEDULER_ARCHIVE_COMMAND_H_

#include <ostream>
#include <string>

#include "computevoucher/v1/config.pb.h"

namespace computevoucher::scheduler {

// Opens the store `config` names for writing (no scheduler may be running
// on it), archives the commands applied before the Asia/Shanghai date
// `before` ("YYYY-MM-DD") into a new directory under `to`, and prints what
// it did to `out`. Returns the exit code: 0 when archived or when there was
// nothing to archive, 2 on bad arguments or when the store cannot be
// archived (the message says why).
int RunArchive(const computevoucher::v1::SchedulerConfig& config,
               const std::string& before, const std::string& to,
               std::ostream& out);

}  // namespace computevoucher::scheduler

#endif  // COMPUTEVOUCHER_SCHEDULER_ARCHIVE_COMMAND_H_
