// Abseil's lock-order checking, which Debian's build of Abseil leaves on.
//
// Debian compiles Abseil without NDEBUG, so absl::Mutex runs its debug-mode
// deadlock detection in every program linked to it: each Lock adds the
// locks its thread holds to one process-wide graph behind one spinlock
// (about 3.5 times what the lock itself costs, and every thread of the
// process waits on that spinlock), and an order of locks it takes for a
// possible deadlock aborts the process. Abseil's release builds do
// neither. The servers' and the benchmarks' main() turn it off; the tests,
// which do not call this, keep it as a check of the lock order.
#ifndef COMPUTEVOUCHER_COMMON_MUTEXES_H_
#define COMPUTEVOUCHER_COMMON_MUTEXES_H_

namespace computevoucher {

// Turns Abseil's Mutex deadlock detection off for the process. Call it at
// the start of main(), before any thread starts.
void TurnOffMutexDeadlockDetection();

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_MUTEXES_H_
