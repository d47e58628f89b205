// Helpers shared by the store implementations; not for use outside
// scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_

#include <cstdint>

#include "absl/status/status.h"
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

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_
