// Reports over the journal as stored: its pages, and its verification by
// replaying the command log from the start.
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_JOURNAL_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_JOURNAL_H_

#include "absl/status/statusor.h"
#include "computevoucher/v1/admin.pb.h"
#include "scheduler/store/archived_history.h"
#include "scheduler/store/command_log.h"
#include "scheduler/store/retired.h"
#include "scheduler/store/usage_index.h"

namespace computevoucher::reports {

namespace pb = ::computevoucher::v1;

// The page of journal entries `request` asks for (from a sequence, of one
// voucher or allocation), scanning the log in chunks until it is full.
absl::StatusOr<pb::ListJournalResponse> JournalPage(
    store::CommandLog& log, const pb::ListJournalRequest& request);

// Replays every stored command into a fresh state machine and checks the
// journal it posts against the stored one, entry by entry and hash by
// hash, the usage records it accepts and the allocations it retires
// against the stored ones, and the state's invariants: everything
// re-derived from what is on disk, nothing from memory. `log`, `usage`,
// `retired` and `archived` are the same store's. Once the oldest history
// was archived (`archived` has a horizon), the check starts from the oldest
// stored snapshot instead, checking the journal from there (the archive's
// files are checked by `voucher-scheduler verify --archive`).
absl::StatusOr<pb::VerifyJournalResponse> VerifyJournal(
    store::CommandLog& log, store::UsageIndex& usage,
    store::RetiredRecords& retired, store::ArchivedHistory* archived);

}  // namespace computevoucher::reports

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_JOURNAL_H_
