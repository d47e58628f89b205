// The log's oldest part, archived (`voucher-scheduler archive`): the
// commands, entries and usage records up to a batch's end are written to
// files whose manifest is anchored in the journal, then dropped from the
// store in one transaction with what stays of them: where they ended (the
// horizon, from which the next batch's entries chain) and their usage
// summed per allocation and day, which statements and settlement read for
// archived periods.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_ARCHIVED_HISTORY_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_ARCHIVED_HISTORY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scheduler/store/usage_index.h"

namespace computevoucher::store {

// The end of a stored batch: its last command, journal entry and usage
// record, that entry's hash (empty before the first entry) and when that
// record was accepted.
struct BatchEnd {
  int64_t command = 0;
  int64_t entry = 0;
  int64_t usage = 0;
  std::string entry_hash;
  int64_t accepted_ns = 0;
};

// What dropping an archived range leaves: where it ended, what was asked
// (the commands applied before `before`) and the manifest's SHA-256.
struct Horizon {
  BatchEnd end;
  absl::Time before;
  std::string manifest_sha256;
};

// Archived usage of one allocation whose records end in one Asia/Shanghai
// day (`day` is its first instant), summed.
struct UsageDay {
  std::string allocation_id;
  absl::Time day;
  int64_t records = 0;
  int64_t gpu_ms = 0;
  int64_t unsubsidised_gpu_ms = 0;
  int64_t cost_fen = 0;
  int64_t subsidy_fen = 0;
};

class ArchivedHistory {
 public:
  virtual ~ArchivedHistory() = default;

  // Where the archived range ends; nullopt when nothing was archived.
  virtual absl::StatusOr<std::optional<Horizon>> ReadHorizon() = 0;

  // The end of the last stored batch whose commands are all at or before
  // `command`; NotFound when there is none after the horizon.
  virtual absl::StatusOr<BatchEnd> BatchEndAtOrBefore(int64_t command) = 0;

  // In one transaction: drops the batches up to and including the one
  // ending at `horizon.end` (which must be a stored batch's end, not the
  // last one: FailedPrecondition otherwise) and the snapshots before it,
  // makes `horizon` the horizon, and adds `days` to the stored sums. On
  // error nothing changed. Refused on a read-only store and on a replica
  // that does not hold the lease, as Append is.
  virtual absl::Status DropArchived(const Horizon& horizon,
                                    const std::vector<UsageDay>& days) = 0;

  // Calls `fn` for the stored sums of the allocations `query` names (all
  // when unset) for the days starting in [period_start, period_end), by
  // allocation and day.
  virtual absl::Status ScanUsageDays(
      const UsageQuery& query,
      const std::function<void(const UsageDay&)>& fn) = 0;
};

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_ARCHIVED_HISTORY_H_
