// Totals for reports, summed with checked arithmetic.
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_CHECKED_SUM_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_CHECKED_SUM_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/money.h"

namespace computevoucher::reports {

// Adds into totals and keeps the first overflow, so that a report either
// has exact totals or fails naming the figure that overflowed; it never
// wraps. For sums inside callbacks that cannot return a status.
class CheckedSum {
 public:
  // `total + value`, or `total` after remembering the overflow; `what`
  // names the figure for the error.
  int64_t Add(absl::string_view what, int64_t total, int64_t value) {
    absl::StatusOr<int64_t> sum = CheckedAdd(total, value);
    if (sum.ok()) return *sum;
    if (status_.ok()) {
      status_ = absl::OutOfRangeError(
          absl::StrCat(what, ": the total does not fit in 64 bits (",
                       sum.status().message(), ")"));
    }
    return total;
  }

  // OK, or the first overflow.
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

}  // namespace computevoucher::reports

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_CHECKED_SUM_H_
