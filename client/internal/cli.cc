#include "client/internal/cli.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/internal/values.h"
#include "common/status_macros.h"
#include "common/suggest.h"

namespace computevoucher::client {
namespace {

std::string Program(absl::string_view path) {
  return path.empty() ? "voucherctl" : absl::StrCat("voucherctl ", path);
}

std::vector<std::string> Words(absl::string_view text) {
  return absl::StrSplit(text, ' ', absl::SkipEmpty());
}

}  // namespace

const CommandSpec* FindCommand(const std::vector<CommandSpec>& table,
                               absl::string_view path) {
  for (const CommandSpec& command : table) {
    if (command.path == path) return &command;
  }
  return nullptr;
}

std::string ChildPath(absl::string_view path, absl::string_view word) {
  return path.empty() ? std::string(word) : absl::StrCat(path, " ", word);
}

std::vector<const CommandSpec*> ChildCommands(
    const std::vector<CommandSpec>& table, absl::string_view path) {
  std::vector<const CommandSpec*> children;
  for (const CommandSpec& command : table) {
    absl::string_view p = command.path;
    if (!path.empty() && !absl::ConsumePrefix(&p, absl::StrCat(path, " "))) {
      continue;
    }
    if (!p.empty() && !absl::StrContains(p, ' ')) children.push_back(&command);
  }
  return children;
}

std::string LastWord(absl::string_view path) {
  const size_t space = path.rfind(' ');
  return std::string(space == absl::string_view::npos ? path
                                                      : path.substr(space + 1));
}

std::vector<std::string> ChildNames(const std::vector<CommandSpec>& table,
                                    absl::string_view path) {
  std::vector<std::string> names;
  for (const CommandSpec* child : ChildCommands(table, path)) {
    names.push_back(LastWord(child->path));
  }
  return names;
}

FlagWord SplitFlagWord(absl::string_view word) {
  FlagWord out;
  out.shorthand = !absl::StartsWith(word, "--");
  out.name = word.substr(out.shorthand ? 1 : 2);
  if (const size_t eq = out.name.find('='); eq != absl::string_view::npos) {
    out.value = std::string(out.name.substr(eq + 1));
    out.name = out.name.substr(0, eq);
  } else if (out.shorthand && out.name.size() > 1) {
    out.value = std::string(out.name.substr(1));  // -ojson
    out.name = out.name.substr(0, 1);
  }
  return out;
}

const FlagSpec* FindFlag(const CommandSpec* command,
                         const std::vector<FlagSpec>& globals,
                         const FlagWord& word) {
  const auto matches = [&](const FlagSpec& f) {
    return word.shorthand ? word.name.size() == 1 && f.shorthand == word.name[0]
                          : word.name == f.name;
  };
  if (command != nullptr) {
    for (const FlagSpec& f : command->flags) {
      if (matches(f)) return &f;
    }
  }
  for (const FlagSpec& f : globals) {
    if (matches(f)) return &f;
  }
  return nullptr;
}

bool Args::Has(absl::string_view flag) const {
  return values_.find(flag) != values_.end();
}

std::string Args::Value(absl::string_view flag) const {
  const auto it = values_.find(flag);
  return it == values_.end() ? "" : it->second;
}

absl::StatusOr<int64_t> Args::Amount(absl::string_view flag) const {
  return ParseAmountArg(absl::StrCat("--", flag), Value(flag));
}

absl::StatusOr<int64_t> Args::Count(absl::string_view flag, int64_t min,
                                    int64_t max) const {
  return ParseCountArg(absl::StrCat("--", flag), Value(flag), min, max);
}

absl::StatusOr<absl::CivilDay> Args::Date(absl::string_view flag) const {
  return ParseDateArg(absl::StrCat("--", flag), Value(flag));
}

absl::StatusOr<std::string> Args::Id(absl::string_view flag) const {
  return ParseIdArg(absl::StrCat("--", flag), Value(flag));
}

absl::Status Args::OptionalId(absl::string_view flag, std::string* out) const {
  if (!Has(flag)) return absl::OkStatus();
  ASSIGN_OR_RETURN(*out, Id(flag));
  return absl::OkStatus();
}

absl::StatusOr<std::string> Args::PositionalId(size_t index) const {
  // Counted by the parser, except under --help (which runs no handler).
  if (index >= positionals_.size() || index >= positional_names_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("argument ", index + 1, ": not expected here"));
  }
  return ParseIdArg(positional_names_[index], positionals_[index]);
}

