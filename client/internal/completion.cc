#include "client/internal/completion.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "client/internal/commands.h"
#include "client/internal/render.h"
#include "client/internal/values.h"
#include "common/status_macros.h"

namespace computevoucher::client {
namespace {

using Words = std::vector<std::string>;

// Values voucherctl checks against a list of words: of a flag (`flag` set,
// any command) or of a command's first positional argument (`command`
// set). A data table.
struct ChoiceSource {
  const char* command;
  const char* flag;
  const Words& (*words)();
};
constexpr ChoiceSource kChoices[] = {
    {nullptr, "output", FormatWords},
    {nullptr, "encoding", EncodingWords},
    {"completion", nullptr, ShellWords},
};

const Words* FlagChoices(const FlagSpec& flag) {
  for (const ChoiceSource& source : kChoices) {
    if (source.flag != nullptr && flag.name == absl::string_view(source.flag)) {
      return &source.words();
    }
  }
  return nullptr;
}

const Words* PositionalChoices(absl::string_view path, size_t index) {
  for (const ChoiceSource& source : kChoices) {
    if (source.command != nullptr && path == source.command && index == 0) {
      return &source.words();
    }
  }
  return nullptr;
}

bool IsLeaf(const CommandSpec* command) {
  return command != nullptr && command->handler != nullptr;
}

// Where the words before the one being completed lead.
struct Position {
  const CommandSpec* command = nullptr;  // nullptr or "": the root
  std::string path;
  const FlagSpec* pending = nullptr;  // a flag whose value comes next
  size_t positionals = 0;
};

class Walker {
 public:
  Walker(const std::vector<CommandSpec>& table,
         const std::vector<FlagSpec>& globals)
      : table_(table), globals_(globals) {}

  // The position after `words`; nullopt after "--" or an unknown command.
  std::optional<Position> Walk(const Words& words) const {
    Position p;
    p.command = FindCommand(table_, "");
    for (size_t i = 0; i < words.size(); ++i) {
      const std::string& word = words[i];
      if (p.pending != nullptr) {
        p.pending = nullptr;
      } else if (word == "--") {
        return std::nullopt;
      } else if (word.size() > 1 && word[0] == '-') {
        const FlagWord flag_word = SplitFlagWord(word);
        const FlagSpec* flag = FindFlag(p.command, globals_, flag_word);
        if (flag != nullptr && flag->value != nullptr &&
            !flag_word.value.has_value()) {
          p.pending = flag;
        }
      } else if (i == 0 && word == "help") {
        // "voucherctl help admin" is "voucherctl admin --help".
      } else if (IsLeaf(p.command)) {
        ++p.positionals;
      } else {
        p.path = ChildPath(p.path, word);
        p.command = FindCommand(table_, p.path);
        if (p.command == nullptr) return std::nullopt;
      }
    }
    return p;
  }

  // The flags at `command`, as help spells them.
  Words FlagNames(const CommandSpec* command) const {
    Words names;
    const auto add = [&](const std::vector<FlagSpec>& flags) {
      for (const FlagSpec& f : flags) {
        if (f.shorthand != 0) names.push_back(std::string{'-', f.shorthand});
        names.push_back(absl::StrCat("--", f.name));
      }
    };
    if (IsLeaf(command)) add(command->flags);
    add(globals_);
    return names;
  }

  // Every candidate at `p` for `word`, before filtering by it.
  Words Candidates(const Position& p, absl::string_view word) const {
    if (p.pending != nullptr) {
      const Words* choices = FlagChoices(*p.pending);
      return choices != nullptr ? *choices : Words();
    }
    if (absl::StartsWith(word, "--") && absl::StrContains(word, '=')) {
      const FlagSpec* flag = FindFlag(p.command, globals_, SplitFlagWord(word));
      const Words* choices = flag != nullptr ? FlagChoices(*flag) : nullptr;
      Words all;
      if (choices == nullptr) return all;
      for (const std::string& choice : *choices) {
        all.push_back(absl::StrCat("--", flag->name, "=", choice));
      }
      return all;
    }
    if (absl::StartsWith(word, "-")) return FlagNames(p.command);
    if (!IsLeaf(p.command)) return ChildNames(table_, p.path);
    const Words* choices = PositionalChoices(p.path, p.positionals);
    return choices != nullptr ? *choices : Words();
  }

