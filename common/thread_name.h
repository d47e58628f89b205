// Names for the servers' own threads, so that `top -H`, `ps -L` and `perf`
// say which one is busy (cv-writer, cv-commit, cv-snapshot, ...).
#ifndef COMPUTEVOUCHER_COMMON_THREAD_NAME_H_
#define COMPUTEVOUCHER_COMMON_THREAD_NAME_H_

#include <array>
#include <cstddef>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace computevoucher {

// Names the calling thread: at most 15 characters, which is what Linux
// keeps (a longer name is refused and the thread keeps its name).
void NameThisThread(const char* name);

// A thread named `name` (a literal of at most 15 characters) that runs
// `fn`.
template <std::size_t N, typename Fn>
std::thread StartNamedThread(const char (&name)[N], Fn fn) {
  static_assert(N <= 16, "Linux keeps 15 characters of a thread's name");
  std::array<char, N> copy{};
  for (std::size_t i = 0; i + 1 < N; ++i) copy[i] = name[i];
  return std::thread([copy, fn = std::move(fn)]() mutable {
    NameThisThread(copy.data());
    fn();
  });
}

// The ids of this process's threads (/proc/self/task).
std::vector<int> ThreadsOfThisProcess();

// The name of thread `tid` of this process (/proc/self/task/TID/comm);
// empty where it cannot be read (the thread has ended).
std::string NameOfThread(int tid);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_THREAD_NAME_H_
