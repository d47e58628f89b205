// voucherctl's command line against its real command table
// (client/internal/cli.h): each line with the command it selects and the
// values it gives, or the refusal and what it says.
#include "client/internal/cli.h"

#include <string>
#include <vector>

#include "client/internal/commands.h"
#include "client/internal/connection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace computevoucher::client {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<Invocation> Parse(const std::vector<std::string>& argv,
                                 std::string* path) {
  return ParseCommandLine(Commands(), GlobalFlags(), argv, path);
}

struct Accepted {
  std::vector<std::string> argv;
  std::string path;  // the command selected
  std::vector<std::pair<std::string, std::string>> values;  // flag, value
  std::vector<std::string> rest;
};

TEST(Cli, AnEndpointWithoutAPortIsAtTheSchedulersPort) {
  std::string path;
  const absl::StatusOr<Invocation> inv =
      Parse({"--endpoint", "localhost, 10.0.0.5:9000,[::1]", "admin", "program",
             "list"},
            &path);
  ASSERT_TRUE(inv.ok()) << inv.status();
  const absl::StatusOr<Settings> settings = ResolveSettings(inv->args);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(
      settings->endpoints,
      ::testing::ElementsAre("localhost:7443", "10.0.0.5:9000", "[::1]:7443"));
}

TEST(Cli, AcceptedLines) {
  const std::vector<Accepted> cases = {
      {{"quote", "--model", "H100", "--gpus", "2", "--hours", "4"},
       "quote",
       {{"model", "H100"}, {"gpus", "2"}, {"hours", "4"}},
       {}},
      {{"quote", "--model=910B", "--gpus=8", "--hours=1.5"},
       "quote",
       {{"model", "910B"}, {"gpus", "8"}, {"hours", "1.5"}},
       {}},
      {{"allocate", "--model", "H100", "--gpus", "1", "--hours", "2",
        "--queue", "--", "python", "train.py", "--epochs", "3"},
       "allocate",
       {{"model", "H100"}, {"queue", "true"}},
       {"python", "train.py", "--epochs", "3"}},
      // A global flag anywhere, the short form glued to its value, and the
      // last of a repeated flag.
      {{"-ojson", "quote", "--model", "H100", "--gpus", "1", "--gpus", "3",
        "--hours", "1"},
       "quote",
       {{"output", "json"}, {"gpus", "3"}},
       {}},
      // Help is taken anywhere, without the required flags.
      {{"admin", "voucher", "issue", "--help"}, "admin voucher issue", {}, {}},
      {{"admin"}, "admin", {}, {}},
  };
  for (const Accepted& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.argv));
    std::string path;
    absl::StatusOr<Invocation> inv = Parse(c.argv, &path);
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_EQ(inv->path, c.path);
    for (const auto& [flag, value] : c.values) {
      EXPECT_TRUE(inv->args.Has(flag)) << flag;
      EXPECT_EQ(inv->args.Value(flag), value) << flag;
    }
    EXPECT_EQ(inv->args.rest(), c.rest);
  }
}

struct Refused {
  std::vector<std::string> argv;
  std::string message;  // a part of the refusal
  std::string path;     // where the parser got to, for the help it points at
};

TEST(Cli, RefusedLines) {
  const std::vector<Refused> cases = {
      {{"qoute"}, "did you mean", ""},
      {{"admin", "vouchr"}, "did you mean", "admin"},
      {{"quote", "--gpu", "2"},
       "unknown flag --gpu; did you mean --gpus?",
       "quote"},
      {{"quote", "--model"}, "--model", "quote"},
      {{"quote", "--queue=yes"}, "unknown flag", "quote"},
      {{"allocate", "--queue=yes", "--model", "H100", "--gpus", "1", "--hours",
        "1"},
       "is a switch and takes no value",
       "allocate"},
      {{"quote", "--gpus", "1", "--hours", "1", "--", "x"},
       "takes no arguments after \"--\"",
       "quote"},
      {{"allocations", "show"}, "missing argument", "allocations show"},
      {{"allocations", "show", "AL-1", "AL-2"},
       "unexpected argument \"AL-2\"",
       "allocations show"},
  };
  for (const Refused& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.argv));
    std::string path;
    absl::StatusOr<Invocation> inv = Parse(c.argv, &path);
    ASSERT_FALSE(inv.ok()) << "accepted";
    EXPECT_EQ(inv.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(inv.status().message(), HasSubstr(c.message));
    EXPECT_EQ(path, c.path);
  }
}

// Found by voucherctl_fuzzer: under --help the arguments are not counted,
// and asking for one past the command's names threw std::out_of_range.
TEST(Cli, APositionalPastTheNamesIsRefusedNotThrown) {
  std::string path;
  absl::StatusOr<Invocation> inv =
      Parse({"allocations", "show", "AL-1", "AL-2", "--help"}, &path);
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->args.PositionalId(1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(inv->args.PositionalId(7).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace computevoucher::client
