#include "common/thread_name.h"

#include <pthread.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace computevoucher {

void NameThisThread(const char* name) {
  pthread_setname_np(pthread_self(), name);
}

std::vector<int> ThreadsOfThisProcess() {
  std::vector<int> tids;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    tids.push_back(std::atoi(it->path().filename().c_str()));
  }
  return tids;
}

std::string NameOfThread(int tid) {
  std::ifstream in(absl::StrCat("/proc/self/task/", tid, "/comm"));
  std::string name;
  std::getline(in, name);
  return name;
}

}  // namespace computevoucher
