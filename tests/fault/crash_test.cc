// Kills a process that is submitting commands with SIGKILL at random
// points, several times over one data directory. After every kill the store
// verifies, and every command acknowledged before the kill is present
// exactly once.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/engine/replay.h"
#include "scheduler/store/sqlite_store.h"
#include "scheduler/store/store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher {
namespace {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

namespace pb = ::computevoucher::v1;
using ::testing::IsEmpty;

std::string ChildPath() {
  const char* build = std::getenv("CV_BUILD_DIR");
  return absl::StrCat(build ? build : ".", "/tests/crash_child");
}

struct Child {
  pid_t pid = -1;
  int out = -1;
};

// `snapshot_first`: the child says READY only once it stored a snapshot.
Child Spawn(const std::string& dir, int run, bool snapshot_first) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    const std::string binary = ChildPath();
    const std::string run_arg = absl::StrCat(run);
    execl(binary.c_str(), binary.c_str(), dir.c_str(), run_arg.c_str(),
          snapshot_first ? "snapshot-first" : nullptr, nullptr);
    _exit(127);
  }
  close(fds[1]);
  return Child{pid, fds[0]};
}

// Reads from `fd` until `predicate(text)` holds or the deadline passes.
bool ReadUntil(int fd, std::string& text, absl::Time deadline,
               const std::function<bool(const std::string&)>& predicate) {
  char buf[65536];
  while (!predicate(text)) {
    if (absl::Now() > deadline) return false;
    fd_set set;
    FD_ZERO(&set);
    FD_SET(fd, &set);
    timeval tv{0, 50'000};
    if (select(fd + 1, &set, nullptr, nullptr, &tv) <= 0) continue;
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return predicate(text);
    text.append(buf, static_cast<size_t>(n));
  }
  return true;
}

// Runs of the child, each killed.
constexpr int kRuns = 5;

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("crash", temp_));
    dir_ = temp_.path();
  }

  // Starts a child on dir_, lets it work for a random while, kills it with
  // SIGKILL mid-flight and sets `text` to what it printed.
  void RunAndKill(int run, std::string& text) {
    // The snapshotter runs below the other threads, and a busy machine
    // (sanitizers, other tests) can starve it through every run: the last
    // one then lets the child store a snapshot before it starts its load,
    // so that start-up from one is checked at least once.
    Child child = Spawn(dir_, run, run == kRuns && snapshots_checked_ == 0);
    ASSERT_TRUE(ReadUntil(child.out, text, absl::Now() + absl::Seconds(180),
                          [](const std::string& t) {
                            return t.find("READY\n") != std::string::npos;
                          }))
        << "child did not start: " << text;
    const absl::Time kill_at =
        absl::Now() +
        absl::Milliseconds(std::uniform_int_distribution<int>(200, 900)(rng_));
    ReadUntil(child.out, text, kill_at,
              [](const std::string&) { return false; });
    ASSERT_EQ(kill(child.pid, SIGKILL), 0);
    ReadUntil(child.out, text, absl::Now() + absl::Seconds(10),
              [](const std::string&) { return false; });
    close(child.out);
    int status = 0;
    ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child exited by itself (status " << status << "); output:\n"
        << text.substr(0, 2000);
  }

  // Adds the acknowledgements the child printed in `text` to acked_issues_
  // and acked_charges_, and counts them in `run_acks`.
  void CollectAcks(const std::string& text, int& run_acks) {
    for (absl::string_view line :
         absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f[0] == "ISSUE" && f.size() == 3) {
        acked_issues_.insert(f[1]);
        ++run_acks;
      } else if (f[0] == "USAGE" && f.size() == 4) {
        int64_t subsidy = 0;
        ASSERT_TRUE(absl::SimpleAtoi(f[3], &subsidy));
        acked_charges_[absl::StrCat("charge/", f[1], "/", f[2])] = subsidy;
        ++run_acks;
      }
    }
  }

  // The store verifies, and every acknowledged command is there once.
  void ExpectStoreHoldsAcknowledgedOnce() {
    ASSERT_OK_AND_ASSIGN(
        auto store, store::OpenSqliteStore(dir_, store::OpenMode::kReadOnly));
    core::StateMachine state;
    ASSERT_OK_AND_ASSIGN(const engine::ReplayReport report,
                         engine::Replay(*store, *store, *store, state));
    EXPECT_THAT(report.violations, IsEmpty());
    // Start-up from the newest snapshot reaches the same state.
    snapshots_checked_ += report.snapshots_checked;
    ASSERT_OK_AND_ASSIGN(const std::unique_ptr<core::StateMachine> recovered,
                         engine::Recover(*store));
    EXPECT_EQ(recovered->Digest(), state.Digest());
    ASSERT_NO_FATAL_FAILURE(ExpectIssuesStoredOnce(*store));
    ASSERT_NO_FATAL_FAILURE(ExpectChargesStoredOnce(*store));
  }

  void ExpectIssuesStoredOnce(store::Store& store) {
    absl::flat_hash_map<std::string, int> request_ids;
    int64_t after = 0;
    while (true) {
      ASSERT_OK_AND_ASSIGN(auto commands, store.ReadCommands(after, 10'000));
      if (commands.empty()) break;
      for (const pb::Command& c : commands) {
        if (c.has_issue_voucher()) ++request_ids[c.request_id()];
        after = c.sequence();
      }
    }
    for (const std::string& id : acked_issues_) {
      EXPECT_EQ(request_ids[id], 1)
          << id << " acknowledged but stored " << request_ids[id] << " times";
    }
  }

  void ExpectChargesStoredOnce(store::Store& store) {
    absl::flat_hash_map<std::string, int64_t> charges;
    int64_t after = 0;
    while (true) {
      ASSERT_OK_AND_ASSIGN(auto entries, store.ReadJournal(after, 10'000));
      if (entries.empty()) break;
      for (const pb::JournalEntry& e : entries) {
        if (e.kind() == pb::ENTRY_KIND_CHARGE) {
          EXPECT_TRUE(
              charges.emplace(e.idempotency_key(), e.amount_fen()).second)
              << e.idempotency_key() << " charged twice";
        }
        after = e.sequence();
      }
    }
    for (const auto& [key, subsidy] : acked_charges_) {
      if (subsidy == 0) continue;
      ASSERT_TRUE(charges.contains(key))
          << key << " acknowledged but not stored";
      EXPECT_EQ(charges[key], subsidy) << key;
    }
  }

  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  std::mt19937 rng_{7};
  // Stored snapshots verify compared with the replayed state, over all runs.
  int64_t snapshots_checked_ = 0;
  // Acknowledged before a kill, over all runs.
  absl::flat_hash_set<std::string> acked_issues_;
  absl::flat_hash_map<std::string, int64_t>
      acked_charges_;  // charge key -> subsidy
};

TEST_F(CrashTest, AcknowledgedCommandsSurviveSigkill) {
  int64_t total_acks = 0;
  for (int run = 1; run <= kRuns; ++run) {
    SCOPED_TRACE(absl::StrCat("run ", run));
    std::string text;
    ASSERT_NO_FATAL_FAILURE(RunAndKill(run, text));
    int run_acks = 0;
    ASSERT_NO_FATAL_FAILURE(CollectAcks(text, run_acks));
    EXPECT_GT(run_acks, 0) << "nothing was acknowledged before the kill";
    std::printf(
        "run %d: %d commands acknowledged before SIGKILL, %zu charges "
        "acknowledged so far\n",
        run, run_acks, acked_charges_.size());
    total_acks += run_acks;
    ASSERT_NO_FATAL_FAILURE(ExpectStoreHoldsAcknowledgedOnce());
  }
  EXPECT_GT(total_acks, 100);
  EXPECT_GT(snapshots_checked_, 0) << "no snapshot was ever stored";
}

}  // namespace
}  // namespace computevoucher
