// `voucher-scheduler verify`: re-derives every balance of a data directory
// from its journal and reports broken invariants.
#ifndef COMPUTEVOUCHER_SCHEDULER_VERIFY_COMMAND_H_
#define COMPUTEVOUCHER_SCHEDULER_VERIFY_COMMAND_H_

#include <ostream>
#include <string>

namespace cv::scheduler {

// Opens `data_dir` read-only (a running scheduler may keep writing),
// replays it and prints a report to `out`. Returns the exit code: 0 when
// every invariant holds, 1 when one is broken, 2 when the store cannot be
// read.
int RunVerify(const std::string& data_dir, std::ostream& out);

}  // namespace cv::scheduler

#endif  // COMPUTEVOUCHER_SCHEDULER_VERIFY_COMMAND_H_
