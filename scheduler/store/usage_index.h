// The usage index: the accepted usage records, read by period and
// allocation for usage pages, statements and settlement.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_USAGE_INDEX_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_USAGE_INDEX_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "scheduler/store/command_log.h"

namespace computevoucher::store {

// Which accepted usage records to read: those whose interval ends in
// [period_start, period_end), of the allocations given (all when unset),
// after position `after`, in the order they were accepted.
struct UsageQuery {
  std::optional<absl::flat_hash_set<std::string>> allocation_ids;
  absl::Time period_start = absl::InfinitePast();
  absl::Time period_end = absl::InfiniteFuture();
  int64_t after = 0;
  int limit = 1000;
  // How far a record may end after it was accepted (agent clocks drift;
  // the caller's bound, core::kUsageClockSkew for the scheduler). With it
  // the store skips records accepted before period_start minus it, which
  // cannot end in the period; infinite reads them all.
  absl::Duration end_after_accept = absl::InfiniteDuration();
  // False: a record stored as a record of the usage report that carried it
  // is left out of UsageRow::usage, and UsageRow::command and record_index
  // say where it is (for replay, which has the commands: it saves copying
  // every record). A filtered() query reads every record all the same.
  // ReadUsage only: ScanUsage hands out the ChargedUsage alone.
  bool records = true;

  // Whether it selects records by allocation or period, rather than taking
  // them all in the order accepted.
  bool filtered() const {
    return allocation_ids.has_value() || period_start != absl::InfinitePast() ||
           period_end != absl::InfiniteFuture();
  }
};

// A stored record: the record, its cost, subsidy, unsubsidised GPU-ms and
// acceptance time (who used it follows from the allocation).
struct UsageRow {
  int64_t position = 0;  // pass as UsageQuery::after to continue
  pb::ChargedUsage usage;
  // When the record was left out of `usage` (UsageQuery::records): the
  // sequence of a command whose usage report carries it, and its index
  // among the report's records. 0 otherwise. Usually the command that
  // accepted it; an earlier one of the same batch when that one carried an
  // equal record it did not accept (an agent sent a record again after it
  // was told to retry it, say).
  int64_t command = 0;
  int record_index = 0;
};

class UsageIndex {
 public:
  virtual ~UsageIndex() = default;

  // Up to `query.limit` accepted usage records matching `query`, in the
  // order they were accepted.
  virtual absl::StatusOr<std::vector<UsageRow>> ReadUsage(
      const UsageQuery& query) = 0;

  // Calls `fn` for every record matching `query` (its `after` and `limit`
  // ignored) in one consistent snapshot, and returns the head of that
  // snapshot, so that totals can name the journal position they are as of.
  virtual absl::StatusOr<Head> ScanUsage(
      const UsageQuery& query,
      const std::function<void(const pb::ChargedUsage&)>& fn) = 0;
};

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_USAGE_INDEX_H_
