// history_bench: what a program's history costs the scheduler (issue 15).
//
// Builds a synthetic program through the real writer on the embedded store
// — writer_bench's world: 64 agent clusters, each with one-GPU allocations,
// reporting one record per allocation per command — and, at 1×, 2× and 4×
// a base number of accepted usage records (the same store, grown), measures
// in a fresh process what a restart costs: the cold start (opening the store,
// loading its newest snapshot and replaying the commands after it into the
// writer) and the resident memory after it, twice: after Writer::Stop, which
// leaves the store as a kill does (the snapshotter stops where it is, so the
// tail is what it had not stored yet), and after a planned stop (Writer::Close,
// as on SIGTERM, which stores a snapshot of the last command); a full `verify`
// (replay from the first command, every journal entry checked) in records per
// second; and the store's bytes per record. The targets are printed beside the
// figures. Deterministic: no randomness; record times follow the machine's
// clock.
//
// With --postgres the program lives in that (empty) PostgreSQL database
// instead, and each size also measures a follower's takeover: a leader and
// a follower replica in processes of their own, the follower's standby
// caught up, the leader killed with SIGKILL, and the time until the
// follower leads (the lease, --lease_s, expiring included).
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/mutexes.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/engine/archive.h"
#include "scheduler/engine/replay.h"
#include "scheduler/engine/replica.h"
#include "scheduler/engine/writer.h"
#include "scheduler/store/open_store.h"
#include "tests/bench/bench_util.h"
#include "tests/bench/writer_bench_world.h"
#include "tests/testing/binaries.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/world.h"

ABSL_FLAG(int64_t, records, 500'000,
          "Accepted usage records at 1x; the program is grown to each of "
          "--multiples times this.");
ABSL_FLAG(std::vector<std::string>, multiples,
          std::vector<std::string>({"1", "2", "4"}),
          "Sizes to measure, as multiples of --records, ascending.");
ABSL_FLAG(int, allocations_per_cluster, 32,
          "One-GPU allocations on each of the 64 clusters (1..1024).");
ABSL_FLAG(std::string, dir, "",
          "Directory for the temporary data directory; default $TMPDIR or "
          "/tmp.");
ABSL_FLAG(std::string, postgres, "",
          "Grow the program in this empty PostgreSQL database (a URL) instead "
          "of the embedded store, and measure follower takeover too.");
ABSL_FLAG(int, lease_s, 1,
          "The replicas' lease in seconds for the takeover (1..300).");
ABSL_FLAG(bool, archive, true,
          "After the largest size, archive the whole program "
          "(voucher-scheduler archive, with a clock 40 days on) and measure "
          "it, verify --archive and the cold start after it.");
ABSL_FLAG(std::string, measure, "",
          "Internal: measure a restart of the store in this data directory "
          "and print one line of figures.");
ABSL_FLAG(bool, measure_verify, true,
          "Internal: with --measure, verify the store after the restart.");
ABSL_FLAG(std::string, replica, "",
          "Internal: run as the takeover's leader or follower replica.");

namespace computevoucher::bench::history_bench {
namespace {

namespace pb = ::computevoucher::v1;
using writer_bench::Slot;

// Targets of issue 15 on the 2-core development machine.
constexpr double kColdStartTargetS = 3.0;
constexpr double kRssGrowthTarget = 0.10;
constexpr double kRssTargetBytes = 1024.0 * 1024 * 1024;
constexpr double kBytesPerRecordTarget = 64;
constexpr double kVerifyTargetPerS = 500'000;
constexpr double kTakeoverTargetS = 3.0;

// The store the program lives in: PostgreSQL when --postgres names one, the
// embedded store in `data_dir` otherwise.
pb::SchedulerConfig StoreConfig(const std::string& data_dir) {
  pb::SchedulerConfig config;
  config.set_data_dir(data_dir);
  config.set_store(absl::GetFlag(FLAGS_postgres));
  return config;
}

bool OnPostgres() { return !absl::GetFlag(FLAGS_postgres).empty(); }

// What archiving the whole program cost, and what it left.
struct ArchiveRow {
  int64_t records = 0;
  int64_t commands = 0;
  double archive_s = 0;
  int64_t part_bytes = 0;
  int64_t in_use_before = 0;  // bytes of the store holding data
  int64_t in_use_after = 0;
  double verify_s = 0;
  int64_t verified_records = 0;
  double cold_start_s = 0;
};

// The real clock, 40 days on: what the program did today is then a closed
// period that may be archived.
class LaterClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now() + absl::Hours(24 * 40); }
};

