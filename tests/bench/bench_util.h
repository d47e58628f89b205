// Measuring helpers shared by the benchmarks under tests/bench/.
#ifndef COMPUTEVOUCHER_TESTS_BENCH_BENCH_UTIL_H_
#define COMPUTEVOUCHER_TESTS_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace computevoucher::bench {

double Seconds(std::chrono::steady_clock::duration d);

// CPU time of the calling thread, and of the whole process, in ns.
int64_t ThreadCpuNanos();
int64_t ProcessCpuNanos();

// CPU time the whole machine spent busy (not idle, not waiting for I/O),
// in seconds, from /proc/stat; 0 where unreadable.
double MachineBusySeconds();

// The calling process's resident memory (VmRSS), in bytes; 0 where
// unreadable.
int64_t ResidentBytes();

// The file system under `path`, named for people ("ext4", "tmpfs (...)").
std::string FileSystemType(const std::string& path);

// 123456.7 -> "123,457".
std::string Rate(double v);

// The first problem any of a benchmark's threads ran into, for its report
// ("" when none). Thread-safe.
class FirstProblem {
 public:
  void Note(const std::string& what) {
    absl::MutexLock lock(&mu_);
    if (first_.empty()) first_ = what;
  }
  std::string get() const {
    absl::MutexLock lock(&mu_);
    return first_;
  }

 private:
  mutable absl::Mutex mu_;
  std::string first_ ABSL_GUARDED_BY(mu_);
};

}  // namespace computevoucher::bench

#endif  // COMPUTEVOUCHER_TESTS_BENCH_BENCH_UTIL_H_
