// The servers' command lines (common/flags.h): --help lists the flags under
// their groups in the binary's order, a flag outside the groups is a
// programming error, and flags take the spellings people type.
#include "common/flags.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace {
constexpr char kWords[] = "Words";
constexpr char kNumbers[] = "Numbers and switches";
}  // namespace

CV_FLAG(kWords, std::string, test_word, "", "a word");
CV_FLAG(kWords, std::string, test_colour, "blue", "a colour");
CV_FLAG(kNumbers, int64_t, test_count, 0, "how many");
CV_FLAG(kNumbers, double, test_ratio, 0.5, "how much");
CV_FLAG(kNumbers, bool, test_switch, false, "whether");

namespace computevoucher {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::string_view kGroups[] = {kWords, kNumbers};

constexpr char kHelpAndVersion[] =
    "\nHelp and version:\n"
    "  --help\n      show this help\n"
    "  --version\n      show the version and git revision\n\n";

FlagHelp Flag(const std::string& name, const std::string& group,
              const std::string& value_word = "TEXT",
              const std::string& default_value = "") {
  return FlagHelp{name, group, value_word, "what " + name + " is",
                  default_value};
}

TEST(HelpText, ListsTheGroupsInTheirOrderAndTheFlagsByName) {
  const absl::StatusOr<std::string> help =
      HelpText("tool", "usage: tool\n", {"Second", "First"},
               {Flag("zeta", "First"), Flag("alpha_beta", "Second", "N", "7"),
                Flag("on", "Second", "", "false"),
                Flag("alpha", "First", "NUMBER", "0")});
  ASSERT_THAT(help, IsOk());
  EXPECT_EQ(*help, absl::StrCat("usage: tool\n"
                                "\nSecond:\n"
                                "  --alpha-beta N\n"
                                "      what alpha_beta is (default 7)\n"
                                "  --on\n"
                                "      what on is\n"
                                "\nFirst:\n"
                                "  --alpha NUMBER\n"
                                "      what alpha is\n"
                                "  --zeta TEXT\n"
                                "      what zeta is\n",
                                kHelpAndVersion, VersionLine("tool"), "\n"));
}

TEST(HelpText, ABinaryThatNamesNoGroupsListsItsFlagsUnderFlags) {
  const absl::StatusOr<std::string> help =
      HelpText("bench", "usage\n", {}, {Flag("b", ""), Flag("a", "")});
  ASSERT_THAT(help, IsOk());
  EXPECT_EQ(*help, absl::StrCat("usage\n\nFlags:\n"
                                "  --a TEXT\n      what a is\n"
                                "  --b TEXT\n      what b is\n",
                                kHelpAndVersion, VersionLine("bench"), "\n"));
}

TEST(HelpText, AFlagOutsideTheGroupsIsAProgrammingError) {
  struct Case {
    std::vector<absl::string_view> groups;
    std::vector<FlagHelp> flags;
    std::string message;
  };
  const Case cases[] = {
      {{"A"},
       {Flag("a", "A"), Flag("plain_flag", "")},
       "flag --plain-flag has no group for --help: define it with CV_FLAG"},
      {{"A"},
       {Flag("a", "A"), Flag("lost", "B")},
       "flag --lost: group \"B\" is not one of the binary's (ParseFlags)"},
      {{}, {Flag("a", "A")}, "flag --a: group \"A\" is not one of"},
      {{"A", "Empty"}, {Flag("a", "A")}, "group \"Empty\" has no flags"},
      {{"A", "A"}, {Flag("a", "A")}, "group \"A\" is named twice"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(HelpText("tool", "usage\n", c.groups, c.flags),
                StatusIs(absl::StatusCode::kInternal, HasSubstr(c.message)))
        << absl::StrJoin(c.groups, ",");
  }
}

TEST(OwnFlags, CarryTheGroupsCvFlagGaveThem) {
  std::vector<std::string> listed;
  for (const FlagHelp& flag : OwnFlags()) {
    listed.push_back(absl::StrCat(flag.group, ": ", flag.name, " ",
                                  flag.value_word, " [", flag.default_value,
                                  "] ", flag.help));
  }
  std::sort(listed.begin(), listed.end());
  EXPECT_THAT(listed, ElementsAre("Numbers and switches: test_count N [0] "
                                  "how many",
                                  "Numbers and switches: test_ratio NUMBER "
                                  "[0.5] how much",
                                  "Numbers and switches: test_switch  [false] "
                                  "whether",
                                  "Words: test_colour TEXT [blue] a colour",
                                  "Words: test_word TEXT [] a word"));
  const absl::StatusOr<std::string> help =
      HelpText("tool", "usage\n", kGroups, OwnFlags());
  ASSERT_THAT(help, IsOk());
  EXPECT_THAT(*help, HasSubstr("\nWords:\n"
                               "  --test-colour TEXT\n"
                               "      a colour (default blue)\n"
                               "  --test-word TEXT\n"
                               "      a word\n"
                               "\nNumbers and switches:\n"
                               "  --test-count N\n"));
}

// ParseFlags with `args` as the command line.
std::vector<std::string> Parse(
    std::vector<std::string> args,
    absl::Span<const absl::string_view> groups = kGroups) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  return ParseFlags(static_cast<int>(argv.size()), argv.data(), groups);
}

TEST(ParseFlags, TakesTheSpellingsPeopleType) {
  absl::FlagSaver saver;
  EXPECT_THAT(
      Parse({"/bin/tool", "run", "--test-word=hello", "--test_count", "3",
             "--test-switch", "-test-ratio", "0.25", "--", "--test-word"}),
      ElementsAre("/bin/tool", "run", "--test-word"));
  EXPECT_EQ(absl::GetFlag(FLAGS_test_word), "hello");
  EXPECT_EQ(absl::GetFlag(FLAGS_test_count), 3);
  EXPECT_TRUE(absl::GetFlag(FLAGS_test_switch));
  EXPECT_EQ(absl::GetFlag(FLAGS_test_ratio), 0.25);
  Parse({"tool", "--no-test-switch"});
  EXPECT_FALSE(absl::GetFlag(FLAGS_test_switch));
}

TEST(ParseFlagsDeathTest, AWrongFlagIsAUsageError) {
  EXPECT_EXIT(Parse({"tool", "--test-wrod", "x"}), ::testing::ExitedWithCode(2),
              "tool: unknown flag --test-wrod; did you mean --test-word\\?");
  EXPECT_EXIT(Parse({"tool", "--test-count=many"}),
              ::testing::ExitedWithCode(2), "--test-count: \"many\"");
}

TEST(ParseFlagsDeathTest, HelpExitsZero) {
  EXPECT_EXIT(
      {
        std::freopen("/dev/null", "w", stdout);
        Parse({"tool", "--help"});
      },
      ::testing::ExitedWithCode(0), "");
}

// Whatever the arguments: every test that starts the binary catches it.
TEST(ParseFlagsDeathTest, AFlagOutsideTheBinarysGroupsAborts) {
  EXPECT_DEATH(Parse({"tool"}, {kWords}),
               "tool: flag --test-count: group \"Numbers and switches\" is "
               "not one of the binary's");
}

}  // namespace
}  // namespace computevoucher
