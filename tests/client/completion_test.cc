// Shell completion through the real binaries: the built voucherctl's
// hidden `__complete`, `voucherctl completion SHELL`, and its scripts run
// by real bash and zsh (zsh skipped when not installed), each in an
// environment of only PATH, HOME and XDG_CONFIG_HOME in a fresh folder.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher {
namespace {

using ::computevoucher::testing::BuildDir;
using ::computevoucher::testing::TempDir;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;
using Lines = std::vector<std::string>;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
  Lines lines() const { return absl::StrSplit(out, '\n', absl::SkipEmpty()); }
};

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.exit_code << "\nstdout:\n"
            << r.out << "stderr:\n"
            << r.err;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Words as a shell array literal: ('a' 'b' '').
std::string ShellArray(const Lines& words) {
  std::vector<std::string> quoted;
  for (const std::string& w : words) {
    quoted.push_back(
        absl::StrCat("'", absl::StrReplaceAll(w, {{"'", "'\\''"}}), "'"));
  }
  return absl::StrCat("(", absl::StrJoin(quoted, " "), ")");
}

class CompletionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(testing::MakeTempDir("completion", temp_));
    dir_ = temp_.path();
    // A config file voucherctl could not use: completion must not read it.
    std::filesystem::create_directories(dir_ + "/config/voucherctl");
    std::ofstream(dir_ + "/config/voucherctl/config") << "endpoint: {{{\n";
  }

  // Runs `argv` (argv[0] looked up in PATH: voucherctl's folder first).
  Result Run(const Lines& argv) {
    const std::string n = std::to_string(++runs_);
    const std::string out = dir_ + "/out." + n, err = dir_ + "/err." + n;
    Lines env = {absl::StrCat("PATH=", BuildDir(), "/client:/usr/bin:/bin"),
                 absl::StrCat("HOME=", dir_, "/home"),
                 absl::StrCat("XDG_CONFIG_HOME=", dir_, "/config")};
    const std::string program = argv[0] == "voucherctl"
                                    ? BuildDir() + "/client/voucherctl"
                                    : absl::StrCat("/usr/bin/", argv[0]);
    Lines args = argv;
    args[0] = program;
    Result r;
    r.exit_code = testing::RunToFiles(std::move(args), std::move(env),
                                      "/dev/null", out, err);
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }

  Result Complete(Lines words) {
    words.insert(words.begin(), {"voucherctl", "__complete"});
    return Run(words);
  }

  // Writes `voucherctl completion shell` to a file; returns its path.
  std::string Script(const std::string& shell) {
    const Result r = Run({"voucherctl", "completion", shell});
    EXPECT_EQ(r.exit_code, 0) << r;
    const std::string path = dir_ + "/" + shell + ".completion";
    std::ofstream(path) << r.out;
    return path;
  }

  TempDir temp_;
  std::string dir_;
  int runs_ = 0;
};

// The words after "voucherctl" up to the cursor, and what __complete says.
struct Case {
  Lines words;
  Lines expected;
};

TEST_F(CompletionTest, CompleteOffersWhatTheCommandTableKnows) {
  const Case cases[] = {
      {{"adm"}, {"admin"}},
      {{"admin", "vo"}, {"voucher"}},
      {{"admin", "voucher", "iss"}, {"issue", "issue-batch"}},
      {{"help", "admin", "vo"}, {"voucher"}},
      {{"allocate", "--g"}, {"--gpus"}},
      {{"allocate", "--gpus", "2", "--h"}, {"--hours", "--help"}},
      {{"allocate", "--gpus=2", "--ho"}, {"--hours"}},
      {{"--endpoint", "host:7443", "-o", "json", "adm"}, {"admin"}},
      {{"-ojson", "admin", "vo"}, {"voucher"}},
      {{"admin", "voucher", "issue", "--prog"}, {"--program"}},
      {{"allocate", "-o", "j"}, {"json"}},
      {{"--output=c"}, {"--output=csv"}},
      {{"quote", "--encoding", ""}, {"utf-8", "utf-8-bom", "gb18030"}},
      {{"completion", ""}, {"bash", "zsh"}},
      {{"completion", "z"}, {"zsh"}},
      // Nothing: a file name, a value without a list, the workload's
      // command, an unknown command, input that makes no sense.
      {{"admin", "enterprise", "import", ""}, {}},
      {{"allocate", "--tls-ca", ""}, {}},
      {{"allocate", "--gpus", ""}, {}},
      {{"allocate", "--gpus", "2", "--", ""}, {}},
      {{"allocate", "--", "python", "-"}, {}},
      {{"nosuch", ""}, {}},
      {{"admin", "nosuch", "--"}, {}},
      {{"--output=", "--nosuch=", "=", ""}, {}},
  };
  for (const Case& c : cases) {
    const Result r = Complete(c.words);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(c.words, " ") << "\n" << r;
    EXPECT_EQ(r.err, "") << absl::StrJoin(c.words, " ");
    EXPECT_THAT(r.lines(), ElementsAreArray(c.expected))
        << absl::StrJoin(c.words, " ") << "\n"
        << r;
  }
}

