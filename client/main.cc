// voucherctl: see client/README.md and `voucherctl --help`.
#include <iostream>
#include <string>
#include <vector>

#include "client/voucherctl.h"

int main(int argc, char** argv) {
  return computevoucher::client::RunVoucherctl(
      std::vector<std::string>(argv + 1, argv + argc), std::cin, std::cout,
      std::cerr);
}