 private:
  const std::vector<CommandSpec>& table_;
  const std::vector<FlagSpec>& globals_;
};

// Both scripts pass the words after the program up to the cursor to
// `voucherctl __complete` and offer what it prints; nothing else.
constexpr absl::string_view kBashScript =
    R"bash(# bash completion for voucherctl. Load it with
#   source <(voucherctl completion bash)
# or install it as /usr/share/bash-completion/completions/voucherctl.
# The candidates come from voucherctl itself: voucherctl __complete WORD...
_voucherctl() {
  # Bash splits words at "=" and ":" too (COMP_WORDBREAKS): join
  # "--output", "=", "json" and "host", ":", "7443" again.
  local words=() word i join=0
  for ((i = 1; i <= COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ $word =~ ^[=:]+$ ]] && ((${#words[@]})); then
      words[-1]+=$word
      join=1
    elif ((join)); then
      words[-1]+=$word
      join=0
    else
      words+=("$word")
    fi
  done
  local cur=${COMP_WORDS[COMP_CWORD]}
  [[ $cur =~ ^[=:]+$ ]] && cur=
  # Bash replaces only what follows the "=" or ":": offer that part.
  local prefix=${words[-1]%"$cur"} candidate
  local IFS=$'\n' candidates=()
  for candidate in $("${COMP_WORDS[0]}" __complete "${words[@]}" 2>/dev/null); do
    [[ $candidate == "$prefix"* ]] && candidates+=("${candidate#"$prefix"}")
  done
  COMPREPLY=($(compgen -W "${candidates[*]}" -- "$cur"))
}
complete -o default -F _voucherctl voucherctl
)bash";

constexpr absl::string_view kZshScript = R"zsh(#compdef voucherctl
# zsh completion for voucherctl. Install it as _voucherctl in a directory
# of $fpath, or load it after compinit with
#   source <(voucherctl completion zsh)
# The candidates come from voucherctl itself: voucherctl __complete WORD...
_voucherctl() {
  local -a candidates
  candidates=(${(f)"$(${~words[1]} __complete "${(@Q)words[2,CURRENT]}" 2>/dev/null)"})
  if (( ${#candidates} )); then
    compadd -- "${candidates[@]}"
  else
    # A file argument, or the workload's command after "--".
    [[ ${words[CURRENT]} == --*=* ]] && compset -P '*='
    _files
  fi
}

if [[ ${funcstack[1]} == _voucherctl ]]; then
  _voucherctl "$@"
elif (( ${+functions[compdef]} )); then
  compdef _voucherctl voucherctl
fi
)zsh";

}  // namespace

const std::vector<std::string>& ShellWords() {
  static const auto* const kWords = new std::vector<std::string>{"bash", "zsh"};
  return *kWords;
}

std::vector<std::string> CompletionCandidates(
    const std::vector<CommandSpec>& table, const std::vector<FlagSpec>& globals,
    const std::vector<std::string>& words) {
  const std::string word = words.empty() ? "" : words.back();
  const Walker walker(table, globals);
  const std::optional<Position> position = walker.Walk(
      words.empty() ? Words() : Words(words.begin(), words.end() - 1));
  Words candidates;
  if (!position.has_value()) return candidates;
  for (std::string& candidate : walker.Candidates(*position, word)) {
    if (absl::StartsWith(candidate, word)) {
      candidates.push_back(std::move(candidate));
    }
  }
  return candidates;
}

std::string CompletionScript(absl::string_view shell) {
  if (shell == "bash") return std::string(kBashScript);
  if (shell == "zsh") return std::string(kZshScript);
  return "";
}

int RunComplete(const std::vector<std::string>& words, std::ostream& out) {
  for (const std::string& candidate :
       CompletionCandidates(Commands(), GlobalFlags(), words)) {
    out << candidate << "\n";
  }
  out.flush();
  return 0;
}

absl::Status Completion(Context& c) {
  const std::string& shell = c.args.positionals().at(0);
  RETURN_IF_ERROR(CheckChoiceArg("SHELL", shell, ShellWords()));
  c.printer.out() << CompletionScript(shell);
  return absl::OkStatus();
}

}  // namespace computevoucher::client
