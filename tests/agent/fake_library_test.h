// A fixture for tests that load one of the fake vendor libraries the tests
// build (tests/agent/fake_nvml.cc, tests/agent/fake_dcmi.cc) into the test
// process: it finds the library under $CV_BUILD_DIR (set by ctest), gives
// each test a fresh temporary directory, and points the fake's script and
// log variables there.
#ifndef COMPUTEVOUCHER_TESTS_AGENT_FAKE_LIBRARY_TEST_H_
#define COMPUTEVOUCHER_TESTS_AGENT_FAKE_LIBRARY_TEST_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::agent {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

class FakeLibraryTest : public ::testing::Test {
 protected:
  struct Fake {
    // Under the build directory, e.g. "fake-nvml/libnvidia-ml.so.1".
    std::string library;
    // The CMake target that builds it, for the message when it is missing.
    std::string target;
    // The fake's environment variables.
    std::string script_env;
    std::string log_env;
  };

  explicit FakeLibraryTest(Fake fake) : fake_(std::move(fake)) {}

  void SetUp() override {
    const char* build_dir = getenv("CV_BUILD_DIR");
    ASSERT_NE(build_dir, nullptr)
        << "CV_BUILD_DIR is unset: run this test through ctest, or set it to "
           "the build directory that holds "
        << fake_.library;
    build_dir_ = build_dir;
    library_ = BuildPath(fake_.library);
    ASSERT_TRUE(std::filesystem::exists(library_))
        << library_ << " is missing: build the " << fake_.target << " target";

    ASSERT_NO_FATAL_FAILURE(MakeTempDir("fake_library", temp_));
    dir_ = temp_.path();
    log_ = dir_ + "/library.log";
    ASSERT_EQ(setenv(fake_.log_env.c_str(), log_.c_str(), 1), 0);
    ASSERT_EQ(unsetenv(fake_.script_env.c_str()), 0);
  }

  void TearDown() override {
    unsetenv(fake_.script_env.c_str());
    unsetenv(fake_.log_env.c_str());
  }

  // `relative` under the build directory.
  std::string BuildPath(const std::string& relative) const {
    return build_dir_ + "/" + relative;
  }

  // Makes `script` the fake's script for the next load.
  void UseScript(const std::string& script) {
    const std::string path = dir_ + "/script";
    std::ofstream(path) << script;
    ASSERT_EQ(setenv(fake_.script_env.c_str(), path.c_str(), 1), 0);
  }

  // What the fake has logged.
  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  const Fake fake_;
  std::string build_dir_;
  // The fake library's path.
  std::string library_;
  // This test's temporary directory.
  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  std::string log_;
};

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_TESTS_AGENT_FAKE_LIBRARY_TEST_H_
