// What writer_bench (writer_bench.cc) measures: usage reports through the
// writer from concurrent submitters, and the ceiling of bare Store::Append.
#ifndef COMPUTEVOUCHER_TESTS_BENCH_WRITER_BENCH_MEASURE_H_
#define COMPUTEVOUCHER_TESTS_BENCH_WRITER_BENCH_MEASURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "computevoucher/v1/journal.pb.h"
#include "scheduler/engine/writer.h"
#include "scheduler/store/store.h"
#include "tests/bench/writer_bench_world.h"

namespace computevoucher::bench::writer_bench {

// The figures of one configuration.
struct RunResult {
  int submitters = 0;
  double seconds = 0;
  double charges_per_s = 0;
  double commands_per_s = 0;
  double commands_per_batch = 0;
  double entries_per_batch = 0;
  double commit_ms = 0;
  double submit_ms = 0;
  double writer_apply_share = 0;   // of wall time, writer thread
  double writer_sqlite_share = 0;  // CPU inside Append
  double writer_disk_share = 0;    // Append wall minus CPU (fsync, I/O)
  double process_cores = 0;        // process CPU / wall
  double other_cores = 0;  // CPUs kept busy by other processes (or stolen)
  int64_t charges = 0;
  int64_t journal_entries = 0;  // WriterStats.entries delta
  int64_t refused = 0;
  int64_t records = 0;  // sent over the whole run, warm-up included
  int64_t errors = 0;
  int64_t paced = 0;
  std::string first_problem;
};

// Runs `count` submitters reporting usage for the allocations of `slots`
// through `writer` (whose store is `timed`): `warmup_s` unmeasured, then
// `seconds` measured.
RunResult Measure(engine::Writer& writer, const TimedStore& timed,
                  std::vector<Slot>& slots, int count, double warmup_s,
                  double seconds);

struct CeilingResult {
  double entries_per_s = 0;
  double commit_ms = 0;
  int64_t batches = 0;
  double seconds = 0;
  double cpu_share = 0;    // CPU time of the inserting thread / wall time
  double other_cores = 0;  // CPUs other processes kept busy meanwhile
};

// Store::Append alone on a fresh store: `per_batch` entries (and
// `commands_per_batch` commands, when not zero) per transaction, copied from
// `entry_templates` / `command_templates` and renumbered in place.
absl::StatusOr<CeilingResult> Ceiling(
    const std::string& data_dir,
    const std::vector<pb::JournalEntry>& entry_templates, int per_batch,
    const std::vector<pb::Command>& command_templates, int commands_per_batch,
    bool with_usage, double seconds);

// The last `n` rows of the store that are charge entries / usage commands.
absl::StatusOr<std::vector<pb::JournalEntry>> RecentCharges(store::Store& s,
                                                            int n);
absl::StatusOr<std::vector<pb::Command>> RecentUsageCommands(store::Store& s,
                                                             int n);

}  // namespace computevoucher::bench::writer_bench

#endif  // COMPUTEVOUCHER_TESTS_BENCH_WRITER_BENCH_MEASURE_H_
