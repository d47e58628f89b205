// Command-line parsing shared by the binaries.
#ifndef COMPUTEVOUCHER_COMMON_FLAGS_H_
#define COMPUTEVOUCHER_COMMON_FLAGS_H_

#include <string>
#include <vector>

namespace computevoucher {

// Parses Abseil flags, accepting the conventional spelling with dashes
// (`--data-dir`) as well as Abseil's underscores (`--data_dir`), as
// `--name=value`, `--name value`, `--switch` and `--noswitch`. Returns the
// positional arguments, argv[0] first (everything after `--` is one).
// `--help` (or -h) prints the usage message and every flag of the binary
// as people type it, with its default, and `--version` the version and
// git revision; both exit 0. An unknown flag (with a suggestion when one
// is near) or a value a flag cannot take prints what is wrong, naming the
// flag, and exits 2, the usage error the systemd units do not restart on.
std::vector<std::string> ParseFlags(int argc, char** argv);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_FLAGS_H_
