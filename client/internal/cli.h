// The command line: a declarative table of commands (path, help, flags,
// example, handler) from which both parsing and help are derived.
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_CLI_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_CLI_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"

namespace computevoucher::client {

class Context;
using Handler = absl::Status (*)(Context&);

struct FlagSpec {
  // Long name without the dashes, e.g. "gpus".
  const char* name;
  // Placeholder of the value in help, e.g. "N"; nullptr for a switch.
  const char* value;
  const char* help;
  bool required = false;
  // A one-letter alias, e.g. 'o' for -o; 0 for none.
  char shorthand = 0;
};

struct CommandSpec {
  // Words that select the command, e.g. "admin voucher issue". An entry
  // without a handler is a group and only describes its path; the entry
  // with the empty path describes the program (the root's help).
  const char* path;
  // One line shown in lists and at the top of the help.
  const char* summary;
  // Required positional arguments, space separated, e.g. "VOUCHER_ID".
  const char* positionals = "";
  // Arguments after "--" (e.g. "COMMAND..."); nullptr when none are taken.
  const char* rest = nullptr;
  std::vector<FlagSpec> flags = {};
  // One or more example lines.
  const char* example = "";
  Handler handler = nullptr;
};

// Parsed flags and arguments of one invocation.
class Args {
 public:
  bool Has(absl::string_view flag) const;
  // The flag's value (the last one given); "" when absent.
  std::string Value(absl::string_view flag) const;
  bool Switch(absl::string_view flag) const { return Has(flag); }
  const std::vector<std::string>& positionals() const { return positionals_; }
  const std::vector<std::string>& rest() const { return rest_; }

  // Typed values of present flags, with errors naming "--flag".
  absl::StatusOr<int64_t> Amount(absl::string_view flag) const;
  absl::StatusOr<int64_t> Count(absl::string_view flag, int64_t min,
                                int64_t max) const;
  absl::StatusOr<absl::CivilDay> Date(absl::string_view flag) const;
  absl::StatusOr<std::string> Id(absl::string_view flag) const;
  // Id(flag) into *out when the flag was given; *out unchanged otherwise.
  absl::Status OptionalId(absl::string_view flag, std::string* out) const;
  // Positional argument `index`, checked as an id, named by its placeholder.
  absl::StatusOr<std::string> PositionalId(size_t index) const;

 private:
  friend class Parser;
  std::map<std::string, std::string, std::less<>> values_;
  std::vector<std::string> positionals_;
  std::vector<std::string> positional_names_;
  std::vector<std::string> rest_;
};

struct Invocation {
  // The command or group selected; nullptr for the root.
  const CommandSpec* command = nullptr;
  // Its path ("" for the root).
  std::string path;
  Args args;
};

// The command or group of `table` at `path` ("admin voucher"); nullptr
// when there is none.
const CommandSpec* FindCommand(const std::vector<CommandSpec>& table,
                               absl::string_view path);
// `path` followed by `word`.
std::string ChildPath(absl::string_view path, absl::string_view word);
// The commands and groups directly under `path`, in table order.
std::vector<const CommandSpec*> ChildCommands(
    const std::vector<CommandSpec>& table, absl::string_view path);
// The last word of `path` ("issue" of "admin voucher issue").
std::string LastWord(absl::string_view path);
// The last words of the commands and groups directly under `path`.
std::vector<std::string> ChildNames(const std::vector<CommandSpec>& table,
                                    absl::string_view path);

// A flag as typed: "--gpus", "--gpus=2", "-o", "-ojson".
struct FlagWord {
  // "gpus", "o".
  absl::string_view name;
  bool shorthand = false;
  // The value the word carries ("2", "json"), if any.
  std::optional<std::string> value;
};
// `word`, which starts with '-'.
FlagWord SplitFlagWord(absl::string_view word);
// The flag `word` names among those of `command` (nullptr: none) and
// `globals`; nullptr when it names none.
const FlagSpec* FindFlag(const CommandSpec* command,
                         const std::vector<FlagSpec>& globals,
                         const FlagWord& word);

// Parses `argv` (without the program name) against `table` and the global
// flags that every command takes. Errors are InvalidArgument and say what
// was wrong (unknown command with a suggestion, unknown flag, missing
// value, argument or required flag); `*path` is set to the command reached
// so that the caller can point at its help. With --help/-h, only the
// command words and flag names are checked.
absl::StatusOr<Invocation> ParseCommandLine(
    const std::vector<CommandSpec>& table, const std::vector<FlagSpec>& globals,
    const std::vector<std::string>& argv, std::string* path);

// The help of the command or group at `path` ("" for the root): summary,
// usage line, subcommands or flags, global flags and the example.
std::string HelpText(const std::vector<CommandSpec>& table,
                     const std::vector<FlagSpec>& globals,
                     const std::string& path);

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_CLI_H_