class Parser {
 public:
  Parser(const std::vector<CommandSpec>& table,
         const std::vector<FlagSpec>& globals)
      : table_(table), globals_(globals) {}

  absl::StatusOr<Invocation> Parse(const std::vector<std::string>& argv,
                                   std::string* path) {
    Invocation inv;
    bool after_dashes = false;
    for (size_t i = 0; i < argv.size(); ++i) {
      const std::string& token = argv[i];
      if (after_dashes) {
        inv.args.rest_.push_back(token);
      } else if (token == "--") {
        if (inv.command == nullptr || inv.command->rest == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(
              Program(inv.path), " takes no arguments after \"--\""));
        }
        after_dashes = true;
      } else if (token.size() > 1 && token[0] == '-') {
        if (absl::Status s = Flag(inv, argv, &i); !s.ok()) return s;
      } else if (inv.command != nullptr && inv.command->handler != nullptr) {
        inv.args.positionals_.push_back(token);
      } else {
        const std::string next = ChildPath(inv.path, token);
        inv.command = FindCommand(table_, next);
        if (inv.command == nullptr) return UnknownCommand(inv.path, token);
        inv.path = next;
        *path = next;
      }
    }
    if (inv.args.Has("help") || inv.command == nullptr ||
        inv.command->handler == nullptr) {
      return inv;
    }
    inv.args.positional_names_ = Words(inv.command->positionals);
    const std::vector<std::string>& names = inv.args.positional_names_;
    const std::vector<std::string>& given = inv.args.positionals_;
    if (given.size() < names.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          Program(inv.path), ": missing argument ", names[given.size()]));
    }
    if (given.size() > names.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Program(inv.path), ": unexpected argument \"",
                       given[names.size()], "\""));
    }
    for (const FlagSpec& flag : inv.command->flags) {
      if (flag.required && !inv.args.Has(flag.name)) {
        return absl::InvalidArgumentError(
            absl::StrCat(Program(inv.path), ": missing required flag --",
                         flag.name, " ", flag.value, " (", flag.help, ")"));
      }
    }
    return inv;
  }

 private:
  absl::Status Flag(Invocation& inv, const std::vector<std::string>& argv,
                    size_t* i) const {
    FlagWord word = SplitFlagWord(argv[*i]);
    std::optional<std::string>& value = word.value;
    const FlagSpec* flag = FindFlag(inv.command, globals_, word);
    const std::string shown =
        absl::StrCat(word.shorthand ? "-" : "--", word.name);
    if (flag == nullptr) return UnknownFlag(inv, shown);
    if (flag->value == nullptr) {
      if (value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(
            shown, ": is a switch and takes no value, got \"", *value, "\""));
      }
      inv.args.values_[flag->name] = "true";
      return absl::OkStatus();
    }
    if (!value.has_value()) {
      if (*i + 1 >= argv.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            shown, ": needs a value (", flag->value, ": ", flag->help, ")"));
      }
      value = argv[++*i];
    }
    inv.args.values_[flag->name] = *value;
    return absl::OkStatus();
  }

  absl::Status UnknownCommand(const std::string& path,
                              absl::string_view word) const {
    const std::string nearest = Nearest(word, ChildNames(table_, path));
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown command \"", word, "\" for \"", Program(path), "\"",
        nearest.empty() ? ""
                        : absl::StrCat("; did you mean \"", nearest, "\"?")));
  }

  // "unknown flag --x", with the nearest flag of the command or the
  // global ones.
  absl::Status UnknownFlag(const Invocation& inv,
                           const std::string& shown) const {
    std::vector<std::string> names;
    if (inv.command != nullptr) {
      for (const FlagSpec& f : inv.command->flags) names.push_back(f.name);
    }
    for (const FlagSpec& f : globals_) names.push_back(f.name);
    const std::string nearest =
        Nearest(absl::StripPrefix(absl::StripPrefix(shown, "-"), "-"), names);
    return absl::InvalidArgumentError(absl::StrCat(
        Program(inv.path), ": unknown flag ", shown,
        nearest.empty() ? ""
                        : absl::StrCat("; did you mean --", nearest, "?")));
  }

  const std::vector<CommandSpec>& table_;
  const std::vector<FlagSpec>& globals_;
};

