#include "scheduler/engine/log.h"

#include <cstdio>

namespace computevoucher::engine {

void Log(absl::string_view line) {
  std::fprintf(stderr, "voucher-scheduler: %.*s\n",
               static_cast<int>(line.size()), line.data());
  std::fflush(stderr);
}

}  // namespace computevoucher::engine
