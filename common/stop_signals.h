// How the servers stop: SIGTERM and SIGINT are blocked in every thread and
// taken by one waiting thread with sigwait, never by handlers, so that the
// stop runs as ordinary code. Child processes get default dispositions and
// an empty mask back when they start (agent/workload.h).
#ifndef COMPUTEVOUCHER_COMMON_STOP_SIGNALS_H_
#define COMPUTEVOUCHER_COMMON_STOP_SIGNALS_H_

#include <signal.h>

namespace computevoucher {

// Blocks SIGTERM and SIGINT in the calling thread and every thread it
// starts afterwards; call it before starting any. Returns that set.
inline sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Waits for one of `signals` (from BlockStopSignals); returns it.
inline int WaitForStopSignal(const sigset_t& signals) {
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  return signal_number;
}

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_STOP_SIGNALS_H_
