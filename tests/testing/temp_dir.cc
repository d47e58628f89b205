#include "tests/testing/temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace computevoucher::testing {

absl::StatusOr<TempDir> TempDir::Make(const std::string& prefix,
                                      std::string parent) {
  for (const char* name : {"TEST_TMPDIR", "TMPDIR"}) {
    if (!parent.empty()) break;
    const char* value = std::getenv(name);
    if (value != nullptr) parent = value;
  }
  if (parent.empty()) parent = "/tmp";
  std::string pattern = absl::StrCat(parent, "/", prefix, ".XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("mkdtemp ", pattern, ": ", std::strerror(errno)));
  }
  return TempDir(std::filesystem::path(pattern).lexically_normal().string());
}

TempDir::TempDir(TempDir&& other) noexcept
    : path_(std::exchange(other.path_, "")) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::exchange(other.path_, "");
  }
  return *this;
}

TempDir::~TempDir() { Remove(); }

void TempDir::Remove() {
  if (path_.empty()) return;
  // Outside a test (a benchmark), HasFailure() is false.
  if (::testing::Test::HasFailure() ||
      std::getenv("CV_KEEP_TEST_DIRS") != nullptr) {
    std::fprintf(stderr, "test files kept in %s\n", path_.c_str());
  } else {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  path_.clear();
}

void MakeTempDir(const std::string& prefix, TempDir& out) {
  absl::StatusOr<TempDir> made = TempDir::Make(prefix);
  ASSERT_TRUE(made.ok()) << made.status();
  out = *std::move(made);
}

}  // namespace computevoucher::testing
