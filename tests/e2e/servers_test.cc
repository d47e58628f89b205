// The servers' command lines as an operator meets them (issue 17): --help
// lists every flag as the README spells it, --version names the version
// and git revision, a wrong flag is a usage error (exit 2, which the
// systemd units do not restart on) that names the flag, log lines carry
// the time except into the journal, and both tell systemd when they are
// ready.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

struct Outcome {
  int exit_code = -1;
  std::string output;
};

class FlagsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("flags", temp_));
  }

  // Runs the binary of the test (a path under the build directory) with
  // `args`; its standard output and error together.
  Outcome RunBinary(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {BuildDir() + "/" + GetParam()};
    argv.insert(argv.end(), args.begin(), args.end());
    ChildProcess child(argv, absl::StrCat(temp_.path(), "/log", ++runs_));
    const std::optional<int> code = child.Wait(absl::Seconds(30));
    return Outcome{code.value_or(-1), child.Log()};
  }

  std::string Program() const {
    return GetParam().substr(GetParam().rfind('/') + 1);
  }

  TempDir temp_;
  int runs_ = 0;
};

TEST_P(FlagsTest, HelpListsEveryFlagAsTheReadmeSpellsIt) {
  const Outcome help = RunBinary({"--help"});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_THAT(
      help.output,
      AllOf(HasSubstr(absl::StrCat(Program(), ": ")), HasSubstr("Flags:"),
            HasSubstr("\n  --version\n"), Not(HasSubstr("No flags matched")),
            Not(HasSubstr("_dir")), Not(HasSubstr("main.cc"))));
  if (Program() == "voucher-scheduler") {
    EXPECT_THAT(help.output, AllOf(HasSubstr("\n  --data-dir TEXT\n"),
                                   HasSubstr("\n  --require-client-cert\n"),
                                   HasSubstr("\n  --tick-interval-ms N\n")));
  } else {
    EXPECT_THAT(help.output, AllOf(HasSubstr("\n  --spool-dir TEXT\n"),
                                   HasSubstr("\n  --token-file TEXT\n")));
  }
  EXPECT_EQ(RunBinary({"-h"}).output, help.output);
}

TEST_P(FlagsTest, VersionNamesTheVersionAndRevision) {
  const Outcome version = RunBinary({"--version"});
  EXPECT_EQ(version.exit_code, 0) << version.output;
  EXPECT_EQ(version.output, VersionLine(Program()) + "\n");
  EXPECT_THAT(version.output, Not(HasSubstr("Debug build")));
}

