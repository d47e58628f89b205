#include "common/flags.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/suggest.h"
#include "common/version.h"

namespace computevoucher {
namespace {

// The name as people type it: --data-dir for data_dir.
std::string Dashed(absl::string_view name) {
  return absl::StrCat("--", absl::StrReplaceAll(name, {{"_", "-"}}));
}

// This binary's own flags (not Abseil's), by name.
std::vector<absl::CommandLineFlag*> OwnFlags() {
  std::vector<absl::CommandLineFlag*> out;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::StrContains(flag->Filename(), "absl/")) out.push_back(flag);
  }
  std::sort(out.begin(), out.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  return out;
}

// What a flag's value is, for the help: none for a switch.
std::string ValueHint(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<bool>()) return "";
  if (flag.IsOfType<std::string>()) return " TEXT";
  if (flag.IsOfType<double>()) return " NUMBER";
  return " N";
}

void PrintHelp(const std::string& program) {
  std::string text = absl::StrCat(absl::ProgramUsageMessage(), "\nFlags:\n");
  for (const absl::CommandLineFlag* flag : OwnFlags()) {
    absl::StrAppend(&text, "  ", Dashed(flag->Name()), ValueHint(*flag),
                    "\n      ", flag->Help());
    const std::string def = flag->DefaultValue();
    if (!def.empty() && def != "0" && def != "false") {
      absl::StrAppend(&text, " (default ", def, ")");
    }
    absl::StrAppend(&text, "\n");
  }
  absl::StrAppend(&text, "  --help\n      show this help\n",
                  "  --version\n      show the version and git revision\n\n",
                  VersionLine(program), "\n");
  std::fputs(text.c_str(), stdout);
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
  for (const absl::CommandLineFlag* flag : OwnFlags()) {
    names.emplace_back(flag->Name());
  }
  if (const std::string nearest = Nearest(name, names); !nearest.empty()) {
    absl::StrAppend(&message, "; did you mean ", Dashed(nearest), "?");
  }
  UsageError(program, message);
}

}  // namespace

std::vector<std::string> ParseFlags(int argc, char** argv) {
  const std::string argv0 = argc > 0 ? argv[0] : "";
  const std::string program = argv0.substr(argv0.rfind('/') + 1);
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
      PrintHelp(program);
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
