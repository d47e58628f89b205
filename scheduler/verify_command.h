// `voucher-scheduler verify`: re-derives every balance of a store from its
// journal and reports broken invariants.
#ifndef COMPUTEVOUCHER_SCHEDULER_VERIFY_COMMAND_H_
#define COMPUTEVOUCHER_SCHEDULER_VERIFY_COMMAND_H_

#include <ostream>
#include <string>

#include "computevoucher/v1/config.pb.h"

namespace computevoucher::scheduler {

// Opens the store `config` names (`store`, else the embedded store in
// `data_dir`) read-only (a running scheduler may keep writing), replays it
// and prints a report to `out`. A store whose oldest history was archived
// is replayed from its archives in `archive_dir` (required then), checking
// each part's hash and each manifest's anchor in the journal. Returns the
// exit code: 0 when every invariant holds, 1 when one is broken, 2 when
// the store or the archives cannot be read.
int RunVerify(const computevoucher::v1::SchedulerConfig& config,
              const std::string& archive_dir, std::ostream& out);

}  // namespace computevoucher::scheduler

#endif  // COMPUTEVOUCHER_SCHEDULER_VERIFY_COMMAND_H_