// What a restart cost, as measured in a fresh process.
struct Restart {
  double cold_start_s = 0;
  int64_t rss_bytes = 0;
  double verify_s = 0;
  int64_t commands = 0;
};

// The bytes of the files in `dir`; 0 when it does not exist yet.
int64_t DirectoryBytes(const std::string& dir) {
  int64_t total = 0;
  if (!std::filesystem::exists(dir)) return 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file()) total += entry.file_size();
  }
  return total;
}

// The bytes the store takes: its data directory's files, or the
// PostgreSQL database's size (as psql reports it).
absl::StatusOr<int64_t> StoreBytes(const std::string& data_dir) {
  if (!OnPostgres()) return DirectoryBytes(data_dir);
  const std::string command =
      absl::StrCat("psql '", absl::GetFlag(FLAGS_postgres),
                   "' -Atc 'SELECT pg_database_size(current_database())'");
  FILE* psql = popen(command.c_str(), "r");
  if (psql == nullptr) return absl::InternalError("cannot run psql");
  char line[64] = {0};
  const bool read = std::fgets(line, sizeof(line), psql) != nullptr;
  int64_t bytes = 0;
  if (pclose(psql) != 0 || !read ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &bytes)) {
    return absl::InternalError(absl::StrCat("psql failed: ", line));
  }
  return bytes;
}

// Seconds to open the store in `data_dir` and its writer as a restarting
// scheduler does; with `rss_bytes`, the resident memory with them open.
absl::StatusOr<double> ColdStart(const std::string& data_dir, Clock& clock,
                                 int64_t* rss_bytes = nullptr) {
  const auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(
      std::unique_ptr<store::Store> store,
      store::OpenStore(StoreConfig(data_dir), store::OpenMode::kReadWrite));
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Writer> writer,
                   engine::Writer::Open(*store, clock));
  const double seconds = Seconds(std::chrono::steady_clock::now() - t0);
  if (rss_bytes != nullptr) *rss_bytes = bench::ResidentBytes();
  return seconds;
}

// The child's side: opens the store and the writer as a restarting
// scheduler does, then verifies it as `voucher-scheduler verify` does.
absl::StatusOr<Restart> MeasureRestart(const std::string& data_dir) {
  RealClock clock;
  Restart r;
  ASSIGN_OR_RETURN(r.cold_start_s, ColdStart(data_dir, clock, &r.rss_bytes));
  if (!absl::GetFlag(FLAGS_measure_verify)) return r;
  const auto t1 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(
      std::unique_ptr<store::Store> store,
      store::OpenStore(StoreConfig(data_dir), store::OpenMode::kReadOnly));
  core::StateMachine replayed;
  ASSIGN_OR_RETURN(const engine::ReplayReport report,
                   engine::Replay(*store, *store, *store, replayed));
  RETURN_IF_ERROR(engine::CheckReport(report));
  r.verify_s = Seconds(std::chrono::steady_clock::now() - t1);
  r.commands = report.commands;
  return r;
}

