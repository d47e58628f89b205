// voucherctl: the command-line tool of enterprises and administrators.
#ifndef COMPUTEVOUCHER_CLIENT_VOUCHERCTL_H_
#define COMPUTEVOUCHER_CLIENT_VOUCHERCTL_H_

#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace computevoucher::client {

// Runs one command line (`args` without the program name), reading the
// environment (VOUCHERCTL_ENDPOINT, VOUCHERCTL_TOKEN, XDG_CONFIG_HOME,
// HOME), `in` (login reads a token there), writing results to `out` and
// messages to `err`. Returns the exit code: 0 success, 1 the server
// refused, 2 usage error, 3 the server could not be reached.
int RunVoucherctl(std::vector<std::string> args, std::istream& in,
                  std::ostream& out, std::ostream& err);

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_VOUCHERCTL_H_
