// A clock for tests: time stays where the test puts it (backwards steps
// included, as NTP may do), optionally moving by a fixed step on every read
// so that code which polls time sees it advance as real time would.
#ifndef COMPUTEVOUCHER_TESTS_TESTING_FAKE_CLOCK_H_
#define COMPUTEVOUCHER_TESTS_TESTING_FAKE_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace computevoucher::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start,
                     absl::Duration step_per_read = absl::ZeroDuration())
      : now_(start), step_(step_per_read) {}

  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    const absl::Time now = now_;
    now_ += step_;
    return now;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  const absl::Duration step_;
};

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_TESTING_FAKE_CLOCK_H_