// The bytes of the embedded store's pages that hold data (freed pages,
// which SQLite reuses, left out); the database's size on PostgreSQL.
absl::StatusOr<int64_t> InUseBytes(const std::string& data_dir) {
  if (OnPostgres()) return StoreBytes(data_dir);
  sqlite3* db = nullptr;
  const std::string path = data_dir + "/scheduler.db";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    sqlite3_close(db);
    return absl::InternalError(absl::StrCat("cannot open ", path));
  }
  int64_t values[3] = {0, 0, 0};
  const char* pragmas[3] = {"PRAGMA page_count", "PRAGMA freelist_count",
                            "PRAGMA page_size"};
  for (int i = 0; i < 3; ++i) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, pragmas[i], -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      values[i] = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return (values[0] - values[1]) * values[2];
}

// Archives the whole program in `data_dir` into `archive_dir`, then
// measures a cold start and verify --archive.
absl::StatusOr<ArchiveRow> ArchiveAndMeasure(const std::string& data_dir,
                                             const std::string& archive_dir) {
  ArchiveRow r;
  ASSIGN_OR_RETURN(r.in_use_before, InUseBytes(data_dir));
  {
    ASSIGN_OR_RETURN(
        std::unique_ptr<store::Store> store,
        store::OpenStore(StoreConfig(data_dir), store::OpenMode::kReadWrite));
    LaterClock later;
    const absl::Time before = StartOfDay(
        absl::ToCivilDay(absl::Now() + absl::Hours(24), ShanghaiZone()));
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(const engine::ArchiveReport report,
                     engine::ArchiveBefore(*store, later, before, archive_dir));
    r.archive_s = Seconds(std::chrono::steady_clock::now() - t0);
    r.records = report.usage_records;
    r.commands = report.commands;
    r.part_bytes = report.bytes;
  }
  ASSIGN_OR_RETURN(r.in_use_after, InUseBytes(data_dir));
  LaterClock clock;
  ASSIGN_OR_RETURN(r.cold_start_s, ColdStart(data_dir, clock));
  const auto t2 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(
      std::unique_ptr<store::Store> store,
      store::OpenStore(StoreConfig(data_dir), store::OpenMode::kReadOnly));
  ASSIGN_OR_RETURN(const std::optional<store::Horizon> horizon,
                   store->ReadHorizon());
  ASSIGN_OR_RETURN(
      std::vector<engine::LoadedArchive> archives,
      engine::LoadArchives(archive_dir, horizon.value_or(store::Horizon{})));
  engine::ArchivedLog log(std::move(archives), *store);
  core::StateMachine replayed;
  ASSIGN_OR_RETURN(const engine::ReplayReport report,
                   engine::Replay(log, log, *store, replayed));
  RETURN_IF_ERROR(engine::CheckReport(report));
  ASSIGN_OR_RETURN(const std::vector<std::string> violations,
                   log.Violations(horizon.value_or(store::Horizon{})));
  if (!violations.empty()) return absl::DataLossError(violations.front());
  r.verify_s = Seconds(std::chrono::steady_clock::now() - t2);
  r.verified_records = report.usage_records;
  return r;
}

void PrintArchive(const ArchiveRow& r) {
  std::printf(
      "\narchive of the whole program (voucher-scheduler archive), then "
      "verify --archive and a cold start (no targets in the issue)\n");
  std::printf(
      "  archived            %s records, %s commands in %.1f s (%s "
      "records/s)\n",
      Rate(static_cast<double>(r.records)).c_str(),
      Rate(static_cast<double>(r.commands)).c_str(), r.archive_s,
      Rate(r.records / r.archive_s).c_str());
  std::printf(
      "  archive files       %s bytes, %.1f per record\n",
      Rate(static_cast<double>(r.part_bytes)).c_str(),
      static_cast<double>(r.part_bytes) / std::max<int64_t>(1, r.records));
  std::printf("  store in use        %s bytes before, %s after%s\n",
              Rate(static_cast<double>(r.in_use_before)).c_str(),
              Rate(static_cast<double>(r.in_use_after)).c_str(),
              OnPostgres() ? " (database size: PostgreSQL reuses the space "
                             "after VACUUM)"
                           : " (pages holding data; SQLite reuses the freed "
                             "ones)");
  std::printf("  verify --archive    %.1f s for %s records (%s records/s)\n",
              r.verify_s, Rate(static_cast<double>(r.verified_records)).c_str(),
              Rate(r.verified_records / r.verify_s).c_str());
  std::printf("  cold start after    %.2f s\n", r.cold_start_s);
}

