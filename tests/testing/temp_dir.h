// A temporary directory for a test or a benchmark, removed when it goes
// away — unless the test failed or CV_KEEP_TEST_DIRS is set, when it is
// kept and its path said on stderr, for the post-mortem.
#ifndef COMPUTEVOUCHER_TESTS_TESTING_TEMP_DIR_H_
#define COMPUTEVOUCHER_TESTS_TESTING_TEMP_DIR_H_

#include <string>

#include "absl/status/statusor.h"

namespace computevoucher::testing {

class TempDir {
 public:
  // A new directory "<parent>/<prefix>.XXXXXX" (mode 0700); an empty
  // `parent` means $TEST_TMPDIR, else $TMPDIR, else /tmp.
  static absl::StatusOr<TempDir> Make(const std::string& prefix,
                                      std::string parent = "");

  TempDir() = default;  // no directory
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  void Remove();
  std::string path_;
};

// For a fixture's SetUp: makes a TempDir into `out`, or fails the test
// fatally. ASSERT_NO_FATAL_FAILURE(MakeTempDir("api", temp_));
void MakeTempDir(const std::string& prefix, TempDir& out);

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_TESTING_TEMP_DIR_H_
