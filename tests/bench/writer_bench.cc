// Durable charge entries per second through the group-commit writer
// (DESIGN.md, "One writer, group commit"), with 1, 8 and 64 concurrent
// submitters, next to the ceiling of the same SQLite layout doing bare
// batched inserts of journal rows.
//
// One run: builds the standard test world through a real Writer on a fresh
// SQLite store (real clock, synchronous=FULL), adds 64 agent clusters
// ("bench-00".."bench-63", one per submitter slot) and R one-GPU allocations
// on each, then lets S submitter threads (S = 1, 8, 64) send ReportUsage
// commands of R records for a fixed time. Submitter t serves the clusters
// c with c % S == t, round robin; every record covers one busy GPU from the
// previous record's end to now (as an agent reports), at ¥1,000,000/GPU-hour,
// so every record posts one charge entry. Then it
// times Store::Append alone on a fresh store with pre-built batches of the
// size the 64-submitter run committed, and prints the figures against the
// targets of the issue: >= 100,000 charges/s with 64 submitters, and >= half
// of the bare-insert ceiling.
//
// A benchmark, not a test: it exits 0 whether or not the targets are met
// (1 only when it could not measure: setup failed or records were refused).
// The world it measures in is built in writer_bench_world.cc; the
// measurements are in writer_bench_measure.cc.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/flags.h"
#include "common/mutexes.h"
#include "computevoucher/v1/journal.pb.h"
#include "scheduler/engine/writer.h"
#include "scheduler/store/sqlite_store.h"
#include "scheduler/store/store.h"
#include "tests/bench/bench_util.h"
#include "tests/bench/writer_bench_measure.h"
#include "tests/bench/writer_bench_world.h"
#include "tests/testing/temp_dir.h"

ABSL_FLAG(int, seconds, 5,
          "Measured wall time of each configuration (and of the ceiling).");
ABSL_FLAG(double, warmup_seconds, 1.0,
          "Unmeasured run time before each configuration's measurement.");
ABSL_FLAG(int, records_per_command, 64,
          "Usage records per ReportUsage command (1..1024); also the number "
          "of allocations on each of the 64 bench clusters.");
ABSL_FLAG(std::vector<std::string>, submitters,
          (std::vector<std::string>{"1", "8", "64"}),
          "Submitter counts to measure, in order (1..64 each); the targets "
          "apply to 64.");
ABSL_FLAG(int64_t, max_batch_records, 2000,
          "Most usage records the writer takes into one transaction (the "
          "scheduler's default is the store's: 200 on the embedded store, "
          "500 on PostgreSQL, which favours Allocate latency).");
ABSL_FLAG(std::string, dir, "",
          "Directory in which the bench makes (and at the end removes) its "
          "temporary data directory; default $TMPDIR or /tmp. Put it on the "
          "file system you want to measure.");

namespace computevoucher::bench::writer_bench {
namespace {

using ::computevoucher::testing::TempDir;

// The configuration the targets apply to.
constexpr int kTargetSubmitters = 64;

constexpr double kTargetChargesPerSecond = 100'000;
constexpr double kTargetCeilingShare = 0.5;
// More refused records than this and the figures mean nothing.
constexpr double kMaxRefusedShare = 0.001;

// The flags, checked.
struct Options {
  int seconds = 0;
  double warmup = 0;
  int per_command = 0;
  std::vector<int> counts;  // submitters of each configuration
};

// Reads the flags into `o`; says what is wrong and returns false when one
// is out of range.
bool ReadOptions(Options& o) {
  o.seconds = absl::GetFlag(FLAGS_seconds);
  o.warmup = absl::GetFlag(FLAGS_warmup_seconds);
  o.per_command = absl::GetFlag(FLAGS_records_per_command);
  if (o.seconds < 1 || o.warmup < 0 || o.per_command < 1 ||
      o.per_command > 1024) {
    std::fprintf(stderr,
                 "writer_bench: need --seconds >= 1, --warmup_seconds >= 0 "
                 "and --records_per_command in 1..1024\n");
    return false;
  }
  for (const std::string& s : absl::GetFlag(FLAGS_submitters)) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1 || n > kClusters) {
      std::fprintf(stderr, "writer_bench: --submitters: \"%s\" is not 1..%d\n",
                   s.c_str(), kClusters);
      return false;
    }
    o.counts.push_back(n);
  }
  if (o.counts.empty()) {
    std::fprintf(stderr, "writer_bench: --submitters: none given\n");
    return false;
  }
  return true;
}