// The parent's side: runs this binary with --measure and reads its line;
// without `verify`, only the restart.
absl::StatusOr<Restart> RestartInChild(const std::string& data_dir,
                                       bool verify) {
  const std::string command = absl::StrCat(
      "/proc/", getpid(), "/exe --measure='", data_dir, "' --postgres='",
      absl::GetFlag(FLAGS_postgres), "' --measure_verify=", verify);
  FILE* child = popen(command.c_str(), "r");
  if (child == nullptr) return absl::InternalError("cannot start the child");
  char line[512] = {0};
  const bool read = std::fgets(line, sizeof(line), child) != nullptr;
  const int status = pclose(child);
  Restart r;
  std::vector<std::string> fields = absl::StrSplit(line, ' ');
  if (!read || status != 0 || fields.size() != 5 || fields[0] != "restart" ||
      !absl::SimpleAtod(fields[1], &r.cold_start_s) ||
      !absl::SimpleAtoi(fields[2], &r.rss_bytes) ||
      !absl::SimpleAtod(fields[3], &r.verify_s) ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[4]), &r.commands)) {
    return absl::InternalError(absl::StrCat("measuring child failed: ", line));
  }
  return r;
}

// Reads the number that follows `prefix` in `log` to the end of its line.
bool NumberAfter(const std::string& log, const std::string& prefix,
                 int64_t* out) {
  const size_t at = log.find(prefix);
  if (at == std::string::npos) return false;
  const size_t from = at + prefix.size();
  return absl::SimpleAtoi(log.substr(from, log.find('\n', from) - from), out);
}

// The child's side of a takeover: a replica of the PostgreSQL store. The
// leader says "leader ready" and waits to be killed; the follower waits until
// it leads, says "led at <Unix ns>", and resigns.
int RunReplica(const std::string& role) {
  RealClock clock;
  absl::StatusOr<std::unique_ptr<store::Store>> store =
      store::OpenStore(StoreConfig(""), store::OpenMode::kReplica);
  if (!store.ok()) {
    std::printf("error %s\n", store.status().ToString().c_str());
    return 1;
  }
  engine::ReplicaOptions options;
  options.lease = absl::Seconds(absl::GetFlag(FLAGS_lease_s));
  engine::Replica replica(**store, clock, options);
  const absl::Status started =
      replica.Start(role == "leader" ? "127.0.0.1:1" : "127.0.0.1:2");
  if (!started.ok()) {
    std::printf("error %s\n", started.ToString().c_str());
    return 1;
  }
  // A lease left by an earlier holder may have to expire first.
  while (role == "leader" && !replica.leading()) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  if (role == "leader") {
    std::printf("leader ready\n");
    std::fflush(stdout);
    while (true) absl::SleepFor(absl::Hours(1));
  }
  while (!replica.leading()) absl::SleepFor(absl::Milliseconds(1));
  std::printf("led at %lld\n",
              static_cast<long long>(absl::ToUnixNanos(absl::Now())));
  std::fflush(stdout);
  replica.Stop();
  return 0;
}