absl::StatusOr<Invocation> ParseCommandLine(
    const std::vector<CommandSpec>& table, const std::vector<FlagSpec>& globals,
    const std::vector<std::string>& argv, std::string* path) {
  path->clear();
  return Parser(table, globals).Parse(argv, path);
}

namespace {

void AppendFlags(const std::vector<FlagSpec>& flags, std::string* out) {
  std::vector<std::pair<std::string, std::string>> lines;
  size_t width = 0;
  for (const FlagSpec& f : flags) {
    std::string left =
        f.shorthand != 0
            ? absl::StrCat("  -", std::string(1, f.shorthand), ", --", f.name)
            : absl::StrCat("      --", f.name);
    if (f.value != nullptr) absl::StrAppend(&left, " ", f.value);
    width = std::max(width, left.size());
    lines.emplace_back(std::move(left),
                       absl::StrCat(f.help, f.required ? " (required)" : ""));
  }
  for (const auto& [left, help] : lines) {
    absl::StrAppend(out, left, std::string(width - left.size() + 3, ' '), help,
                    "\n");
  }
}

void AppendCommandList(const std::vector<const CommandSpec*>& commands,
                       size_t prefix, std::string* out) {
  size_t width = 0;
  for (const CommandSpec* c : commands) {
    width = std::max(width, std::string(c->path).size() - prefix);
  }
  for (const CommandSpec* c : commands) {
    const std::string name = std::string(c->path).substr(prefix);
    absl::StrAppend(out, "  ", name, std::string(width - name.size() + 3, ' '),
                    c->summary, "\n");
  }
}

}  // namespace

std::string HelpText(const std::vector<CommandSpec>& table,
                     const std::vector<FlagSpec>& globals,
                     const std::string& path) {
  const CommandSpec* command = FindCommand(table, path);
  std::string out;
  if (path.empty()) {
    absl::StrAppend(&out, command != nullptr ? command->summary : "",
                    "\n\nUsage:\n  voucherctl COMMAND [flags]\n\nCommands:\n");
    std::vector<const CommandSpec*> leaves;
    for (const CommandSpec& c : table) {
      if (c.handler != nullptr) leaves.push_back(&c);
    }
    AppendCommandList(leaves, 0, &out);
  } else if (command->handler == nullptr) {
    absl::StrAppend(&out, command->summary, "\n\nUsage:\n  ", Program(path),
                    " COMMAND [flags]\n\nCommands:\n");
    AppendCommandList(ChildCommands(table, path), path.size() + 1, &out);
  } else {
    absl::StrAppend(&out, command->summary, "\n\nUsage:\n  ", Program(path));
    for (const FlagSpec& f : command->flags) {
      if (f.required) absl::StrAppend(&out, " --", f.name, " ", f.value);
    }
    for (const std::string& name : Words(command->positionals)) {
      absl::StrAppend(&out, " ", name);
    }
    absl::StrAppend(&out, " [flags]");
    if (command->rest != nullptr) {
      absl::StrAppend(&out, " [-- ", command->rest, "]");
    }
    absl::StrAppend(&out, "\n");
    if (!command->flags.empty()) {
      absl::StrAppend(&out, "\nFlags:\n");
      AppendFlags(command->flags, &out);
    }
  }
  absl::StrAppend(&out, "\nGlobal flags:\n");
  AppendFlags(globals, &out);
  if (command != nullptr && command->handler != nullptr) {
    absl::StrAppend(&out, "\nExample:\n");
    for (absl::string_view line : absl::StrSplit(command->example, '\n')) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  } else {
    absl::StrAppend(&out, "\nRun '", Program(path),
                    " COMMAND --help' for more about a command.\n");
  }
  return out;
}

}  // namespace computevoucher::client
