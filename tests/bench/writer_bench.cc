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
#include <sqlite3.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/flags.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "computevoucher/v1/agent.pb.h"
#include "computevoucher/v1/journal.pb.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/sqlite_store.h"
#include "scheduler/store/store.h"
#include "scheduler/engine/writer.h"
#include "tests/bench/bench_util.h"
#include "tests/testing/world.h"
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
          "scheduler's default is 500, which favours Allocate latency).");
ABSL_FLAG(std::string, dir, "",
          "Directory in which the bench makes (and at the end removes) its "
          "temporary data directory; default $TMPDIR or /tmp. Put it on the "
          "file system you want to measure.");

namespace computevoucher::bench {
namespace {

using ::computevoucher::bench::FileSystemType;
using ::computevoucher::bench::MachineBusySeconds;
using ::computevoucher::bench::ProcessCpuNanos;
using ::computevoucher::bench::Rate;
using ::computevoucher::bench::Seconds;
using ::computevoucher::testing::TempDir;
using ::computevoucher::bench::ThreadCpuNanos;

namespace pb = ::computevoucher::v1;
using ::computevoucher::testing::AdminPrincipal;
using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::EnterprisePrincipal;
using ::computevoucher::testing::NewCommand;

// Submitter slots: one agent cluster each; a run with S submitters gives
// submitter t the clusters c with c % S == t.
constexpr int kClusters = 64;
// The configuration the targets apply to.
constexpr int kTargetSubmitters = 64;
// The highest price the scheduler accepts, so that 1 ms of one GPU costs
// 27.8 fen and its 20% subsidy (5.6 fen) posts a charge on every record.
constexpr int64_t kPriceFenPerGpuHour = 100'000'000;
// Keeps each allocation's hold at ¥200,000 (2e7 fen).
constexpr int64_t kAllocationSeconds = 3600;
constexpr int32_t kRatioBp = 2000;
constexpr const char* kEnterprise = "E-000003";
constexpr const char* kProvider = "PR-000001";
constexpr const char* kModel = "B200";

constexpr double kTargetChargesPerSecond = 100'000;
constexpr double kTargetCeilingShare = 0.5;
// More refused records than this and the figures mean nothing.
constexpr double kMaxRefusedShare = 0.001;

// Passes everything to the real store and times Append, which the writer
// calls from its committer thread only: that thread's CPU clock is sampled
// there, which splits its time into work outside Append (freeing committed
// batches, waking submitters), SQLite work and waiting for the disk.
class TimedStore final : public store::Store {
 public:
  struct Totals {
    int64_t appends = 0;
    int64_t entries = 0;
    int64_t commands = 0;
    int64_t wall_ns = 0;        // inside Append
    int64_t cpu_ns = 0;         // writer thread CPU inside Append
    int64_t thread_cpu_ns = 0;  // writer thread CPU at the last Append end
  };

  explicit TimedStore(store::Store& inner) : inner_(inner) {}

  absl::Status Append(const store::Batch& batch) override {
    const int64_t cpu0 = ThreadCpuNanos();
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status status = inner_.Append(batch);
    const auto t1 = std::chrono::steady_clock::now();
    const int64_t cpu1 = ThreadCpuNanos();
    absl::MutexLock lock(&mu_);
    ++totals_.appends;
    totals_.entries += static_cast<int64_t>(batch.entries.size());
    totals_.commands += static_cast<int64_t>(batch.commands.size());
    totals_.wall_ns +=
        std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    totals_.cpu_ns += cpu1 - cpu0;
    totals_.thread_cpu_ns = cpu1;
    return status;
  }
  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                        int limit) override {
    return inner_.ReadCommands(after, limit);
  }
  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    return inner_.ReadJournal(after, limit);
  }
  absl::StatusOr<store::Head> ReadHead() override { return inner_.ReadHead(); }
  absl::StatusOr<std::vector<store::UsageRow>> ReadUsage(
      const store::UsageQuery& query) override {
    return inner_.ReadUsage(query);
  }
  absl::StatusOr<store::Head> ScanUsage(
      const store::UsageQuery& query,
      const std::function<void(const pb::ChargedUsage&)>& fn) override {
    return inner_.ScanUsage(query, fn);
  }
  absl::StatusOr<store::Leadership> Campaign(const store::Candidate& candidate,
                                             absl::Duration lease) override {
    return inner_.Campaign(candidate, lease);
  }
  absl::Status Resign() override { return inner_.Resign(); }

