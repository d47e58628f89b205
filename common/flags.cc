#include "common/flags.h"

#include "absl/flags/parse.h"

namespace computevoucher {

std::vector<std::string> ParseFlags(int argc, char** argv) {
  std::vector<std::string> normalized;
  normalized.reserve(argc);
  bool positional_only = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") positional_only = true;
    if (i > 0 && !positional_only && arg.size() > 2 && arg[0] == '-') {
      // Rewrite the name part only, never a value after '='.
      const size_t start = arg.find_first_not_of('-');
      const size_t end = std::min(arg.find('='), arg.size());
      for (size_t j = start; j < end; ++j) {
        if (arg[j] == '-') arg[j] = '_';
      }
    }
    normalized.push_back(std::move(arg));
  }
  std::vector<char*> pointers;
  for (std::string& s : normalized) pointers.push_back(s.data());
  std::vector<char*> rest = absl::ParseCommandLine(
      static_cast<int>(pointers.size()), pointers.data());
  return std::vector<std::string>(rest.begin(), rest.end());
}

}  // namespace computevoucher
