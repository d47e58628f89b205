#include "common/thread_name.h"

#include <pthread.h>

#include <fstream>

#include "absl/strings/str_cat.h"

namespace computevoucher {

void NameThisThread(const char* name) {
  // Longer names are refused (ERANGE): keep what Linux would show.
  const std::string shown = std::string(name).substr(0, 15);
  pthread_setname_np(pthread_self(), shown.c_str());
}

std::string NameOfThread(int tid) {
  std::ifstream in(absl::StrCat("/proc/self/task/", tid, "/comm"));
  std::string name;
  std::getline(in, name);
  return name;
}

}  // namespace computevoucher