  Totals totals() const {
    absl::MutexLock lock(&mu_);
    return totals_;
  }

 private:
  store::Store& inner_;
  mutable absl::Mutex mu_;
  Totals totals_ ABSL_GUARDED_BY(mu_);
};

// Submits `commands` from `threads` threads at once, so that they share
// group commits; their relative order is not kept. Outcomes in input order.
std::vector<absl::StatusOr<core::Outcome>> SubmitConcurrently(
    engine::Writer& writer, std::vector<pb::Command> commands, int threads) {
  std::vector<absl::StatusOr<core::Outcome>> outcomes(
      commands.size(), absl::UnknownError("not submitted"));
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < commands.size(); i = next++) {
        outcomes[i] = writer.Submit(std::move(commands[i]));
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return outcomes;
}

absl::Status FirstError(
    const std::vector<absl::StatusOr<core::Outcome>>& outcomes,
    absl::string_view what) {
  for (const auto& o : outcomes) {
    if (!o.ok()) {
      return absl::Status(o.status().code(),
                          absl::StrCat(what, ": ", o.status().message()));
    }
  }
  return absl::OkStatus();
}

std::string ClusterId(int c) { return absl::StrFormat("bench-%02d", c); }

// One allocation as its agent reports it.
struct Meter {
  std::string allocation_id;
  int64_t next_sequence = 1;
  absl::Time cursor;  // end of the last accepted record
};

// The allocations of one cluster, reported together in one command.
struct Slot {
  std::string cluster_id;
  std::vector<Meter> meters;
};