void PrintPreamble(const std::string& dir, const Options& o) {
  std::printf(
      "writer_bench: durable charge entries per second through the "
      "group-commit writer\n");
  std::printf("  data directory   %s (%s), removed at exit\n", dir.c_str(),
              FileSystemType(dir).c_str());
  std::printf(
      "  machine          %u CPU(s) online; SQLite %s, WAL, "
      "synchronous=FULL\n",
      std::thread::hardware_concurrency(), sqlite3_libversion());
  std::printf(
      "  workload         %d agent clusters x %d one-GPU allocations; "
      "ReportUsage of %d records (1 ms each, one charge entry each)\n",
      kClusters, o.per_command, o.per_command);
  std::printf(
      "  timing           %.1f s warm-up, then %d s measured per "
      "configuration\n\n",
      o.warmup, o.seconds);
  std::fflush(stdout);
}

// One configuration's row of the writer table, and its notes.
void PrintRun(const RunResult& r) {
  std::printf(
      "%-10d %10s %10s %8.1f %8.1f %9.2f %9.2f  %7.0f%% %6.0f%% %6.0f%%     "
      "%6.2f %6.2f\n",
      r.submitters, Rate(r.charges_per_s).c_str(),
      Rate(r.commands_per_s).c_str(), r.commands_per_batch, r.entries_per_batch,
      r.commit_ms, r.submit_ms, 100 * r.writer_apply_share,
      100 * r.writer_sqlite_share, 100 * r.writer_disk_share, r.process_cores,
      r.other_cores);
  if (r.charges > 0) {
    // Committer thread time per charge, the figure to cut.
    const double us = r.seconds * 1e6 / static_cast<double>(r.charges);
    std::printf(
        "  committer thread per charge: %.2f us outside Append, %.2f us "
        "SQLite, %.2f us I/O wait, %.2f us idle\n",
        us * r.writer_apply_share, us * r.writer_sqlite_share,
        us * r.writer_disk_share,
        us * std::max(0.0, 1 - r.writer_apply_share - r.writer_sqlite_share -
                               r.writer_disk_share));
  }
  if (r.charges != r.journal_entries) {
    std::printf(
        "  note: %lld charges acknowledged, %lld journal entries "
        "committed (boundary effects)\n",
        static_cast<long long>(r.charges),
        static_cast<long long>(r.journal_entries));
  }
  if (r.paced > 0) {
    std::printf("  note: %lld waits so that no record ends in the future\n",
                static_cast<long long>(r.paced));
  }
  if (r.refused > 0 || r.errors > 0) {
    std::printf("  refused records: %lld (%lld Submit errors); first: %s\n",
                static_cast<long long>(r.refused),
                static_cast<long long>(r.errors), r.first_problem.c_str());
  }
}

// Whether `r` refused too many records for its figures to mean anything.
bool RefusedTooMany(const RunResult& r) {
  const int64_t total = r.records;
  return (r.refused > 0 || r.errors > 0) &&
         (total == 0 ||
          static_cast<double>(r.refused) > kMaxRefusedShare * total);
}

// Measures each configuration of `o` through `writer`, printing its row,
// into `runs`; raises `most_other_cores`. Returns false, having said so,
// when one refused too many records.
bool MeasureWriter(engine::Writer& writer, const TimedStore& timed,
                   std::vector<Slot>& slots, const Options& o,
                   std::vector<RunResult>& runs, double& most_other_cores) {
  std::printf("%-10s %10s %10s %8s %8s %9s %9s  %-26s %6s %6s\n", "submitters",
              "charges/s", "commands/s", "cmd/txn", "ent/txn", "commit ms",
              "submit ms", "committer other/sql/io", "cores", "others");
  for (const int count : o.counts) {
    RunResult r = Measure(writer, timed, slots, count, o.warmup, o.seconds);
    most_other_cores = std::max(most_other_cores, r.other_cores);
    PrintRun(r);
    const bool invalid = RefusedTooMany(r);
    std::fflush(stdout);
    runs.push_back(r);
    if (invalid) {
      std::printf(
          "\nwriter_bench: more than %.1f%% of records refused; the "
          "figures are not valid.\n",
          100 * kMaxRefusedShare);
      return false;
    }
  }
  return true;
}

