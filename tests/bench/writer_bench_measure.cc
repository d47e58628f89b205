#include "tests/bench/writer_bench_measure.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "computevoucher/v1/agent.pb.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/bench/bench_util.h"
#include "tests/testing/world.h"

namespace computevoucher::bench::writer_bench {
namespace {

// What the submitters of one configuration counted, written by their
// threads and summed by the main thread.
struct alignas(64) Counters {
  std::atomic<int64_t> commands{0};
  std::atomic<int64_t> accepted{0};  // records
  std::atomic<int64_t> charges{0};   // accepted records that charged
  std::atomic<int64_t> refused{0};   // records not accepted
  std::atomic<int64_t> errors{0};    // Submit errors
  std::atomic<int64_t> paced{0};  // waits so that no record ends in the future
  std::atomic<int64_t> latency_ns{0};  // Submit, summed
};

struct Snapshot {
  std::chrono::steady_clock::time_point at;
  int64_t commands = 0, accepted = 0, charges = 0, refused = 0, errors = 0,
          paced = 0, latency_ns = 0;
  engine::WriterStats writer;
  TimedStore::Totals store;
  int64_t process_cpu_ns = 0;
  double machine_busy_s = 0;
};

class Submitters {
 public:
  Submitters(engine::Writer& writer, std::vector<Slot>& slots, int count)
      : writer_(writer), counters_(count) {
    for (int t = 0; t < count; ++t) {
      std::vector<Slot*> mine;
      for (size_t c = t; c < slots.size(); c += count)
        mine.push_back(&slots[c]);
      threads_.emplace_back([this, t, count, mine] { Loop(t, count, mine); });
    }
  }
  ~Submitters() { Stop(); }

  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  void Fill(Snapshot& s) const {
    for (const Counters& c : counters_) {
      s.commands += c.commands.load(std::memory_order_relaxed);
      s.accepted += c.accepted.load(std::memory_order_relaxed);
      s.charges += c.charges.load(std::memory_order_relaxed);
      s.refused += c.refused.load(std::memory_order_relaxed);
      s.errors += c.errors.load(std::memory_order_relaxed);
      s.paced += c.paced.load(std::memory_order_relaxed);
      s.latency_ns += c.latency_ns.load(std::memory_order_relaxed);
    }
  }

  std::string first_problem() const { return problems_.get(); }

 private:
  void Loop(int t, int count, std::vector<Slot*> mine) {
    Counters& counters = counters_[t];
    int64_t n = 0;
    size_t next = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      Slot& slot = *mine[next];
      next = (next + 1) % mine.size();
      // As an agent does, each record covers from the end of the previous
      // one to now (whole milliseconds), so record ends follow real time;
      // the writer stamps a time no earlier than this one.
      const absl::Time now =
          absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()));
      absl::Time latest = absl::InfinitePast();
      for (const Meter& m : slot.meters) latest = std::max(latest, m.cursor);
      if (latest >= now) {
        counters.paced.fetch_add(1, std::memory_order_relaxed);
        absl::SleepFor(absl::Milliseconds(1));
        continue;
      }
      pb::Command c =
          UsageCommand(slot, now, absl::StrCat("u-", count, "-", t, "-", ++n));
      const auto t0 = std::chrono::steady_clock::now();
      absl::StatusOr<core::Outcome> outcome = writer_.Submit(std::move(c));
      const auto t1 = std::chrono::steady_clock::now();
      counters.latency_ns.fetch_add(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count(),
          std::memory_order_relaxed);
      counters.commands.fetch_add(1, std::memory_order_relaxed);
      if (!outcome.ok()) {
        counters.errors.fetch_add(1, std::memory_order_relaxed);
        counters.refused.fetch_add(static_cast<int64_t>(slot.meters.size()),
                                   std::memory_order_relaxed);
        problems_.Note(outcome.status().ToString());
        continue;
      }
      const auto& response =
          static_cast<const pb::ReportUsageResponse&>(*outcome->response);
      int64_t accepted = 0, charges = 0, refused = 0;
      for (int i = 0; i < response.acks_size(); ++i) {
        const pb::UsageAck& ack = response.acks(i);
        Meter& m = slot.meters[i];
        if (ack.result() != pb::USAGE_RESULT_ACCEPTED) {
          ++refused;
          problems_.Note(absl::StrCat(ack.allocation_id(), " #", ack.sequence(),
                                      ": ", pb::UsageResult_Name(ack.result()),
                                      " ", ack.reason()));
          continue;
        }
        ++accepted;
        if (ack.subsidy_fen() > 0) ++charges;
        ++m.next_sequence;
        m.cursor = now;
      }
      counters.accepted.fetch_add(accepted, std::memory_order_relaxed);
      counters.charges.fetch_add(charges, std::memory_order_relaxed);
      counters.refused.fetch_add(refused, std::memory_order_relaxed);
    }
  }

  engine::Writer& writer_;
  std::vector<Counters> counters_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  FirstProblem problems_;
};

