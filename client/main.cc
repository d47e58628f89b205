// voucherctl: see client/README.md and `voucherctl --help`.
#include <iostream>
#include <string>
#include <vector>

#include "client/voucherctl.h"
#include "common/mutexes.h"

int main(int argc, char** argv) {
  computevoucher::UseReleaseMutexChecks();
  return computevoucher::client::RunVoucherctl(
      std::vector<std::string>(argv + 1, argv + argc), std::cin, std::cout,
      std::cerr);
}