TEST_F(CompletionTest, CompleteListsCommandsFlagsAndFormatsAsHelpSpellsThem) {
  const Lines top = Complete({""}).lines();
  EXPECT_THAT(top, IsSupersetOf({"apply", "allocate", "admin", "completion",
                                 "version", "whoami", "login"}));
  EXPECT_THAT(top, Not(Contains("__complete")));
  EXPECT_THAT(top, Not(Contains("admin voucher")));
  EXPECT_EQ(Complete({}).lines(), top);

  const Lines flags = Complete({"allocate", "-"}).lines();
  EXPECT_THAT(flags, IsSupersetOf({"--model", "--gpus", "--hours", "--voucher",
                                   "-o", "--output", "--endpoint", "-h",
                                   "--help", "--request-id"}));
  // A group takes only the global flags.
  EXPECT_THAT(Complete({"admin", "--"}).lines(),
              AllOf(Contains("--endpoint"), Not(Contains("--gpus"))));

  // Every -o format voucherctl accepts (the list it checks -o against).
  const Lines formats = Complete({"-o", ""}).lines();
  EXPECT_THAT(formats, IsSupersetOf({"table", "json", "csv", "wide"}));
  for (const std::string& format : formats) {
    const Result r = Run({"voucherctl", "-o", format, "version"});
    EXPECT_EQ(r.exit_code, 0) << format << "\n" << r;
  }
  EXPECT_EQ(Run({"voucherctl", "-o", "nosuch", "version"}).exit_code, 2);
}

TEST_F(CompletionTest, HelpShowsCompletionButNotTheHiddenEntryPoint) {
  const Result root = Run({"voucherctl", "--help"});
  EXPECT_THAT(root.out,
              AllOf(HasSubstr("completion"), Not(HasSubstr("__complete"))));
  const Result help = Run({"voucherctl", "completion", "--help"});
  EXPECT_EQ(help.exit_code, 0) << help;
  EXPECT_THAT(help.out, AllOf(HasSubstr("voucherctl completion SHELL"),
                              HasSubstr("source <(voucherctl completion bash)"),
                              HasSubstr("_voucherctl")));
}