// The writer's figures against the ceiling `ceil` and the targets.
void PrintComparison(const std::vector<RunResult>& runs, int per_batch,
                     double ceil) {
  std::printf("\n%-34s %12s %9s  %-32s %s\n", "configuration", "charges/s",
              "/ceiling", "target", "result");
  for (const RunResult& r : runs) {
    const std::string name = absl::StrCat(
        "writer, ", r.submitters, " submitter", r.submitters == 1 ? "" : "s");
    std::printf("%-34s %12s %9.2f", name.c_str(), Rate(r.charges_per_s).c_str(),
                r.charges_per_s / ceil);
    if (r.submitters != kTargetSubmitters) {
      std::printf("  %-32s %s\n", "-", "-");
      continue;
    }
    std::printf(
        "  %-32s %s\n",
        absl::StrCat(">= ", Rate(kTargetChargesPerSecond), "/s").c_str(),
        r.charges_per_s >= kTargetChargesPerSecond ? "PASS" : "BELOW");
    std::printf(
        "%-34s %12s %9s  %-32s %s\n", "", "", "",
        absl::StrCat(">= ", kTargetCeilingShare, " x ceiling (",
                     Rate(kTargetCeilingShare * ceil), "/s)")
            .c_str(),
        r.charges_per_s >= kTargetCeilingShare * ceil ? "PASS" : "BELOW");
  }
  std::printf(
      "%-34s %12s %9.2f  %-32s %s\n",
      absl::StrCat("ceiling: bare inserts, ", per_batch, "/txn").c_str(),
      Rate(ceil).c_str(), 1.0, "-", "-");
}

void PrintLegend(double most_other_cores) {
  std::printf(
      "\ncolumns: cmd/txn and ent/txn are commands and journal entries per "
      "group commit; commit ms is Store::Append; submit ms is Writer::Submit "
      "as a submitter sees it; committer other/sql/io is the share of wall "
      "time the writer's committer thread spent outside Append (freeing "
      "batches, waking submitters), in SQLite (CPU inside Append) and "
      "waiting for I/O (inside Append, off CPU); cores is this process's CPU "
      "time / wall time, others "
      "the CPUs other processes kept busy meanwhile.\n");
  if (most_other_cores > 0.25) {
    std::printf(
        "\nnote: other processes kept up to %.2f CPUs busy during the "
        "measurement; the writer figures understate this machine.\n",
        most_other_cores);
  }
}