// The parent's side: starts a leader and then a follower, waits until the
// follower's standby state has caught up, kills the leader, and returns the
// seconds until the follower led. Their logs go to `log_dir`, named by
// `size`.
absl::StatusOr<double> MeasureTakeover(const std::string& log_dir,
                                       int64_t size) {
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe");
  auto args = [&](const std::string& role) {
    return std::vector<std::string>{
        exe, "--replica=" + role, "--postgres=" + absl::GetFlag(FLAGS_postgres),
        absl::StrCat("--lease_s=", absl::GetFlag(FLAGS_lease_s))};
  };
  auto says = [](testing::ChildProcess& child, absl::string_view what) {
    return testing::PollUntil(
               [&] {
                 return absl::StrContains(child.Log(), what) ||
                        !child.Running();
               },
               absl::Minutes(10)) &&
           absl::StrContains(child.Log(), what);
  };
  testing::ChildProcess leader(args("leader"),
                               absl::StrCat(log_dir, "/leader-", size, ".log"));
  if (!says(leader, "leader ready")) {
    return absl::InternalError(
        absl::StrCat("the leader did not lead: ", leader.Log()));
  }
  testing::ChildProcess follower(
      args("follower"), absl::StrCat(log_dir, "/follower-", size, ".log"));
  if (!says(follower, "standby: caught up")) {
    return absl::InternalError(absl::StrCat(
        "the follower's standby did not catch up: ", follower.Log()));
  }
  const absl::Time killed = absl::Now();
  leader.Stop(SIGKILL);
  int64_t led_ns = 0;
  if (!says(follower, "led at ") || follower.Wait(absl::Minutes(1)) != 0 ||
      !NumberAfter(follower.Log(), "led at ", &led_ns)) {
    return absl::InternalError(
        absl::StrCat("the follower did not take over: ", follower.Log()));
  }
  if (absl::FromUnixNanos(led_ns) < killed) {
    return absl::InternalError(absl::StrCat(
        "the follower led before the leader was killed: ", follower.Log()));
  }
  return absl::ToDoubleSeconds(absl::FromUnixNanos(led_ns) - killed);
}

// Reports one record for each allocation of `slot` through `writer`, up to
// now; returns how many were accepted. Waits a millisecond when the clock
// has not moved past the slot's last record.
absl::StatusOr<int64_t> ReportOnce(engine::Writer& writer, Slot& slot,
                                   const std::string& request_id) {
  const absl::Time now = absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()));
  for (const writer_bench::Meter& m : slot.meters) {
    if (m.cursor >= now) {
      absl::SleepFor(absl::Milliseconds(1));
      return 0;
    }
  }
  ASSIGN_OR_RETURN(
      const core::Outcome outcome,
      writer.Submit(writer_bench::UsageCommand(slot, now, request_id)));
  const auto& response =
      static_cast<const pb::ReportUsageResponse&>(*outcome.response);
  for (int i = 0; i < response.acks_size(); ++i) {
    const pb::UsageAck& ack = response.acks(i);
    if (ack.result() != pb::USAGE_RESULT_ACCEPTED) {
      return absl::InternalError(
          absl::StrCat(ack.allocation_id(), " #", ack.sequence(), ": ",
                       pb::UsageResult_Name(ack.result()), " ", ack.reason()));
    }
    ++slot.meters[i].next_sequence;
    slot.meters[i].cursor = now;
  }
  return response.acks_size();
}