TEST_F(CompletionTest, MistypedShellIsAUsageError) {
  const Result r = Run({"voucherctl", "completion", "fish"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err,
              AllOf(HasSubstr("SHELL: must be one of bash, zsh, got \"fish\""),
                    HasSubstr("Run 'voucherctl completion --help'")));
  EXPECT_EQ(Run({"voucherctl", "completion"}).exit_code, 2);
}

TEST_F(CompletionTest, ScriptsAreThinAndWorkWithABrokenConfigFile) {
  const Result bash = Run({"voucherctl", "completion", "bash"});
  EXPECT_EQ(bash.exit_code, 0) << bash;
  EXPECT_THAT(bash.out,
              AllOf(HasSubstr("__complete"),
                    HasSubstr("complete -o default -F _voucherctl voucherctl"),
                    Not(HasSubstr("admin"))));
  const Result zsh = Run({"voucherctl", "completion", "zsh"});
  EXPECT_EQ(zsh.exit_code, 0) << zsh;
  EXPECT_EQ(zsh.out.rfind("#compdef voucherctl\n", 0), 0u) << zsh.out;
  EXPECT_THAT(zsh.out, AllOf(HasSubstr("__complete"), HasSubstr("compadd"),
                             HasSubstr("_files"), Not(HasSubstr("admin"))));
}

// COMP_WORDS as bash splits them, COMP_CWORD, and the COMPREPLY expected.
struct BashCase {
  Lines comp_words;
  Lines expected;
};

TEST_F(CompletionTest, BashCompletesThroughTheBinary) {
  const std::string script = Script("bash");
  const BashCase cases[] = {
      {{"voucherctl", "adm"}, {"admin"}},
      {{"voucherctl", "admin", "vo"}, {"voucher"}},
      {{"voucherctl", "allocate", "--gp"}, {"--gpus"}},
      {{"voucherctl", "allocate", "--gpus", "2", "-o", "j"}, {"json"}},
      {{"voucherctl", "completion", ""}, {"bash", "zsh"}},
      // "--output=c" and "--endpoint=h:1" as bash splits them at = and :.
      {{"voucherctl", "--output", "=", "c"}, {"csv"}},
      {{"voucherctl", "--encoding", "=", ""},
       {"utf-8", "utf-8-bom", "gb18030"}},
      {{"voucherctl", "--endpoint", "=", "h", ":", "1", "adm"}, {"admin"}},
      {{"voucherctl", "allocate", "--gpus", "2", "--", ""}, {}},
      {{"voucherctl", "allocate", "--", "python", "--"}, {}},
  };
  for (const BashCase& c : cases) {
    const std::string code =
        absl::StrCat("source ", script, " || exit 9\n",
                     "COMP_WORDS=", ShellArray(c.comp_words),
                     "\nCOMP_CWORD=", c.comp_words.size() - 1,
                     "\n_voucherctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n");
    const Result r = Run({"bash", "--norc", "--noprofile", "-c", code});
    EXPECT_EQ(r.exit_code, 0) << code << r;
    EXPECT_EQ(r.err, "") << code;
    Lines got = r.lines();
    std::sort(got.begin(), got.end());
    Lines expected = c.expected;
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(got, expected) << code << r;
  }
  // The top level and the flags of allocate, as sets.
  const auto reply = [&](const Lines& words) {
    return Run({"bash", "--norc", "--noprofile", "-c",
                absl::StrCat("source ", script,
                             "\nCOMP_WORDS=", ShellArray(words),
                             "\nCOMP_CWORD=", words.size() - 1,
                             "\n_voucherctl\nprintf '%s\\n' "
                             "\"${COMPREPLY[@]}\"\n")})
        .lines();
  };
  EXPECT_THAT(reply({"voucherctl", ""}),
              IsSupersetOf({"admin", "allocate", "completion", "version"}));
  EXPECT_THAT(reply({"voucherctl", "allocate", "-"}),
              IsSupersetOf({"--gpus", "--hours", "-o", "--output"}));
  EXPECT_THAT(reply({"voucherctl", "allocate", "-o", ""}),
              IsSupersetOf({"table", "json", "csv", "wide"}));
  const Result spec =
      Run({"bash", "--norc", "--noprofile", "-c",
           absl::StrCat("source ", script, "\ncomplete -p voucherctl")});
  EXPECT_THAT(spec.out, HasSubstr("complete -o default -F _voucherctl"));
}

// `words` and CURRENT as zsh sets them, and what _voucherctl does with
// compadd, compset and _files stubbed (functions come before builtins).
struct ZshCase {
  Lines words;
  Lines expected;
};

TEST_F(CompletionTest, ZshCompletesThroughTheBinary) {
  if (Run({"zsh", "-fc", "true"}).exit_code != 0) {
    GTEST_SKIP() << "zsh is not installed (scripts/setup.sh installs it)";
  }
  const std::string script = Script("zsh");
  const std::string fpath_dir = dir_ + "/zfunc";
  std::filesystem::create_directories(fpath_dir);
  std::filesystem::copy_file(script, fpath_dir + "/_voucherctl");
  const ZshCase cases[] = {
      {{"voucherctl", "adm"}, {"compadd -- admin"}},
      {{"voucherctl", "admin", "vo"}, {"compadd -- voucher"}},
      {{"voucherctl", "allocate", "--gp"}, {"compadd -- --gpus"}},
      {{"voucherctl", "allocate", "-o", "c"}, {"compadd -- csv"}},
      {{"voucherctl", "--output=j"}, {"compadd -- --output=json"}},
      {{"voucherctl", "completion", ""}, {"compadd -- bash zsh"}},
      {{"voucherctl", "admin", "enterprise", "import", ""}, {"_files"}},
      {{"voucherctl", "--tls-ca=/e"}, {"compset -P *=", "_files"}},
      {{"voucherctl", "allocate", "--gpus", "2", "--", ""}, {"_files"}},
  };
  const std::string stubs =
      "compadd() { print -r -- \"compadd $*\" }\n"
      "compset() { print -r -- \"compset $*\" }\n"
      "_files() { print -r -- _files }\n";
  for (const ZshCase& c : cases) {
    const std::string set = absl::StrCat("words=", ShellArray(c.words),
                                         "\nCURRENT=", c.words.size(), "\n");
    // Sourced, as `source <(voucherctl completion zsh)` does, and
    // autoloaded from $fpath, as an installed _voucherctl is.
    for (const std::string& load :
         {absl::StrCat("source ", script, " || exit 9\n_voucherctl\n"),
          absl::StrCat("fpath=(", fpath_dir, " $fpath)\n",
                       "autoload -Uz _voucherctl\n_voucherctl\n")}) {
      const std::string code = absl::StrCat(stubs, set, load);
      const Result r = Run({"zsh", "-f", "-c", code});
      EXPECT_EQ(r.exit_code, 0) << code << r;
      EXPECT_EQ(r.err, "") << code;
      EXPECT_THAT(r.lines(), ElementsAreArray(c.expected)) << code << r;
    }
  }
  const Result formats = Run(
      {"zsh", "-f", "-c",
       absl::StrCat(stubs, "source ", script,
                    "\nwords=(voucherctl -o '')\nCURRENT=3\n_voucherctl\n")});
  EXPECT_THAT(formats.out, HasSubstr("compadd -- table json csv wide"))
      << formats;
}

}  // namespace
}  // namespace computevoucher
