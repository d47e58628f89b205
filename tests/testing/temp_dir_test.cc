#include "tests/testing/temp_dir.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace computevoucher::testing {
namespace {

TEST(TempDir, IsPrivateAndRemovedWithWhatItHolds) {
  std::string path;
  {
    absl::StatusOr<TempDir> dir = TempDir::Make("temp_dir_test");
    ASSERT_TRUE(dir.ok()) << dir.status();
    path = dir->path();
    EXPECT_NE(path.find("/temp_dir_test."), std::string::npos) << path;
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700);
    std::filesystem::create_directories(path + "/a/b");
    std::ofstream(path + "/a/b/file") << "x";
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(TempDir, MovingHandsOverTheDirectory) {
  absl::StatusOr<TempDir> made = TempDir::Make("temp_dir_test");
  ASSERT_TRUE(made.ok()) << made.status();
  const std::string path = made->path();
  TempDir kept;
  {
    TempDir moved = *std::move(made);
    kept = std::move(moved);
  }
  EXPECT_TRUE(std::filesystem::is_directory(path));
  EXPECT_EQ(kept.path(), path);
}

TEST(TempDir, KeptWhenAskedTo) {
  std::string path;
  ASSERT_EQ(setenv("CV_KEEP_TEST_DIRS", "1", 1), 0);
  {
    absl::StatusOr<TempDir> dir = TempDir::Make("temp_dir_test");
    ASSERT_TRUE(dir.ok()) << dir.status();
    path = dir->path();
  }
  ASSERT_EQ(unsetenv("CV_KEEP_TEST_DIRS"), 0);
  EXPECT_TRUE(std::filesystem::is_directory(path));
  std::filesystem::remove_all(path);
}

TEST(TempDir, AnUnusableParentIsAnError) {
  absl::StatusOr<TempDir> dir = TempDir::Make("x", "/nonexistent/parent");
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(dir.status().message().find("/nonexistent/parent/x."),
            std::string::npos)
      << dir.status();
}

}  // namespace
}  // namespace computevoucher::testing
