// Helpers shared by the store implementations; not for use outside
// scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "scheduler/store/store.h"

namespace computevoucher::store::internal {

// OK when `batch` continues both sequences of `head` without gaps;
// FailedPrecondition naming the first sequence that does not otherwise.
absl::Status CheckContinues(const Head& head, const Batch& batch);

// For WriteSnapshot, inside its transaction: OK when `keep` >= 1 and
// `position` is a stored command (1..`last_command`) newer than the newest
// stored snapshot (`newest`, 0 when none). InvalidArgument for `keep`,
// AlreadyExists for a position equal to `newest`, FailedPrecondition
// otherwise, each naming the values.
absl::Status CheckSnapshot(int64_t position, int keep, int64_t last_command,
                           int64_t newest);

// Unix nanoseconds of a timestamp (stored times are within int64's range,
// years 1678..2262; they were validated when accepted).
int64_t NanosOf(const google::protobuf::Timestamp& ts);

// Unix nanoseconds of `t`, clamped to int64's range (the infinities
// included).
int64_t ClampNanos(absl::Time t);

// The table of retired allocations (RetiredAllocations), the same on both
// stores but for the SQL types: `text` and `blob` name them.
std::string RetiredTableSql(absl::string_view text, absl::string_view blob);

// ReadRetired's SELECT for `query`: the bodies of the matching rows, with
// placeholders `marker` 1, 2, ... (`?` for SQLite, `$` for PostgreSQL) for
// `params`, in order. InvalidArgument for a limit outside 1..10000.
struct RetiredSelect {
  std::string sql;
  std::vector<std::string> params;
};
absl::StatusOr<RetiredSelect> SelectRetired(const RetiredQuery& query,
                                            char marker);

// A stored body of the table, parsed; DataLoss when it does not parse.
absl::StatusOr<pb::Allocation> ParseRetired(absl::string_view body);

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_