Snapshot Take(const engine::Writer& writer, const TimedStore& timed,
              const Submitters& submitters) {
  Snapshot s;
  s.at = std::chrono::steady_clock::now();
  submitters.Fill(s);
  s.writer = writer.stats();
  s.store = timed.totals();
  s.process_cpu_ns = ProcessCpuNanos();
  s.machine_busy_s = MachineBusySeconds();
  return s;
}

}  // namespace

RunResult Measure(engine::Writer& writer, const TimedStore& timed,
                  std::vector<Slot>& slots, int count, double warmup_s,
                  double seconds) {
  Submitters submitters(writer, slots, count);
  absl::SleepFor(absl::Seconds(warmup_s));
  const Snapshot a = Take(writer, timed, submitters);
  absl::SleepFor(absl::Seconds(seconds));
  const Snapshot b = Take(writer, timed, submitters);
  submitters.Stop();
  const Snapshot end = Take(writer, timed, submitters);

  RunResult r;
  r.submitters = count;
  r.seconds = Seconds(b.at - a.at);
  const double wall_ns = r.seconds * 1e9;
  r.charges = b.charges - a.charges;
  r.journal_entries = b.writer.entries - a.writer.entries;
  r.charges_per_s = static_cast<double>(r.charges) / r.seconds;
  const int64_t commands = b.commands - a.commands;
  r.commands_per_s = static_cast<double>(commands) / r.seconds;
  const int64_t batches = b.writer.batches - a.writer.batches;
  if (batches > 0) {
    r.commands_per_batch =
        static_cast<double>(b.writer.commands - a.writer.commands) / batches;
    r.entries_per_batch = static_cast<double>(r.journal_entries) / batches;
  }
  const int64_t appends = b.store.appends - a.store.appends;
  if (appends > 0) {
    r.commit_ms =
        static_cast<double>(b.store.wall_ns - a.store.wall_ns) / appends / 1e6;
  }
  if (commands > 0) {
    r.submit_ms =
        static_cast<double>(b.latency_ns - a.latency_ns) / commands / 1e6;
  }
  const double append_wall =
      static_cast<double>(b.store.wall_ns - a.store.wall_ns);
  const double append_cpu =
      static_cast<double>(b.store.cpu_ns - a.store.cpu_ns);
  const double writer_cpu =
      static_cast<double>(b.store.thread_cpu_ns - a.store.thread_cpu_ns);
  r.writer_sqlite_share = append_cpu / wall_ns;
  r.writer_disk_share = std::max(0.0, append_wall - append_cpu) / wall_ns;
  r.writer_apply_share = std::max(0.0, writer_cpu - append_cpu) / wall_ns;
  r.process_cores =
      static_cast<double>(b.process_cpu_ns - a.process_cpu_ns) / wall_ns;
  r.other_cores = std::max(
      0.0, (b.machine_busy_s - a.machine_busy_s) / r.seconds - r.process_cores);
  // Refusals over the whole run, warm-up included.
  r.records = end.accepted + end.refused;
  r.refused = end.refused;
  r.errors = end.errors;
  r.paced = end.paced;
  r.first_problem = submitters.first_problem();
  return r;
}

