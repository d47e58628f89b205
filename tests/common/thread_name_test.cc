#include "common/thread_name.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace computevoucher {
namespace {

TEST(ThreadName, AStartedThreadHasItsName) {
  std::string seen;
  int tid = 0;
  std::thread named = StartNamedThread("cv-test-thread", [&] {
    tid = static_cast<int>(syscall(SYS_gettid));
    seen = NameOfThread(tid);
  });
  named.join();
  EXPECT_EQ(seen, "cv-test-thread");
}

TEST(ThreadName, TheThreadsOfThisProcessIncludeThisOne) {
  const std::vector<int> threads = ThreadsOfThisProcess();
  const int me = static_cast<int>(syscall(SYS_gettid));
  EXPECT_EQ(std::count(threads.begin(), threads.end(), me), 1);
  EXPECT_FALSE(NameOfThread(me).empty());
}

}  // namespace
}  // namespace computevoucher
