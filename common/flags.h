// Command-line parsing shared by the binaries.
#ifndef COMPUTEVOUCHER_COMMON_FLAGS_H_
#define COMPUTEVOUCHER_COMMON_FLAGS_H_

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// Defines a flag as ABSL_FLAG does (at global scope), listed in --help
// under `group`, one of the headings the binary passes to ParseFlags:
//   CV_FLAG(kStore, std::string, data_dir, "", "data directory");
// A binary that passes headings defines every flag with it: ParseFlags
// aborts on a plain ABSL_FLAG there.
#define CV_FLAG(group, type, name, default_value, help)  \
  ABSL_FLAG(type, name, default_value, help);            \
  static const ::computevoucher::flags_internal::GroupOf \
      cv_flag_group_of_##name(#name, group)

namespace computevoucher {

namespace flags_internal {
// Records the group CV_FLAG gives flag `name`; for CV_FLAG only, at static
// initialisation (not thread-safe).
class GroupOf {
 public:
  GroupOf(const char* name, const char* group);
};
}  // namespace flags_internal

// A flag as --help lists it.
struct FlagHelp {
  std::string name;           // as defined: data_dir
  std::string group;          // CV_FLAG's; "" for a plain ABSL_FLAG
  std::string value_word;     // TEXT, N or NUMBER; "" for a switch
  std::string help;           // what it is
  std::string default_value;  // as Abseil prints it
};

// The help text: `usage`, then a heading per group, in the order of
// `groups`, over its flags by name, each as people type it
// (--data-dir TEXT) with its help and its default unless that is empty, 0
// or false; then --help, --version and the version line of `program`. A
// binary that names no groups lists every flag under "Flags". An
// InternalError, a programming error of the binary, names the flag that
// has no group or one not in `groups`, or the group given twice or that no
// flag is in.
absl::StatusOr<std::string> HelpText(absl::string_view program,
                                     absl::string_view usage,
                                     absl::Span<const absl::string_view> groups,
                                     std::vector<FlagHelp> flags);

// This binary's own flags (not Abseil's) by name, each with its CV_FLAG
// group.
std::vector<FlagHelp> OwnFlags();

// Parses Abseil flags, accepting the conventional spelling with dashes
// (`--data-dir`) as well as Abseil's underscores (`--data_dir`), as
// `--name=value`, `--name value`, `--switch` and `--noswitch`. Returns the
// positional arguments, argv[0] first (everything after `--` is one).
// `--help` (or -h) prints HelpText for the usage message, `groups` and
// every flag of the binary, and `--version` the version and git revision;
// both exit 0. An unknown flag (with a suggestion when one is near) or a
// value a flag cannot take prints what is wrong, naming the flag, and
// exits 2, the usage error the systemd units do not restart on. A flag
// without one of `groups` (HelpText's error) aborts whatever the
// arguments, so that any test that starts the binary catches it.
std::vector<std::string> ParseFlags(
    int argc, char** argv, absl::Span<const absl::string_view> groups = {});

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_FLAGS_H_