absl::StatusOr<CeilingResult> Ceiling(
    const std::string& data_dir,
    const std::vector<pb::JournalEntry>& entry_templates, int per_batch,
    const std::vector<pb::Command>& command_templates, int commands_per_batch,
    bool with_usage, double seconds) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<store::Store> store,
      store::OpenSqliteStore(data_dir, store::OpenMode::kReadWrite));
  store::Batch batch;
  for (int i = 0; i < per_batch; ++i)
    batch.entries.push_back(entry_templates[i % entry_templates.size()]);
  for (int i = 0; i < commands_per_batch; ++i)
    batch.commands.push_back(command_templates[i % command_templates.size()]);
  // The usage row the writer stores beside each charge.
  if (with_usage) {
    for (const pb::JournalEntry& e : batch.entries) {
      pb::ChargedUsage& u = batch.usage.emplace_back();
      u.mutable_record()->set_allocation_id(e.allocation_id());
      u.mutable_record()->set_sequence(e.usage_sequence());
      *u.mutable_record()->mutable_start() = e.time();
      *u.mutable_record()->mutable_end() = e.time();
      u.mutable_record()->set_gpu_ms(1);
      u.mutable_record()->set_mean_utilization_bp(10'000);
      u.set_cost_fen(e.amount_fen() * 5);
      u.set_subsidy_fen(e.amount_fen());
      *u.mutable_accepted_at() = e.time();
    }
  }
  int64_t next_entry = 1, next_command = 1;
  CeilingResult result;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline =
      start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                  std::chrono::duration<double>(seconds));
  const int64_t cpu_start = ThreadCpuNanos();
  const int64_t process_cpu_start = ProcessCpuNanos();
  const double busy_start = MachineBusySeconds();
  std::chrono::steady_clock::time_point now;
  do {
    for (pb::JournalEntry& e : batch.entries) {
      e.set_sequence(next_entry);
      e.set_command_sequence(next_command);
      ++next_entry;
    }
    for (pb::Command& c : batch.commands) c.set_sequence(next_command++);
    RETURN_IF_ERROR(store->Append(batch));
    ++result.batches;
    now = std::chrono::steady_clock::now();
  } while (now < deadline);
  result.seconds = Seconds(now - start);
  result.cpu_share = static_cast<double>(ThreadCpuNanos() - cpu_start) /
                     (result.seconds * 1e9);
  result.other_cores = std::max(
      0.0, (MachineBusySeconds() - busy_start) / result.seconds -
               static_cast<double>(ProcessCpuNanos() - process_cpu_start) /
                   (result.seconds * 1e9));
  result.entries_per_s =
      static_cast<double>(result.batches) * per_batch / result.seconds;
  result.commit_ms = result.seconds * 1e3 / static_cast<double>(result.batches);
  return result;
}

absl::StatusOr<std::vector<pb::JournalEntry>> RecentCharges(store::Store& s,
                                                            int n) {
  ASSIGN_OR_RETURN(const store::Head head, s.ReadHead());
  ASSIGN_OR_RETURN(
      std::vector<pb::JournalEntry> entries,
      s.ReadJournal(std::max<int64_t>(0, head.journal_sequence - n), n));
  std::vector<pb::JournalEntry> out;
  for (pb::JournalEntry& e : entries) {
    if (e.kind() == pb::ENTRY_KIND_CHARGE) out.push_back(std::move(e));
  }
  if (out.empty()) return absl::InternalError("no charge entries to copy");
  return out;
}

absl::StatusOr<std::vector<pb::Command>> RecentUsageCommands(store::Store& s,
                                                             int n) {
  ASSIGN_OR_RETURN(const store::Head head, s.ReadHead());
  ASSIGN_OR_RETURN(
      std::vector<pb::Command> commands,
      s.ReadCommands(std::max<int64_t>(0, head.command_sequence - n), n));
  std::vector<pb::Command> out;
  for (pb::Command& c : commands) {
    if (c.has_report_usage()) out.push_back(std::move(c));
  }
  if (out.empty()) return absl::InternalError("no usage commands to copy");
  return out;
}

}  // namespace computevoucher::bench::writer_bench