// Builds the world and the bench's clusters and allocations through
// `writer`; returns one slot per cluster.
absl::StatusOr<std::vector<Slot>> Setup(engine::Writer& writer,
                                        int allocations_per_cluster) {
  // The standard test world, restamped by the writer.
  core::StateMachine scratch;
  testing::Driver driver(scratch);
  RETURN_IF_ERROR(driver.BuildWorld());
  for (pb::Command c : driver.log()) {
    c.clear_sequence();
    c.clear_time();
    RETURN_IF_ERROR(writer.Submit(std::move(c)).status());
  }

  // A program with budget to spare and no cap per enterprise.
  const absl::Time now = absl::Now();
  std::string program_id;
  {
    pb::Command c = NewCommand(AdminPrincipal(), "bench-program");
    pb::CreateProgramRequest* r = c.mutable_create_program();
    r->set_name("writer bench");
    r->set_issuer("writer bench");
    r->set_budget_fen(1'000'000'000'000'000);
    *r->mutable_valid_from() = ToProto(now - absl::Hours(24));
    *r->mutable_valid_until() = ToProto(now + absl::Hours(24 * 365));
    r->set_domestic_ratio_bp(kRatioBp);
    r->set_other_ratio_bp(kRatioBp);
    r->set_sme_ratio_bp(kRatioBp);
    r->set_enterprise_cap_fen(0);
    ASSIGN_OR_RETURN(const core::Outcome o, writer.Submit(std::move(c)));
    program_id = static_cast<const pb::Program&>(*o.response).program_id();
  }
  {
    const int64_t holds = int64_t{kClusters} * allocations_per_cluster *
                          (kPriceFenPerGpuHour * kAllocationSeconds / 3600) *
                          kRatioBp / 10'000;
    pb::Command c = NewCommand(AdminPrincipal(), "bench-voucher");
    pb::IssueVoucherRequest* r = c.mutable_issue_voucher();
    r->set_program_id(program_id);
    r->set_enterprise_id(kEnterprise);
    r->set_face_value_fen(holds + 1'000'000'00);
    RETURN_IF_ERROR(writer.Submit(std::move(c)).status());
  }

  // One agent cluster per slot: token, registration, approval.
  std::vector<pb::Command> tokens, registrations, approvals;
  for (int i = 0; i < kClusters; ++i) {
    const std::string cluster = ClusterId(i);
    {
      pb::Command c =
          NewCommand(AdminPrincipal(), absl::StrCat("bench-token-", cluster));
      pb::CreateTokenRequest* r = c.mutable_create_token()->mutable_request();
      r->set_role(pb::ROLE_AGENT);
      r->set_cluster_id(cluster);
      r->set_provider_id(kProvider);
      c.mutable_create_token()->set_secret_sha256(absl::StrFormat("%032d", i));
      tokens.push_back(std::move(c));
    }
    {
      pb::Command c = NewCommand(AgentPrincipal(cluster),
                                 absl::StrCat("bench-register-", cluster));
      pb::RegisterRequest* r = c.mutable_register_cluster();
      r->set_region("cn-hangzhou");
      r->set_meter("simulated");
      pb::GpuModel* m = r->add_inventory();
      m->set_model(kModel);
      m->set_hardware_class(pb::HARDWARE_CLASS_OTHER);
      // Exactly what the slot needs: placement prefers the tightest fit,
      // so the clusters fill one after the other.
      m->set_gpu_count(allocations_per_cluster);
      m->set_price_fen_per_gpu_hour(kPriceFenPerGpuHour);
      registrations.push_back(std::move(c));
    }
    {
      pb::Command c =
          NewCommand(AdminPrincipal(), absl::StrCat("bench-approve-", cluster));
      c.mutable_set_cluster_state()->set_cluster_id(cluster);
      c.mutable_set_cluster_state()->set_state(pb::CLUSTER_STATE_APPROVED);
      approvals.push_back(std::move(c));
    }
  }
  RETURN_IF_ERROR(FirstError(
      SubmitConcurrently(writer, std::move(tokens), kClusters), "token"));
  RETURN_IF_ERROR(FirstError(
      SubmitConcurrently(writer, std::move(registrations), kClusters),
      "register"));
  RETURN_IF_ERROR(FirstError(
      SubmitConcurrently(writer, std::move(approvals), kClusters), "approve"));

  // The allocations, one GPU each.
  std::vector<pb::Command> allocations;
  for (int i = 0; i < kClusters * allocations_per_cluster; ++i) {
    pb::Command c = NewCommand(EnterprisePrincipal(kEnterprise),
                               absl::StrCat("bench-alloc-", i));
    pb::ResourceRequest* r = c.mutable_allocate()->mutable_resources();
    r->set_gpu_model(kModel);
    r->set_gpu_count(1);
    r->set_max_duration_s(kAllocationSeconds);
    allocations.push_back(std::move(c));
  }
  const std::vector<absl::StatusOr<core::Outcome>> placed =
      SubmitConcurrently(writer, std::move(allocations), kClusters);
  RETURN_IF_ERROR(FirstError(placed, "allocate"));
  std::map<std::string, Slot> by_cluster;
  for (const auto& o : placed) {
    const auto& a = static_cast<const pb::Allocation&>(*o->response);
    if (a.state() != pb::ALLOCATION_STATE_ASSIGNED) {
      return absl::InternalError(absl::StrCat(
          "allocation ", a.allocation_id(), " is ",
          pb::AllocationState_Name(a.state()), ", expected ASSIGNED"));
    }
    ASSIGN_OR_RETURN(const absl::Time assigned,
                     FromProto("assigned_at", a.assigned_at()));
    Slot& slot = by_cluster[a.cluster_id()];
    slot.cluster_id = a.cluster_id();
    slot.meters.push_back(Meter{a.allocation_id(), 1, assigned});
  }
  std::vector<Slot> slots;
  for (auto& [id, slot] : by_cluster) {
    if (static_cast<int>(slot.meters.size()) != allocations_per_cluster) {
      return absl::InternalError(
          absl::StrCat("cluster ", id, " got ", slot.meters.size(),
                       " allocations, expected ", allocations_per_cluster));
    }
    slots.push_back(std::move(slot));
  }
  if (static_cast<int>(slots.size()) != kClusters) {
    return absl::InternalError(absl::StrCat("allocations landed on ",
                                            slots.size(),
                                            " clusters, expected ", kClusters));
  }
  return slots;
}

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

  std::string first_problem() const {
    absl::MutexLock lock(&mu_);
    return first_problem_;
  }

 private:
  void Problem(const std::string& what) {
    absl::MutexLock lock(&mu_);
    if (first_problem_.empty()) first_problem_ = what;
  }

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
      pb::Command c = NewCommand(AgentPrincipal(slot.cluster_id),
                                 absl::StrCat("u-", count, "-", t, "-", ++n));
      pb::ReportUsageRequest* r = c.mutable_report_usage();
      r->set_request_id(c.request_id());
      r->mutable_records()->Reserve(static_cast<int>(slot.meters.size()));
      for (const Meter& m : slot.meters) {
        pb::UsageRecord* u = r->add_records();
        u->set_allocation_id(m.allocation_id);
        u->set_sequence(m.next_sequence);
        *u->mutable_start() = ToProto(m.cursor);
        *u->mutable_end() = ToProto(now);
        u->set_gpu_ms(
            absl::ToInt64Milliseconds(now - m.cursor));  // one GPU, busy
        u->set_mean_utilization_bp(10'000);
      }
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
        Problem(outcome.status().ToString());
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
          Problem(absl::StrCat(ack.allocation_id(), " #", ack.sequence(), ": ",
                               pb::UsageResult_Name(ack.result()), " ",
                               ack.reason()));
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
  mutable absl::Mutex mu_;
  std::string first_problem_ ABSL_GUARDED_BY(mu_);
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

// The last `n` rows of the store that are charge entries / usage commands.
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

int Run() {
  const int seconds = absl::GetFlag(FLAGS_seconds);
  const double warmup = absl::GetFlag(FLAGS_warmup_seconds);
  const int per_command = absl::GetFlag(FLAGS_records_per_command);
  if (seconds < 1 || warmup < 0 || per_command < 1 || per_command > 1024) {
    std::fprintf(stderr,
                 "writer_bench: need --seconds >= 1, --warmup_seconds >= 0 "
                 "and --records_per_command in 1..1024\n");
    return 2;
  }
  std::vector<int> counts;
  for (const std::string& s : absl::GetFlag(FLAGS_submitters)) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1 || n > kClusters) {
      std::fprintf(stderr, "writer_bench: --submitters: \"%s\" is not 1..%d\n",
                   s.c_str(), kClusters);
      return 2;
    }
    counts.push_back(n);
  }
  if (counts.empty()) {
    std::fprintf(stderr, "writer_bench: --submitters: none given\n");
    return 2;
  }
  absl::StatusOr<TempDir> dir =
      TempDir::Make("writer_bench", absl::GetFlag(FLAGS_dir));
  if (!dir.ok()) {
    std::fprintf(stderr, "writer_bench: %s\n", dir.status().ToString().c_str());
    return 1;
  }
  const std::string writer_dir = dir->path() + "/writer";
  std::printf(
      "writer_bench: durable charge entries per second through the "
      "group-commit writer\n");
  std::printf("  data directory   %s (%s), removed at exit\n",
              dir->path().c_str(), FileSystemType(dir->path()).c_str());
  std::printf(
      "  machine          %u CPU(s) online; SQLite %s, WAL, "
      "synchronous=FULL\n",
      std::thread::hardware_concurrency(), sqlite3_libversion());
  std::printf(
      "  workload         %d agent clusters x %d one-GPU allocations; "
      "ReportUsage of %d records (1 ms each, one charge entry each)\n",
      kClusters, per_command, per_command);
  std::printf(
      "  timing           %.1f s warm-up, then %d s measured per "
      "configuration\n\n",
      warmup, seconds);
  std::fflush(stdout);

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
  absl::StatusOr<std::vector<Slot>> slots = Setup(**writer, per_command);
  if (!slots.ok()) {
    std::fprintf(stderr, "writer_bench: setup: %s\n",
                 slots.status().ToString().c_str());
    return 1;
  }
  std::printf("setup: %d allocations through the writer in %.1f s\n\n",
              kClusters * per_command,
              Seconds(std::chrono::steady_clock::now() - setup_start));

  std::printf("%-10s %10s %10s %8s %8s %9s %9s  %-26s %6s %6s\n", "submitters",
              "charges/s", "commands/s", "cmd/txn", "ent/txn", "commit ms",
              "submit ms", "committer other/sql/io", "cores", "others");
  std::vector<RunResult> runs;
  bool invalid = false;
  double most_other_cores = 0;  // over the writer runs and the ceiling
  for (const int count : counts) {
    RunResult r = Measure(**writer, timed, *slots, count, warmup, seconds);
    most_other_cores = std::max(most_other_cores, r.other_cores);
    std::printf(
        "%-10d %10s %10s %8.1f %8.1f %9.2f %9.2f  %7.0f%% %6.0f%% %6.0f%%     "
        "%6.2f %6.2f\n",
        r.submitters, Rate(r.charges_per_s).c_str(),
        Rate(r.commands_per_s).c_str(), r.commands_per_batch,
        r.entries_per_batch, r.commit_ms, r.submit_ms,
        100 * r.writer_apply_share, 100 * r.writer_sqlite_share,
        100 * r.writer_disk_share, r.process_cores, r.other_cores);
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
    const int64_t total = r.records;
    if (r.refused > 0 || r.errors > 0) {
      std::printf("  refused records: %lld (%lld Submit errors); first: %s\n",
                  static_cast<long long>(r.refused),
                  static_cast<long long>(r.errors), r.first_problem.c_str());
      if (total == 0 ||
          static_cast<double>(r.refused) > kMaxRefusedShare * total) {
        invalid = true;
      }
    }
    std::fflush(stdout);
    runs.push_back(r);
    if (invalid) break;
  }
  if (invalid) {
    std::printf(
        "\nwriter_bench: more than %.1f%% of records refused; the "
        "figures are not valid.\n",
        100 * kMaxRefusedShare);
    return 1;
  }
  // The ceiling commits batches of the size the writer committed with 64
  // submitters (or in the last configuration, if 64 was not measured).
  const RunResult* top = &runs.back();
  for (const RunResult& r : runs) {
    if (r.submitters == kTargetSubmitters) top = &r;
  }

  // Templates for the ceiling: charge rows and usage commands the writer
  // just stored.
  const int template_rows = std::max(4096, 4 * per_command);
  absl::StatusOr<std::vector<pb::JournalEntry>> entry_templates =
      RecentCharges(**sqlite, template_rows);
  absl::StatusOr<std::vector<pb::Command>> command_templates =
      RecentUsageCommands(**sqlite, 256);
  (*writer)->Stop();
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
  absl::StatusOr<CeilingResult> ceiling = Ceiling(
      dir->path() + "/ceiling", *entry_templates, per_batch, *command_templates,
      commands_per_batch, /*with_usage=*/true, seconds);
  absl::StatusOr<CeilingResult> journal_only = Ceiling(
      dir->path() + "/ceiling-journal-only", *entry_templates, per_batch, {}, 0,
      /*with_usage=*/false, seconds);
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

  most_other_cores = std::max(most_other_cores, ceiling->other_cores);
  const double ceil = ceiling->entries_per_s;
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
  return 0;
}

}  // namespace
}  // namespace computevoucher::bench

int main(int argc, char** argv) {
  computevoucher::ParseFlags(argc, argv);
  return computevoucher::bench::Run();
}
