#include "common/flags.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/suggest.h"
#include "common/version.h"

namespace computevoucher {
namespace {

// The name as people type it: --data-dir for data_dir.
std::string Dashed(absl::string_view name) {
  return absl::StrCat("--", absl::StrReplaceAll(name, {{"_", "-"}}));
}

// The groups CV_FLAG gave, by flag name; filled before main.
std::map<std::string, std::string>& Groups() {
  static auto* groups = new std::map<std::string, std::string>;
  return *groups;
}

bool ByName(const FlagHelp& a, const FlagHelp& b) { return a.name < b.name; }

// What a flag's value is, for the help: none for a switch.
std::string ValueWord(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<bool>()) return "";
  if (flag.IsOfType<std::string>()) return "TEXT";
  if (flag.IsOfType<double>()) return "NUMBER";
  return "N";
}

// Whether each flag is in one of `groups` and each group holds a flag.
absl::Status CheckGroups(absl::Span<const absl::string_view> groups,
                         const std::vector<FlagHelp>& flags) {
  for (const FlagHelp& flag : flags) {
    if (absl::c_linear_search(groups, flag.group)) continue;
    if (flag.group.empty()) {
      return absl::InternalError(
          absl::StrCat("flag ", Dashed(flag.name),
                       " has no group for --help: define it with CV_FLAG"));
    }
    return absl::InternalError(
        absl::StrCat("flag ", Dashed(flag.name), ": group \"", flag.group,
                     "\" is not one of the binary's (ParseFlags)"));
  }
  for (absl::string_view group : groups) {
    if (absl::c_count(groups, group) > 1) {
      return absl::InternalError(
          absl::StrCat("group \"", group, "\" is named twice"));
    }
    // The unnamed group of a binary that names none may be empty.
    if (!group.empty() && absl::c_none_of(flags, [&](const FlagHelp& f) {
          return f.group == group;
        })) {
      return absl::InternalError(
          absl::StrCat("group \"", group, "\" has no flags"));
    }
  }
  return absl::OkStatus();
}

// `flag` as --help lists it: as people type it, then its help and default.
std::string Entry(const FlagHelp& flag) {
  std::string text =
      absl::StrCat("  ", Dashed(flag.name), flag.value_word.empty() ? "" : " ",
                   flag.value_word, "\n      ", flag.help);
  const std::string& def = flag.default_value;
  if (!def.empty() && def != "0" && def != "false") {
    absl::StrAppend(&text, " (default ", def, ")");
  }
  return absl::StrCat(text, "\n");
}

// The help text for `groups`; a programming error of the binary (a flag
// without a group) is said and aborts.
std::string HelpOrAbort(const std::string& program,
                        absl::Span<const absl::string_view> groups) {
  absl::StatusOr<std::string> help =
      HelpText(program, absl::ProgramUsageMessage(), groups, OwnFlags());
  if (!help.ok()) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(),
                 std::string(help.status().message()).c_str());
    std::abort();
  }
  return *std::move(help);
}

[[noreturn]] void UsageError(const std::string& program,
                             const std::string& message) {
  std::fprintf(stderr, "%s: %s\nRun '%s --help' for the flags.\n",
               program.c_str(), message.c_str(), program.c_str());
  std::exit(2);
}

[[noreturn]] void UnknownFlag(const std::string& program,
                              absl::string_view name) {
  std::string message = absl::StrCat("unknown flag ", Dashed(name));
  std::vector<std::string> names;
  for (const FlagHelp& flag : OwnFlags()) names.push_back(flag.name);
  if (const std::string nearest = Nearest(name, names); !nearest.empty()) {
    absl::StrAppend(&message, "; did you mean ", Dashed(nearest), "?");
  }
  UsageError(program, message);
}

}  // namespace

namespace flags_internal {
GroupOf::GroupOf(const char* name, const char* group) {
  Groups()[name] = group;
}
}  // namespace flags_internal

absl::StatusOr<std::string> HelpText(absl::string_view program,
                                     absl::string_view usage,
                                     absl::Span<const absl::string_view> groups,
                                     std::vector<FlagHelp> flags) {
  static constexpr absl::string_view kUngrouped[] = {""};
  if (groups.empty()) groups = kUngrouped;
  std::sort(flags.begin(), flags.end(), ByName);
  RETURN_IF_ERROR(CheckGroups(groups, flags));
  std::string text(usage);
  for (absl::string_view group : groups) {
    absl::StrAppend(&text, "\n", group.empty() ? "Flags" : group, ":\n");
    for (const FlagHelp& flag : flags) {
      if (flag.group == group) absl::StrAppend(&text, Entry(flag));
    }
  }
  absl::StrAppend(&text, "\nHelp and version:\n",
                  "  --help\n      show this help\n",
                  "  --version\n      show the version and git revision\n\n",
                  VersionLine(std::string(program)), "\n");
  return text;
}

std::vector<FlagHelp> OwnFlags() {
  std::vector<FlagHelp> out;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::StrContains(flag->Filename(), "absl/")) continue;
    const auto group = Groups().find(std::string(name));
    out.push_back({std::string(name),
                   group == Groups().end() ? "" : group->second,
                   ValueWord(*flag), flag->Help(), flag->DefaultValue()});
  }
  std::sort(out.begin(), out.end(), ByName);
  return out;
}

std::vector<std::string> ParseFlags(
    int argc, char** argv, absl::Span<const absl::string_view> groups) {
  const std::string argv0 = argc > 0 ? argv[0] : "";
  const std::string program = argv0.substr(argv0.rfind('/') + 1);
  const std::string help = HelpOrAbort(program, groups);
  std::vector<std::string> positional = {argv0};
  bool positional_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (positional_only || arg.size() < 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      positional_only = true;
      continue;
    }
    // --name, --name=value or --name value; -name too; dashes or
    // underscores in the name.
    const size_t start = arg.find_first_not_of('-');
    if (start == std::string::npos) {
      UsageError(program, absl::StrCat("\"", arg, "\" is not a flag"));
    }
    const absl::string_view body = absl::string_view(arg).substr(start);
    const size_t eq = body.find('=');
    std::string name = absl::StrReplaceAll(body.substr(0, eq), {{"-", "_"}});
    const bool has_value = eq != absl::string_view::npos;
    std::string value = has_value ? std::string(body.substr(eq + 1)) : "";
    if (name == "help" || name == "h" || name == "helpfull") {
      std::fputs(help.c_str(), stdout);
      std::exit(0);
    }
    if (name == "version") {
      std::printf("%s\n", VersionLine(program).c_str());
      std::exit(0);
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && !has_value) {
      // --noswitch, or --no-switch.
      flag = absl::FindCommandLineFlag(
          absl::StripPrefix(absl::string_view(name).substr(2), "_"));
      if (flag == nullptr || !flag->IsOfType<bool>())
        UnknownFlag(program, name);
      value = "false";
    } else if (flag == nullptr) {
      UnknownFlag(program, name);
    } else if (!has_value && flag->IsOfType<bool>()) {
      value = "true";
    } else if (!has_value) {
      if (i + 1 >= argc) {
        UsageError(program, absl::StrCat(Dashed(name), ": needs a value"));
      }
      value = argv[++i];
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      UsageError(program, absl::StrCat(Dashed(flag->Name()), ": \"", value,
                                       "\" is not valid: ", error));
    }
  }
  return positional;
}

}  // namespace computevoucher
