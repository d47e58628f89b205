// The servers' command lines as an operator meets them (issue 17): --help
// lists every flag as the README spells it, grouped, with its default,
// --version names the version and git revision, a wrong flag is a usage
// error (exit 2, which the systemd units do not restart on) that names the
// flag, log lines carry the time except into the journal, and both tell
// systemd when they are ready.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAreArray;
using ::testing::EndsWith;
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

// A heading of --help and the flags under it: each as people type it
// ("--data-dir TEXT") and its help, or, expected, what the help says of
// its default ("" when nothing).
struct Section {
  std::string heading;
  std::vector<std::pair<std::string, std::string>> flags;
};

// The scheduler's --help, heading by heading. A data table.
std::vector<Section> SchedulerHelp() {
  return {
      {"Configuration", {{"--config TEXT", ""}}},
      {"Store",
       {{"--data-dir TEXT", ""},
        {"--snapshot-every N", "(default 100000)"},
        {"--snapshot-interval-s N", "(default 600)"},
        {"--store TEXT", "sqlite (default, in --data-dir)"}}},
      {"Network and TLS",
       {{"--listen TEXT", "(default 127.0.0.1:7443;"},
        {"--port-file TEXT", ""},
        {"--require-client-cert", ""},
        {"--tls-cert TEXT", ""},
        {"--tls-client-ca TEXT", ""},
        {"--tls-key TEXT", ""}}},
      {"Replicas (PostgreSQL)",
       {{"--advertise TEXT", "(default: the listen address"},
        {"--lease-s N", "(default 5)"}}},
      {"Timing and retention",
       {{"--cluster-silence-s N", "(default 60)"},
        {"--heartbeat-interval-s N", "(default 10)"},
        {"--retain-ended-s N", "(default 2592000, 30 days)"},
        {"--tick-interval-ms N", "(default 1000)"},
        {"--usage-grace-s N", "(default 300)"}}},
      {"Observability", {{"--metrics-listen TEXT", ""}}},
      {"verify and archive commands",
       {{"--archive TEXT", ""}, {"--before TEXT", ""}, {"--to TEXT", ""}}},
      {"Help and version", {{"--help", ""}, {"--version", ""}}},
  };
}

// The agent's --help, heading by heading. A data table.
std::vector<Section> AgentHelp() {
  return {
      {"Configuration", {{"--config TEXT", ""}}},
      {"Scheduler connection",
       {{"--heartbeat-interval-ms N", "(default: what the scheduler asks)"},
        {"--scheduler TEXT", ""},
        {"--tls-ca TEXT", ""},
        {"--tls-cert TEXT", ""},
        {"--tls-key TEXT", ""},
        {"--token-file TEXT", ""}}},
      {"Cluster",
       {{"--inventory TEXT", ""},
        {"--prices TEXT", ""},
        {"--region TEXT", ""}}},
      {"Metering and spool",
       {{"--idle-after-s N", "(default 600)"},
        {"--idle-threshold-bp N", "(default 500 = 5%)"},
        {"--report-interval-ms N", "(default 10000)"},
        {"--spool-dir TEXT", ""},
        {"--spool-max-bytes N", "(default 256 MiB)"}}},
      {"Runtime",
       {{"--access-template TEXT", ""},
        {"--meter TEXT", ""},
        {"--runtime TEXT", "simulated (default)"},
        {"--stop-grace-s N", "(default 10)"}}},
      {"Process runtime",
       {{"--bwrap TEXT", ""},
        {"--run-as TEXT", ""},
        {"--sandbox TEXT", "bwrap (default)"},
        {"--work-root TEXT", ""}}},
      {"Slurm runtime",
       {{"--slurm-accounts TEXT", ""},
        {"--slurm-batch-log-dir TEXT",
         "(default /var/lib/voucher-agent/batch)"},
        {"--slurm-bin-dir TEXT", "(default PATH)"},
        {"--slurm-command-timeout-ms N", "(default 10000)"},
        {"--slurm-gres-models TEXT", ""},
        {"--slurm-login-host TEXT", ""},
        {"--slurm-partition TEXT", ""},
        {"--slurm-poll-interval-ms N", "(default 5000)"}}},
      {"Telemetry",
       {{"--dcmi-library TEXT", "(default libdcmi.so)"},
        {"--nvml-library TEXT", "(default libnvidia-ml.so.1)"},
        {"--simulated-utilization-bp N", "(default 9000)"},
        {"--simulated-watts N", "(default 700)"},
        {"--telemetry TEXT", "simulated (default)"}}},
      {"Observability", {{"--metrics-listen TEXT", ""}}},
      {"Help and version", {{"--help", ""}, {"--version", ""}}},
  };
}

// The sections of `help` after its usage message: a heading is a line at
// the margin that ends in ':', a flag a line "  --", its help the line
// under it.
std::vector<Section> Sections(const std::string& help) {
  std::vector<Section> sections;
  for (absl::string_view line : absl::StrSplit(help, '\n')) {
    if (!line.empty() && line[0] != ' ' && absl::EndsWith(line, ":")) {
      sections.push_back({std::string(absl::StripSuffix(line, ":")), {}});
    } else if (sections.empty()) {
      continue;
    } else if (absl::StartsWith(line, "  --")) {
      sections.back().flags.emplace_back(line.substr(2), "");
    } else if (absl::StartsWith(line, "      ") &&
               !sections.back().flags.empty()) {
      sections.back().flags.back().second = std::string(line.substr(6));
    }
  }
  return sections;
}

// "Heading: --flag, --flag N": what a section lists, in its order.
std::vector<std::string> Outline(const std::vector<Section>& sections) {
  std::vector<std::string> out;
  for (const Section& s : sections) {
    std::vector<std::string> flags;
    for (const auto& [flag, help] : s.flags) flags.push_back(flag);
    out.push_back(absl::StrCat(s.heading, ": ", absl::StrJoin(flags, ", ")));
  }
  return out;
}

TEST_P(FlagsTest, HelpListsEveryFlagAsTheReadmeSpellsIt) {
  const Outcome help = RunBinary({"--help"});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_THAT(help.output,
              AllOf(HasSubstr(absl::StrCat(Program(), ": ")),
                    Not(HasSubstr("No flags matched")), Not(HasSubstr("_dir")),
                    Not(HasSubstr("main.cc")),
                    EndsWith(VersionLine(Program()) + "\n")));
  // Every flag once, under its heading, the headings in their order and
  // the flags by name.
  const std::vector<Section> expected =
      Program() == "voucher-scheduler" ? SchedulerHelp() : AgentHelp();
  const std::vector<Section> listed = Sections(help.output);
  EXPECT_THAT(Outline(listed), ElementsAreArray(Outline(expected)))
      << help.output;
  // Each with its default, where it has one.
  for (size_t i = 0; i < std::min(listed.size(), expected.size()); ++i) {
    for (size_t j = 0;
         j < std::min(listed[i].flags.size(), expected[i].flags.size()); ++j) {
      EXPECT_THAT(listed[i].flags[j].second,
                  HasSubstr(expected[i].flags[j].second))
          << listed[i].flags[j].first;
    }
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
