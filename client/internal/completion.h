// Shell completion for voucherctl. The candidates for a word come from the
// command table that parsing and help use (Commands(), GlobalFlags()); the
// bash and zsh scripts only ask the binary for them through the hidden
// `voucherctl __complete WORD...` and hand them to the shell.
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_COMPLETION_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_COMPLETION_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/internal/cli.h"

namespace computevoucher::client {

// The hidden first argument of `voucherctl __complete WORD...`; not in the
// command table, so neither help nor "did you mean" shows it.
inline constexpr absl::string_view kCompleteCommand = "__complete";

// The shells `voucherctl completion SHELL` writes a script for.
const std::vector<std::string>& ShellWords();

// The candidates for the last of `words` (the words after "voucherctl", up
// to and including the one being completed, which may be ""), each
// starting with that word, in table order:
//   - the subcommands at the level the words reached (`admin vo` → voucher);
//   - for a word starting with "-", the flags of the command reached and
//     the global flags, spelled as help spells them ("--gpus", "-o");
//   - for the value of a flag (after "-o", or as "--output=j"), the words
//     voucherctl checks it against (FormatWords(), EncodingWords()), else
//     none, so that the shell completes file names;
//   - for a positional argument, its choices where it has a list (the
//     SHELL of `completion`), else none;
//   - none after "--" (the workload's command) or after a word that is no
//     command of the table.
// Flag values are skipped while walking ("--gpus 2", "--gpus=2", "-ojson").
// Reads nothing but the tables.
std::vector<std::string> CompletionCandidates(
    const std::vector<CommandSpec>& table, const std::vector<FlagSpec>& globals,
    const std::vector<std::string>& words);

// The script for `shell` to source or install: bash registers _voucherctl
// with `complete -o default`, zsh is a `#compdef voucherctl` function.
// "" for a shell not in ShellWords().
std::string CompletionScript(absl::string_view shell);

// `voucherctl __complete WORD...`: prints the CompletionCandidates of
// Commands() and GlobalFlags() for `words`, one a line. Returns exit code
// 0 whatever the words; it never reads the config file or calls a server.
int RunComplete(const std::vector<std::string>& words, std::ostream& out);

// Handler of `voucherctl completion SHELL`: prints CompletionScript(SHELL);
// InvalidArgument naming SHELL, the value and the choices for another.
absl::Status Completion(Context& c);

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_COMPLETION_H_
