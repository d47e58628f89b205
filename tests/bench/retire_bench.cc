// retire_bench: what a program's ended allocations and vouchers cost the
// scheduler's memory (issue 15, item 2).
//
// Simulates a program whose enterprise runs short allocations around the
// clock: every simulated day --vouchers_per_day vouchers valid for a week
// are issued to it, and every simulated hour --per_hour one-GPU H100
// allocations of an hour run, each reporting its hour of usage and
// released, then the scheduler's tick (usage grace 300 s). This goes through
// the state machine, as the writer applies commands, without a store. At 1x, 2x
// and 4x --days it saves the state as a snapshot, loads that in a fresh process
// and measures the process's resident memory there, with the default retention
// (allocations and vouchers retired 30 days after their end) and with none
// (every one kept, as before retirement). Prints the allocations and vouchers
// made and held, the ledger's keys and accounts, the snapshot's bytes and the
// resident memory, and the target beside them: with retention, resident memory
// flat across sizes (within 10%). Deterministic: no randomness, simulated time.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/mutexes.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "scheduler/core/state_machine.h"
#include "tests/bench/bench_util.h"
#include "tests/testing/binaries.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/world.h"

ABSL_FLAG(int, days, 30, "Simulated days at 1x; measured at 1x, 2x and 4x.");
ABSL_FLAG(int, per_hour, 8,
          "Allocations started (and ended) every simulated hour (1..16).");
ABSL_FLAG(int, vouchers_per_day, 4,
          "Vouchers issued every simulated day, each valid for a week "
          "(0..100).");
ABSL_FLAG(std::string, measure, "",
          "Internal: load the snapshot in this file and print the resident "
          "memory.");

