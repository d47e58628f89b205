// Abseil's lock-order checking, which Debian's build of Abseil leaves on.
//
// Debian compiles Abseil without NDEBUG, so absl::Mutex runs its debug-mode
// deadlock detection in every program linked to it: each Lock adds the
// locks its thread holds to one process-wide graph behind one spinlock (a
// lock and unlock of two nested mutexes costs about 3.6 times as much, and
// every thread of the process waits on that spinlock), and an order of
// locks it takes for a possible deadlock aborts the process. Abseil's
// release builds do neither.
#ifndef COMPUTEVOUCHER_COMMON_MUTEXES_H_
#define COMPUTEVOUCHER_COMMON_MUTEXES_H_

namespace computevoucher {

// In a release build (NDEBUG), turns Abseil's Mutex deadlock detection off
// for the process; in a debug build (the sanitizer suite's, which also runs
// the binaries end to end) leaves it on, as a check of the lock order.
// Called first thing in main() by the scheduler, the agent, voucherctl and
// the benchmarks, before any thread starts; once off it stays off (Abseil
// cannot turn it back on while a lock taken unchecked is held). Tests that
// link the code directly do not call it and keep the check in every build.
void UseReleaseMutexChecks();

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_MUTEXES_H_