TEST_P(FlagsTest, AWrongFlagIsAUsageErrorNamingIt) {
  const std::string flag =
      Program() == "voucher-scheduler" ? "--data-dri" : "--spool-dri";
  const std::string meant =
      Program() == "voucher-scheduler" ? "--data-dir" : "--spool-dir";
  const Outcome unknown = RunBinary({flag, "x"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_THAT(unknown.output,
              AllOf(HasSubstr(absl::StrCat("unknown flag ", flag,
                                           "; did you mean ", meant, "?")),
                    HasSubstr("--help")));
  const Outcome far = RunBinary({"--completely-else"});
  EXPECT_EQ(far.exit_code, 2) << far.output;
  EXPECT_THAT(far.output, AllOf(HasSubstr("unknown flag --completely-else"),
                                Not(HasSubstr("did you mean"))));
  const std::string number = Program() == "voucher-scheduler"
                                 ? "--tick-interval-ms"
                                 : "--spool-max-bytes";
  const Outcome bad = RunBinary({number + "=soon"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr(absl::StrCat(number, ": \"soon\"")));
  const Outcome missing = RunBinary({number});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr(number + ": needs a value"));
}

// Log lines carry the time, but not into the journal, which stamps them
// itself; a file that cannot be read names its flag.
TEST(LogLines, StampedUnlessStderrIsTheJournal) {
  TempDir temp;
  ASSERT_NO_FATAL_FAILURE(MakeTempDir("log", temp));
  const std::vector<std::string> argv = {BuildDir() + "/agent/voucher-agent",
                                         "--scheduler",
                                         "127.0.0.1:1",
                                         "--spool-dir",
                                         temp.path() + "/spool",
                                         "--inventory",
                                         "1xH100:other",
                                         "--prices",
                                         "H100=1",
                                         "--token-file",
                                         "/nonexistent"};
  {
    ChildProcess agent(argv, temp.path() + "/plain.log");
    EXPECT_EQ(agent.Wait(absl::Seconds(30)), 2) << agent.Log();
    EXPECT_THAT(agent.Log(),
                ::testing::MatchesRegex(
                    "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+[-+][0-9:]+ "
                    "voucher-agent: --token-file: /nonexistent: .*\n"));
  }
  // What systemd sets when stderr is the journal: its device and inode.
  const std::string log = temp.path() + "/journal.log";
  ASSERT_EQ(Shell("touch " + log), 0);
  struct stat st;
  ASSERT_EQ(stat(log.c_str(), &st), 0);
  ChildProcess agent(
      argv, log, {absl::StrCat("JOURNAL_STREAM=", st.st_dev, ":", st.st_ino)});
  EXPECT_EQ(agent.Wait(absl::Seconds(30)), 2) << agent.Log();
  EXPECT_THAT(agent.Log(), ::testing::StartsWith(
                               "voucher-agent: --token-file: /nonexistent: "));
}

// A socket standing in for systemd's NOTIFY_SOCKET.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    bound_ = bind(fd_, reinterpret_cast<const sockaddr*>(&address),
                  sizeof(address)) == 0;
  }
  ~NotifySocket() { close(fd_); }
  bool bound() const { return bound_; }
  std::string env() const { return "NOTIFY_SOCKET=" + path_; }

  // The next datagram, or "" after 30 s.
  std::string Next() {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 30'000) != 1) return "";
    char buffer[512];
    const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    return n > 0 ? std::string(buffer, n) : "";
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

// Type=notify: READY=1 once the server serves (so `systemctl start`
// returns when it can be used), STOPPING=1 when it stops.
TEST(Readiness, BothServersTellSystemdWhenTheyAreReadyAndWhenTheyStop) {
  TempDir temp;
  ASSERT_NO_FATAL_FAILURE(MakeTempDir("notify", temp));
  const std::string dir = temp.path();
  {
    NotifySocket notify(dir + "/scheduler.sock");
    ASSERT_TRUE(notify.bound());
    ChildProcess scheduler({BuildDir() + "/scheduler/voucher-scheduler",
                            "--data-dir", dir + "/data", "--listen",
                            "127.0.0.1:0", "--port-file", dir + "/port"},
                           dir + "/scheduler.log", {notify.env()});
    const int port = WaitForPortFile(scheduler, dir + "/port");
    ASSERT_GT(port, 0);
    EXPECT_EQ(notify.Next(),
              absl::StrCat("READY=1\nSTATUS=serving on port ", port));
    EXPECT_EQ(scheduler.Stop(), 0) << scheduler.Log();
    EXPECT_EQ(notify.Next(), "STOPPING=1");
  }
  NotifySocket notify(dir + "/agent.sock");
  ASSERT_TRUE(notify.bound());
  ASSERT_EQ(Shell("echo cvt_x > " + dir + "/token"), 0);
  ChildProcess agent(
      {BuildDir() + "/agent/voucher-agent", "--scheduler", "127.0.0.1:1",
       "--token-file", dir + "/token", "--spool-dir", dir + "/spool",
       "--inventory", "1xH100:other", "--prices", "H100=1"},
      dir + "/agent.log", {notify.env()});
  EXPECT_EQ(notify.Next(), "READY=1") << agent.Log();
  EXPECT_EQ(agent.Stop(), 0) << agent.Log();
  EXPECT_EQ(notify.Next(), "STOPPING=1");
}

INSTANTIATE_TEST_SUITE_P(Binaries, FlagsTest,
                         ::testing::Values("scheduler/voucher-scheduler",
                                           "agent/voucher-agent"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.substr(info.param.rfind('-') + 1);
                         });

}  // namespace
}  // namespace computevoucher::testing
