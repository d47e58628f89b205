// Command-line parsing shared by the binaries.
#ifndef COMPUTEVOUCHER_COMMON_FLAGS_H_
#define COMPUTEVOUCHER_COMMON_FLAGS_H_

#include <string>
#include <vector>

namespace computevoucher {

// Parses Abseil flags, accepting the conventional spelling with dashes
// (`--data-dir`) as well as Abseil's underscores (`--data_dir`). Returns
// the positional arguments, argv[0] first. Exits with a usage message on
// an unknown flag, as absl::ParseCommandLine does.
std::vector<std::string> ParseFlags(int argc, char** argv);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_FLAGS_H_
