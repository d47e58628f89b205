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

// Unix nanoseconds of a timestamp (stored times are within int64's range,
// years 1678..2262; they were validated when accepted).
int64_t NanosOf(const google::protobuf::Timestamp& ts);

// Unix nanoseconds of `t`, clamped to int64's range (the infinities
// included).
int64_t ClampNanos(absl::Time t);

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_