// Reports usage for every allocation of `slots` through `writer` from 16
// threads (each its own slots) until `records` more were accepted.
absl::Status Grow(engine::Writer& writer, std::vector<Slot>& slots,
                  int64_t records) {
  constexpr int kThreads = 16;
  std::atomic<int64_t> accepted{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      int64_t n = 0;
      while (accepted.load() < records && !failed.load()) {
        for (size_t s = t; s < slots.size(); s += kThreads) {
          absl::StatusOr<int64_t> got =
              ReportOnce(writer, slots[s], absl::StrCat("h-", t, "-", ++n));
          if (!got.ok()) {
            std::fprintf(stderr, "history_bench: %s\n",
                         got.status().ToString().c_str());
            failed.store(true);
            return;
          }
          accepted.fetch_add(*got);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return failed.load() ? absl::InternalError("usage was refused")
                       : absl::OkStatus();
}

int64_t AcceptedRecords(const std::vector<Slot>& slots) {
  int64_t accepted = 0;
  for (const Slot& slot : slots) {
    for (const writer_bench::Meter& m : slot.meters) {
      accepted += m.next_sequence - 1;
    }
  }
  return accepted;
}

struct Row {
  int64_t records = 0;
  Restart restart;  // after a stop as a kill leaves the store, and verify
  Restart planned;  // after a planned stop
  int64_t store_bytes = 0;
  double takeover_s = -1;  // -1: not measured (embedded store)
};

void Print(const std::vector<Row>& rows) {
  // Restarts after a kill and after a planned stop, side by side.
  std::printf("\n%12s %25s %12s %25s\n", "", "cold start s", "",
              "RSS MiB after it");
  std::printf("%12s %12s %12s %12s %12s %12s %14s %12s %16s\n", "records",
              "killed", "stopped", "takeover s", "killed", "stopped",
              "store B/record", "verify s", "verify records/s");
  for (const Row& row : rows) {
    const std::string takeover =
        row.takeover_s < 0 ? "-" : absl::StrFormat("%.2f", row.takeover_s);
    std::printf(
        "%12s %12.2f %12.2f %12s %12.1f %12.1f %14.1f %12.2f %16s\n",
        Rate(static_cast<double>(row.records)).c_str(),
        row.restart.cold_start_s, row.planned.cold_start_s, takeover.c_str(),
        static_cast<double>(row.restart.rss_bytes) / (1 << 20),
        static_cast<double>(row.planned.rss_bytes) / (1 << 20),
        static_cast<double>(row.store_bytes) / row.records,
        row.restart.verify_s, Rate(row.records / row.restart.verify_s).c_str());
  }
}

const char* Verdict(bool met) { return met ? "PASS" : "BELOW"; }

// The largest RSS after a restart over the sizes, and its growth from the
// smallest size's.
std::pair<double, double> RssGrowth(const std::vector<Row>& rows,
                                    Restart Row::*restart) {
  double rss_max = 0;
  for (const Row& row : rows) {
    rss_max = std::max(rss_max, static_cast<double>((row.*restart).rss_bytes));
  }
  return {rss_max,
          rss_max / static_cast<double>((rows.front().*restart).rss_bytes) - 1};
}

void PrintTargets(const std::vector<Row>& rows) {
  double worst_start = 0, worst_bytes = 0, worst_verify = 1e18;
  double worst_takeover = -1;
  for (const Row& row : rows) {
    worst_takeover = std::max(worst_takeover, row.takeover_s);
    worst_start = std::max(
        {worst_start, row.restart.cold_start_s, row.planned.cold_start_s});
    worst_bytes = std::max(worst_bytes,
                           static_cast<double>(row.store_bytes) / row.records);
    worst_verify = std::min(worst_verify, row.records / row.restart.verify_s);
  }
  const auto [killed_max, killed_growth] = RssGrowth(rows, &Row::restart);
  const auto [stopped_max, stopped_growth] = RssGrowth(rows, &Row::planned);
  const double rss_max = std::max(killed_max, stopped_max);
  std::printf("\n%-40s %14s  %-22s %s\n", "measure (worst over the sizes)",
              "value", "target", "result");
  std::printf("%-40s %14.2f  %-22s %s\n", "cold start, s", worst_start, "< 3 s",
              Verdict(worst_start < kColdStartTargetS));
  std::printf("%-40s %13.0f%%  %-22s %s\n", "RSS growth, restart after a stop",
              stopped_growth * 100, "within 10%",
              Verdict(stopped_growth <= kRssGrowthTarget));
  std::printf("%-40s %13.0f%%  %-22s %s\n", "RSS growth, restart after a kill",
              killed_growth * 100, "within 10%",
              Verdict(killed_growth <= kRssGrowthTarget));
  std::printf("%-40s %14.1f  %-22s %s\n", "RSS after a restart, MiB",
              rss_max / (1 << 20), "< 1024 MiB",
              Verdict(rss_max < kRssTargetBytes));
  std::printf("%-40s %14.1f  %-22s %s\n", "store bytes per usage record",
              worst_bytes, "<= 64",
              Verdict(worst_bytes <= kBytesPerRecordTarget));
  std::printf("%-40s %14s  %-22s %s\n", "full verify, records/s",
              Rate(worst_verify).c_str(), ">= 500,000/s",
              Verdict(worst_verify >= kVerifyTargetPerS));
  if (worst_takeover < 0) {
    std::printf("%-40s %14s  %-22s %s\n", "follower takeover, s", "-", "< 3 s",
                "not measured (embedded store: give --postgres)");
  } else {
    std::printf(
        "%-40s %14.2f  %-22s %s\n", "follower takeover, s", worst_takeover,
        absl::StrCat("< 3 s (lease ", absl::GetFlag(FLAGS_lease_s), " s)")
            .c_str(),
        Verdict(worst_takeover < kTakeoverTargetS));
  }
}

// The sizes --records and --multiples ask for, ascending; empty when they
// are not valid.
std::vector<int64_t> Sizes() {
  std::vector<int64_t> sizes;
  const int64_t base = absl::GetFlag(FLAGS_records);
  for (const std::string& m : absl::GetFlag(FLAGS_multiples)) {
    int64_t k = 0;
    if (base < 1 || !absl::SimpleAtoi(m, &k) || k < 1 ||
        (!sizes.empty() && k * base <= sizes.back())) {
      std::fprintf(stderr,
                   "--records must be at least 1 and --multiples ascending "
                   "whole numbers (got %s)\n",
                   m.c_str());
      return {};
    }
    sizes.push_back(k * base);
  }
  return sizes;
}

// The program being grown: its store, writer and the agents' meters.
class Program {
 public:
  // `dir`: for the data directory and the takeover's logs.
  explicit Program(const std::string& dir)
      : dir_(dir), data_dir_(dir + "/data") {}

  absl::Status Create(int per_cluster) {
    ASSIGN_OR_RETURN(empty_bytes_, StoreBytes(data_dir_));
    RETURN_IF_ERROR(Open());
    ASSIGN_OR_RETURN(slots_, writer_bench::Setup(*writer_, per_cluster));
    return absl::OkStatus();
  }

  // Grows the program to `size` accepted records, closes it, measures a
  // restart in a fresh process, and opens it again.
  absl::StatusOr<Row> GrowAndMeasure(int64_t size) {
    const auto t0 = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(Grow(*writer_, slots_, size - AcceptedRecords(slots_)));
    Row row;
    row.records = AcceptedRecords(slots_);
    std::printf("  grown to %s records in %.1f s\n",
                Rate(static_cast<double>(row.records)).c_str(),
                Seconds(std::chrono::steady_clock::now() - t0));
    // As a killed scheduler leaves the store: the snapshotter's newest
    // snapshot and the tail after it (Writer::Stop stores none).
    RETURN_IF_ERROR(Close(/*planned=*/false));
    ASSIGN_OR_RETURN(row.store_bytes, StoreBytes(data_dir_));
    row.store_bytes -= empty_bytes_;
    ASSIGN_OR_RETURN(row.restart, RestartInChild(data_dir_, /*verify=*/true));
    if (OnPostgres()) {
      ASSIGN_OR_RETURN(row.takeover_s, MeasureTakeover(dir_, row.records));
    }
    RETURN_IF_ERROR(Open());
    RETURN_IF_ERROR(Close(/*planned=*/true));
    ASSIGN_OR_RETURN(row.planned, RestartInChild(data_dir_, /*verify=*/false));
    RETURN_IF_ERROR(Open());
    return row;
  }

  // Stops the writer (`planned`: as on SIGTERM, with a snapshot of the
  // last command) and closes the store.
  absl::Status Close(bool planned) {
    absl::Status closed = absl::OkStatus();
    if (planned) {
      closed = writer_->Close();
    } else {
      writer_->Stop();
    }
    writer_.reset();
    store_.reset();
    return closed;
  }

 private:
  absl::Status Open() {
    ASSIGN_OR_RETURN(store_, store::OpenStore(StoreConfig(data_dir_),
                                              store::OpenMode::kReadWrite));
    ASSIGN_OR_RETURN(writer_, engine::Writer::Open(*store_, clock_));
    return absl::OkStatus();
  }

  const std::string dir_;
  const std::string data_dir_;
  int64_t empty_bytes_ = 0;  // of the store before the program
  RealClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<engine::Writer> writer_;  // closed before the store
  std::vector<Slot> slots_;
};

int Run() {
  const std::vector<int64_t> sizes = Sizes();
  const int per_cluster = absl::GetFlag(FLAGS_allocations_per_cluster);
  const int lease_s = absl::GetFlag(FLAGS_lease_s);
  if (sizes.empty() || per_cluster < 1 || per_cluster > 1024 || lease_s < 1 ||
      lease_s > 300) {
    std::fprintf(stderr,
                 "usage: history_bench [--records N] [--multiples "
                 "1,2,4] [--allocations_per_cluster 1..1024] [--postgres URL "
                 "[--lease_s 1..300]]\n");
    return 2;
  }
  absl::StatusOr<testing::TempDir> temp =
      testing::TempDir::Make("history_bench", absl::GetFlag(FLAGS_dir));
  if (!temp.ok()) {
    std::fprintf(stderr, "%s\n", temp.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "history_bench: what a program's history costs a restart\n"
      "  store            %s\n"
      "  data directory   %s/data (%s), removed at exit\n"
      "  workload         64 agent clusters x %d one-GPU allocations; "
      "one record per allocation per ReportUsage\n",
      OnPostgres() ? "PostgreSQL (--postgres)" : "embedded (SQLite)",
      temp->path().c_str(), FileSystemType(temp->path()).c_str(), per_cluster);
  Program program(temp->path());
  std::vector<Row> rows;
  absl::Status status = program.Create(per_cluster);
  for (size_t i = 0; status.ok() && i < sizes.size(); ++i) {
    absl::StatusOr<Row> row = program.GrowAndMeasure(sizes[i]);
    status = row.status();
    if (row.ok()) rows.push_back(*row);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "history_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  Print(rows);
  PrintTargets(rows);
  if (absl::GetFlag(FLAGS_archive)) {
    program.Close(/*planned=*/false).IgnoreError();  // a Stop: always OK
    const absl::StatusOr<ArchiveRow> archived =
        ArchiveAndMeasure(temp->path() + "/data", temp->path() + "/archive");
    if (!archived.ok()) {
      std::fprintf(stderr, "history_bench: archive: %s\n",
                   archived.status().ToString().c_str());
      return 1;
    }
    PrintArchive(*archived);
  }
  return 0;
}

int RunChild(const std::string& data_dir) {
  absl::StatusOr<Restart> r = MeasureRestart(data_dir);
  if (!r.ok()) {
    std::printf("error %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::printf("restart %.6f %lld %.6f %lld\n", r->cold_start_s,
              static_cast<long long>(r->rss_bytes), r->verify_s,
              static_cast<long long>(r->commands));
  return 0;
}

}  // namespace
}  // namespace computevoucher::bench::history_bench

int main(int argc, char** argv) {
  computevoucher::UseReleaseMutexChecks();
  absl::ParseCommandLine(argc, argv);
  namespace hb = computevoucher::bench::history_bench;
  if (!absl::GetFlag(FLAGS_measure).empty()) {
    return hb::RunChild(absl::GetFlag(FLAGS_measure));
  }
  if (!absl::GetFlag(FLAGS_replica).empty()) {
    return hb::RunReplica(absl::GetFlag(FLAGS_replica));
  }
  return hb::Run();
}
