// voucherctl's exit codes and how an error carries the one it ends with.
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_EXIT_CODES_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_EXIT_CODES_H_

#include "absl/status/status.h"

namespace computevoucher::client {

// Success.
inline constexpr int kExitOk = 0;
// The server answered with an error (its message is printed).
inline constexpr int kExitRefused = 1;
// The command line was wrong: unknown command or flag, missing or bad
// argument, unreadable input file.
inline constexpr int kExitUsage = 2;
// The server could not be reached (no answer at all).
inline constexpr int kExitUnreachable = 3;

// `status` marked to end the program with `exit_code`.
absl::Status WithExitCode(absl::Status status, int exit_code);

// kExitOk for OK; the code set by WithExitCode; kExitUsage for any other
// error, since everything voucherctl checks itself comes from what the user
// typed or the files they named.
int ExitCodeOf(const absl::Status& status);

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_EXIT_CODES_H_
