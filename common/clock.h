// The source of the current time, behind an interface so that tests can
// inject time.
#ifndef COMPUTEVOUCHER_COMMON_CLOCK_H_
#define COMPUTEVOUCHER_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace computevoucher {

class Clock {
 public:
  virtual ~Clock() = default;
  // The current instant. Thread-safe.
  virtual absl::Time Now() = 0;
};

// The machine's real-time clock.
class RealClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
};

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_CLOCK_H_
