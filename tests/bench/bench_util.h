// Measuring helpers shared by the benchmarks under tests/bench/.
#ifndef COMPUTEVOUCHER_TESTS_BENCH_BENCH_UTIL_H_
#define COMPUTEVOUCHER_TESTS_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace cv::bench {

double Seconds(std::chrono::steady_clock::duration d);

// CPU time of the calling thread, and of the whole process, in ns.
int64_t ThreadCpuNanos();
int64_t ProcessCpuNanos();

// CPU time the whole machine spent busy (not idle, not waiting for I/O),
// in seconds, from /proc/stat; 0 where unreadable.
double MachineBusySeconds();

// The file system under `path`, named for people ("ext4", "tmpfs (...)").
std::string FileSystemType(const std::string& path);

// 123456.7 -> "123,457".
std::string Rate(double v);

// A temporary directory removed however the run ends.
class TempDir {
 public:
  // Under `parent`, or $TMPDIR, or /tmp; named after `prefix`.
  static absl::StatusOr<TempDir> Make(std::string parent,
                                      const std::string& prefix);
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, "")) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace cv::bench

#endif  // COMPUTEVOUCHER_TESTS_BENCH_BENCH_UTIL_H_
