// Names for the servers' own threads, so that `top -H`, `ps -L` and `perf`
// say which one is busy (cv-writer, cv-commit, cv-snapshot, ...).
#ifndef COMPUTEVOUCHER_COMMON_THREAD_NAME_H_
#define COMPUTEVOUCHER_COMMON_THREAD_NAME_H_

#include <string>

namespace computevoucher {

// Names the calling thread; Linux keeps the first 15 characters.
void NameThisThread(const char* name);

// The name of thread `tid` of this process (/proc/self/task/TID/comm);
// empty where it cannot be read (the thread has ended).
std::string NameOfThread(int tid);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_THREAD_NAME_H_