namespace computevoucher::bench::retire_bench {
namespace {

namespace pb = ::computevoucher::v1;

constexpr int64_t kGraceS = 300;
constexpr double kFlatCeiling = 1.10;

// What one size of the program left in memory.
struct Figures {
  int64_t days = 0;
  int64_t made = 0;      // allocations made
  int64_t held = 0;      // in the state
  int64_t vouchers = 0;  // issued
  int64_t vouchers_held = 0;
  int64_t keys = 0;      // ledger idempotency keys
  int64_t accounts = 0;  // ledger accounts
  int64_t snapshot = 0;  // bytes
  int64_t rss = 0;       // bytes, in a fresh process after loading it
};

// The fresh process's side: loads the snapshot and prints its memory.
int Measure(const std::string& path) {
  {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
    pb::StateSnapshot snapshot;
    core::StateMachine* state = new core::StateMachine();  // kept to the end
    if (!snapshot.ParseFromString(bytes) || !state->Load(snapshot).ok()) {
      std::fprintf(stderr, "retire_bench: %s does not load\n", path.c_str());
      return 1;
    }
  }
  std::printf("rss_bytes %lld\n", static_cast<long long>(ResidentBytes()));
  return 0;
}

// Runs `self --measure=path` and returns the resident bytes it printed.
// Its output goes to a log of its own, `log`.
absl::StatusOr<int64_t> MeasureInFreshProcess(const std::string& path,
                                              const std::string& log) {
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe");
  testing::ChildProcess child({exe, "--measure=" + path}, log);
  if (child.Wait(absl::Minutes(5)) != 0) {
    return absl::InternalError(absl::StrCat("measure failed: ", child.Log()));
  }
  const std::string out = child.Log();
  const size_t at = out.find("rss_bytes ");
  int64_t rss = 0;
  if (at == std::string::npos ||
      !absl::SimpleAtoi(out.substr(at + 10, out.find('\n', at) - at - 10),
                        &rss)) {
    return absl::InternalError(absl::StrCat("no figure in: ", out));
  }
  return rss;
}

// One simulated hour: allocations started, used for the hour, released,
// then the tick.
absl::Status RunHour(testing::Driver& driver, int64_t retain_s, int64_t* made) {
  std::vector<pb::Allocation> started;
  for (int i = 0; i < absl::GetFlag(FLAGS_per_hour); ++i) {
    ASSIGN_OR_RETURN(pb::Allocation a,
                     driver.Allocate("E-000001", "H100", 1, 7200));
    started.push_back(std::move(a));
    ++*made;
  }
  driver.Advance(absl::Hours(1));
  for (const pb::Allocation& a : started) {
    ASSIGN_OR_RETURN(const absl::Time assigned,
                     FromProto("assigned_at", a.assigned_at()));
    ASSIGN_OR_RETURN(
        const pb::UsageAck ack,
        driver.Report(a.cluster_id(), a.allocation_id(), 1, assigned,
                      assigned + absl::Hours(1), 3'600'000));
    if (ack.result() != pb::USAGE_RESULT_ACCEPTED) {
      return absl::InternalError(absl::StrCat("usage refused: ", ack.reason()));
    }
    RETURN_IF_ERROR(driver.Release("E-000001", a.allocation_id()).status());
  }
  RETURN_IF_ERROR(driver.Tick(kGraceS, retain_s).status());
  core::StateMachine& state = driver.state();
  state.DropOutputs();
  return absl::OkStatus();
}

// The day's vouchers: 100.00 each, valid for a week.
absl::Status IssueDay(testing::Driver& driver, int64_t* issued) {
  for (int i = 0; i < absl::GetFlag(FLAGS_vouchers_per_day); ++i) {
    pb::Command c = testing::NewCommand(
        testing::AdminPrincipal(), absl::StrCat("weekly-voucher-", ++*issued));
    pb::IssueVoucherRequest* r = c.mutable_issue_voucher();
    r->set_program_id("P-000001");
    r->set_enterprise_id("E-000001");
    r->set_face_value_fen(100'00);
    *r->mutable_valid_until() = ToProto(driver.now() + absl::Hours(7 * 24));
    RETURN_IF_ERROR(driver.Apply(std::move(c)).status());
  }
  return absl::OkStatus();
}

// Grows one program to 1x, 2x and 4x --days, measuring each.
absl::StatusOr<std::vector<Figures>> Grow(const std::string& dir,
                                          int64_t retain_s) {
  core::StateMachine state;
  testing::Driver driver(state);
  RETURN_IF_ERROR(driver.BuildWorld());
  RETURN_IF_ERROR(driver.Issue("P-000001", "E-000001", 5'000'000'00).status());
  std::vector<Figures> out;
  int64_t made = 0;
  int64_t issued = 0;
  int64_t day = 0;
  for (int multiple : {1, 2, 4}) {
    for (; day < multiple * absl::GetFlag(FLAGS_days); ++day) {
      RETURN_IF_ERROR(IssueDay(driver, &issued));
      for (int hour = 0; hour < 24; ++hour) {
        RETURN_IF_ERROR(RunHour(driver, retain_s, &made));
      }
    }
    Figures f;
    f.days = day;
    f.made = made;
    f.held = static_cast<int64_t>(state.allocations().size());
    f.vouchers = issued;
    f.vouchers_held = static_cast<int64_t>(state.vouchers().size());
    f.keys = static_cast<int64_t>(state.ledger().keys().size());
    f.accounts = static_cast<int64_t>(state.ledger().balances().size());
    const std::string snapshot = state.Save().SerializeAsString();
    f.snapshot = static_cast<int64_t>(snapshot.size());
    const std::string path = dir + "/state.snapshot";
    std::ofstream(path, std::ios::binary) << snapshot;
    ASSIGN_OR_RETURN(f.rss, MeasureInFreshProcess(
                                path, absl::StrCat(dir, "/measure-", retain_s,
                                                   "-", multiple, ".log")));
    out.push_back(f);
  }
  return out;
}

void Print(const char* retention, const std::vector<Figures>& figures) {
  for (const Figures& f : figures) {
    std::printf(
        "%-10s %5lld %9lld %8lld %8lld %8lld %8lld %9lld %11lld %9.1f\n",
        retention, static_cast<long long>(f.days),
        static_cast<long long>(f.made), static_cast<long long>(f.held),
        static_cast<long long>(f.vouchers),
        static_cast<long long>(f.vouchers_held), static_cast<long long>(f.keys),
        static_cast<long long>(f.accounts), static_cast<long long>(f.snapshot),
        f.rss / 1048576.0);
  }
}

// Largest over smallest resident memory across the sizes.
double Spread(const std::vector<Figures>& figures) {
  int64_t low = figures.front().rss, high = low;
  for (const Figures& f : figures) {
    low = std::min(low, f.rss);
    high = std::max(high, f.rss);
  }
  return static_cast<double>(high) / static_cast<double>(low);
}

int Run() {
  if (absl::GetFlag(FLAGS_per_hour) < 1 || absl::GetFlag(FLAGS_per_hour) > 16 ||
      absl::GetFlag(FLAGS_days) < 1 ||
      absl::GetFlag(FLAGS_vouchers_per_day) < 0 ||
      absl::GetFlag(FLAGS_vouchers_per_day) > 100) {
    std::fprintf(stderr,
                 "retire_bench: --per_hour 1..16, --days >= 1, "
                 "--vouchers_per_day 0..100\n");
    return 2;
  }
  absl::StatusOr<testing::TempDir> dir =
      testing::TempDir::Make("retire_bench", "");
  if (!dir.ok()) {
    std::fprintf(stderr, "retire_bench: %s\n", dir.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "retire_bench: %d allocations an hour, each an hour of one H100 with "
      "its usage, released; %d vouchers a day, valid for a week; sizes 1x, "
      "2x, 4x of %d days\n",
      absl::GetFlag(FLAGS_per_hour), absl::GetFlag(FLAGS_vouchers_per_day),
      absl::GetFlag(FLAGS_days));
  std::printf("%-10s %5s %9s %8s %8s %8s %8s %9s %11s %9s\n", "retention",
              "days", "made", "held", "vouchers", "held", "keys", "accounts",
              "snapshot B", "RSS MiB");
  absl::StatusOr<std::vector<Figures>> kept = Grow(dir->path(), 0);
  if (!kept.ok()) {
    std::fprintf(stderr, "retire_bench: %s\n",
                 kept.status().ToString().c_str());
    return 1;
  }
  Print("none", *kept);
  absl::StatusOr<std::vector<Figures>> retired =
      Grow(dir->path(), core::kDefaultRetainEndedS);
  if (!retired.ok()) {
    std::fprintf(stderr, "retire_bench: %s\n",
                 retired.status().ToString().c_str());
    return 1;
  }
  Print("30 days", *retired);
  const double spread = Spread(*retired);
  std::printf(
      "RSS with 30-day retention, largest / smallest across sizes: %.3f "
      "(ceiling %.2f): %s; without retention: %.3f\n",
      spread, kFlatCeiling, spread <= kFlatCeiling ? "met" : "NOT met",
      Spread(*kept));
  return 0;
}

}  // namespace
}  // namespace computevoucher::bench::retire_bench

int main(int argc, char** argv) {
  computevoucher::UseReleaseMutexChecks();
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_measure).empty()) {
    return computevoucher::bench::retire_bench::Measure(
        absl::GetFlag(FLAGS_measure));
  }
  return computevoucher::bench::retire_bench::Run();
}