// Stops `writer`, measures the ceiling of its store `sqlite` under `dir`
// with batches of the size the writer committed, and prints the comparison.
// Returns the exit status.
int CompareWithCeiling(const std::string& dir, store::Store& sqlite,
                       engine::Writer& writer,
                       const std::vector<RunResult>& runs, const Options& o,
                       double most_other_cores) {
  // The ceiling commits batches of the size the writer committed with 64
  // submitters (or in the last configuration, if 64 was not measured).
  const RunResult* top = &runs.back();
  for (const RunResult& r : runs) {
    if (r.submitters == kTargetSubmitters) top = &r;
  }

  // Templates for the ceiling: charge rows and usage commands the writer
  // just stored.
  const int template_rows = std::max(4096, 4 * o.per_command);
  absl::StatusOr<std::vector<pb::JournalEntry>> entry_templates =
      RecentCharges(sqlite, template_rows);
  absl::StatusOr<std::vector<pb::Command>> command_templates =
      RecentUsageCommands(sqlite, 256);
  writer.Stop();
  if (!entry_templates.ok() || !command_templates.ok()) {
    std::fprintf(stderr, "writer_bench: templates: %s %s\n",
                 entry_templates.status().ToString().c_str(),
                 command_templates.status().ToString().c_str());
    return 1;
  }
  const int per_batch =
      std::max(1, static_cast<int>(std::lround(top->entries_per_batch)));
  const int commands_per_batch =
      std::max(1, static_cast<int>(std::lround(top->commands_per_batch)));
  // The ceiling writes what the writer writes for a batch: the commands,
  // a journal row and a usage row per charge.
  absl::StatusOr<CeilingResult> ceiling =
      Ceiling(dir + "/ceiling", *entry_templates, per_batch, *command_templates,
              commands_per_batch, /*with_usage=*/true, o.seconds);
  absl::StatusOr<CeilingResult> journal_only =
      Ceiling(dir + "/ceiling-journal-only", *entry_templates, per_batch, {}, 0,
              /*with_usage=*/false, o.seconds);
  if (!ceiling.ok() || !journal_only.ok()) {
    std::fprintf(stderr, "writer_bench: ceiling: %s %s\n",
                 ceiling.status().ToString().c_str(),
                 journal_only.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "\nceiling: Store::Append alone on a fresh store, pre-built batches "
      "of %d charge rows (the writer's mean with %d submitters)\n",
      per_batch, top->submitters);
  std::printf(
      "  journal + usage rows, %d command rows %10s charges/s  (%.2f ms per "
      "transaction, %.0f%% of it on CPU; others %.2f)\n",
      commands_per_batch, Rate(ceiling->entries_per_s).c_str(),
      ceiling->commit_ms, 100 * ceiling->cpu_share, ceiling->other_cores);
  std::printf(
      "  journal rows only                   %10s entries/s  (%.2f ms per "
      "transaction, %.0f%% of it on CPU; others %.2f; informational)\n",
      Rate(journal_only->entries_per_s).c_str(), journal_only->commit_ms,
      100 * journal_only->cpu_share, journal_only->other_cores);

  PrintComparison(runs, per_batch, ceiling->entries_per_s);
  PrintLegend(std::max(most_other_cores, ceiling->other_cores));
  return 0;
}

int Run() {
  Options o;
  if (!ReadOptions(o)) return 2;
  absl::StatusOr<TempDir> dir =
      TempDir::Make("writer_bench", absl::GetFlag(FLAGS_dir));
  if (!dir.ok()) {
    std::fprintf(stderr, "writer_bench: %s\n", dir.status().ToString().c_str());
    return 1;
  }
  const std::string writer_dir = dir->path() + "/writer";
  PrintPreamble(dir->path(), o);

  absl::StatusOr<std::unique_ptr<store::Store>> sqlite =
      store::OpenSqliteStore(writer_dir, store::OpenMode::kReadWrite);
  if (!sqlite.ok()) {
    std::fprintf(stderr, "writer_bench: open store: %s\n",
                 sqlite.status().ToString().c_str());
    return 1;
  }
  TimedStore timed(**sqlite);
  RealClock clock;
  engine::WriterOptions options;
  options.max_batch_records = absl::GetFlag(FLAGS_max_batch_records);
  absl::StatusOr<std::unique_ptr<engine::Writer>> writer =
      engine::Writer::Open(timed, clock, options);
  if (!writer.ok()) {
    std::fprintf(stderr, "writer_bench: open writer: %s\n",
                 writer.status().ToString().c_str());
    return 1;
  }
  const auto setup_start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<Slot>> slots = Setup(**writer, o.per_command);
  if (!slots.ok()) {
    std::fprintf(stderr, "writer_bench: setup: %s\n",
                 slots.status().ToString().c_str());
    return 1;
  }
  std::printf("setup: %d allocations through the writer in %.1f s\n\n",
              kClusters * o.per_command,
              Seconds(std::chrono::steady_clock::now() - setup_start));

  std::vector<RunResult> runs;
  double most_other_cores = 0;  // over the writer runs and the ceiling
  if (!MeasureWriter(**writer, timed, *slots, o, runs, most_other_cores)) {
    return 1;
  }
  return CompareWithCeiling(dir->path(), **sqlite, **writer, runs, o,
                            most_other_cores);
}

}  // namespace
}  // namespace computevoucher::bench::writer_bench

int main(int argc, char** argv) {
  computevoucher::UseReleaseMutexChecks();
  computevoucher::ParseFlags(argc, argv);
  return computevoucher::bench::writer_bench::Run();
}
