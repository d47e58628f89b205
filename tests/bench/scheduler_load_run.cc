#include "tests/bench/scheduler_load_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/thread_name.h"
#include "scheduler/engine/writer.h"
#include "tests/bench/bench_util.h"

namespace computevoucher::bench::scheduler_load {
namespace {

// Per thread of this process: nanoseconds on a CPU and waiting for one
// (/proc/self/task/TID/schedstat), when it started (clock ticks after
// boot: a thread id can be reused once its thread ended) and its name.
struct ThreadTimes {
  int64_t on_cpu_ns = 0;
  int64_t runqueue_ns = 0;
  int64_t started = 0;
  std::string name;
};
std::map<int, ThreadTimes> ThreadSchedStats() {
  std::map<int, ThreadTimes> out;
  for (const int tid : ThreadsOfThisProcess()) {
    const std::string dir = absl::StrCat("/proc/self/task/", tid, "/");
    ThreadTimes t;
    std::ifstream schedstat(dir + "schedstat");
    if (!(schedstat >> t.on_cpu_ns >> t.runqueue_ns)) continue;
    // The name is field 2 of stat, between the first '(' and the last ')'
    // (it may hold spaces and parentheses); field 22, the start time, is
    // counted from that ')'.
    std::ifstream stat(dir + "stat");
    const std::string line((std::istreambuf_iterator<char>(stat)),
                           std::istreambuf_iterator<char>());
    const size_t name_start = line.find('(');
    const size_t name_end = line.rfind(')');
    if (name_start == std::string::npos || name_end == std::string::npos ||
        name_end < name_start) {
      continue;
    }
    const std::vector<std::string> fields = absl::StrSplit(
        absl::string_view(line).substr(name_end + 1), ' ', absl::SkipEmpty());
    if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &t.started)) {
      continue;
    }
    t.name = line.substr(name_start + 1, name_end - name_start - 1);
    out[tid] = std::move(t);
  }
  return out;
}

// What the streams of one run counted, written by their threads and summed
// by the main thread.
struct alignas(64) Counters {
  std::atomic<int64_t> batches{0};         // RPCs that returned OK
  std::atomic<int64_t> accepted{0};        // ACCEPTED acks of those RPCs
  std::atomic<int64_t> not_accepted{0};    // other acks of those RPCs
  std::atomic<int64_t> failed_rpcs{0};     // RPCs that did not return OK
  std::atomic<int64_t> failed_records{0};  // records of those RPCs
  std::atomic<int64_t> paced{0};  // skips so that no record ends after now
};

// S threads, each with its own connection to `target`, sending ReportUsage
// batches for the clusters it owns until stopped.
class Streams {
 public:
  Streams(const std::string& target, std::vector<ClusterLoad>& clusters,
          int count, int records_per_batch)
      : counters_(count), latencies_(count) {
    for (int s = 0; s < count; ++s) {
      std::vector<ClusterLoad*> mine;
      for (size_t c = s; c < clusters.size(); c += count)
        mine.push_back(&clusters[c]);
      threads_.push_back(StartNamedThread(
          "load-stream", [this, target, s, mine, records_per_batch] {
            Loop(target, s, mine, records_per_batch);
          }));
    }
  }
  ~Streams() { Stop(); }

  void Measure(bool on) { measuring_.store(on); }

  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  Totals totals() const {
    Totals t;
    for (const Counters& c : counters_) {
      t.batches += c.batches.load(std::memory_order_relaxed);
      t.accepted += c.accepted.load(std::memory_order_relaxed);
      t.not_accepted += c.not_accepted.load(std::memory_order_relaxed);
      t.failed_rpcs += c.failed_rpcs.load(std::memory_order_relaxed);
      t.failed_records += c.failed_records.load(std::memory_order_relaxed);
      t.paced += c.paced.load(std::memory_order_relaxed);
    }
    return t;
  }

  // ReportUsage latencies (ms) of the measured window; after Stop().
  std::vector<double> latencies() const {
    std::vector<double> all;
    for (const std::vector<double>& v : latencies_)
      all.insert(all.end(), v.begin(), v.end());
    return all;
  }

  std::string first_problem() const { return problems_.get(); }

 private:
  void Loop(const std::string& target, int s, std::vector<ClusterLoad*> mine,
            int records_per_batch) {
    if (mine.empty()) return;
    Counters& counters = counters_[s];
    std::vector<double>& latencies = latencies_[s];
    auto channel = NewChannel(target);
    auto stub = pb::AgentService::NewStub(channel);
    pb::ReportUsageRequest request;
    pb::ReportUsageResponse response;
    int64_t n = 0;
    size_t next = 0;
    size_t skipped = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      ClusterLoad& cluster = *mine[next];
      next = (next + 1) % mine.size();
      std::vector<Meter>& meters = cluster.meters;
      const int per_meter =
          std::max<int>(1, records_per_batch / static_cast<int>(meters.size()));
      // As an agent does, records cover from the end of the previous one up
      // to now, so record ends follow real time (the scheduler's now is no
      // earlier than ours when it applies the batch). Each meter's span is
      // cut into `per_meter` records of at least 1 ms.
      const int64_t now_ns = absl::ToUnixMillis(absl::Now()) * 1'000'000;
      int64_t latest = 0;
      for (const Meter& m : meters) latest = std::max(latest, m.cursor_ns);
      if (latest + per_meter * 1'000'000LL > now_ns) {
        counters.paced.fetch_add(1, std::memory_order_relaxed);
        if (++skipped >= mine.size()) {
          absl::SleepFor(absl::Milliseconds(1));
          skipped = 0;
        }
        continue;
      }
      skipped = 0;
      request.Clear();
      request.set_request_id(absl::StrCat("load-", s, "-", ++n));
      for (const Meter& m : meters) {
        const int64_t span_ms = (now_ns - m.cursor_ns) / 1'000'000;
        for (int j = 0; j < per_meter; ++j) {
          pb::UsageRecord* u = request.add_records();
          u->set_allocation_id(m.allocation_id);
          u->set_sequence(m.next_sequence + j);
          const int64_t from_ms = span_ms * j / per_meter;
          const int64_t to_ms = span_ms * (j + 1) / per_meter;
          SetTimestamp(m.cursor_ns + from_ms * 1'000'000, u->mutable_start());
          SetTimestamp(m.cursor_ns + to_ms * 1'000'000, u->mutable_end());
          u->set_gpu_ms(to_ms - from_ms);  // one GPU, busy
          u->set_mean_utilization_bp(9500);
          u->set_energy_mj(700 * (to_ms - from_ms));  // 700 W, in mJ
        }
      }
      grpc::ClientContext context;
      context.AddMetadata("authorization", cluster.bearer);
      context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
      const bool measured = measuring_.load(std::memory_order_relaxed);
      const auto t0 = std::chrono::steady_clock::now();
      const grpc::Status status =
          stub->ReportUsage(&context, request, &response);
      const auto t1 = std::chrono::steady_clock::now();
      if (measured) latencies.push_back(Seconds(t1 - t0) * 1e3);
      if (!status.ok()) {
        counters.failed_rpcs.fetch_add(1, std::memory_order_relaxed);
        counters.failed_records.fetch_add(request.records_size(),
                                          std::memory_order_relaxed);
        problems_.Note(absl::StrCat("ReportUsage ", cluster.cluster_id, ": ",
                                    status.error_code(), " ",
                                    status.error_message()));
        continue;
      }
      counters.batches.fetch_add(1, std::memory_order_relaxed);
      if (response.acks_size() != request.records_size()) {
        counters.not_accepted.fetch_add(request.records_size(),
                                        std::memory_order_relaxed);
        problems_.Note(absl::StrCat("ReportUsage ", cluster.cluster_id, ": ",
                                    response.acks_size(), " acks for ",
                                    request.records_size(), " records"));
        continue;
      }
      int64_t accepted = 0, not_accepted = 0;
      for (int i = 0; i < response.acks_size(); ++i) {
        const pb::UsageAck& ack = response.acks(i);
        const pb::UsageRecord& u = request.records(i);
        Meter& m = meters[i / per_meter];
        const bool done = ack.result() == pb::USAGE_RESULT_ACCEPTED ||
                          ack.result() == pb::USAGE_RESULT_DUPLICATE;
        if (ack.result() == pb::USAGE_RESULT_ACCEPTED) {
          ++accepted;
        } else {
          ++not_accepted;
          problems_.Note(absl::StrCat(u.allocation_id(), " #", u.sequence(),
                                      ": ", pb::UsageResult_Name(ack.result()),
                                      " ", ack.reason()));
        }
        if (done && u.sequence() == m.next_sequence) {
          ++m.next_sequence;
          m.cursor_ns = UnixNanos(u.end());
        }
      }
      counters.accepted.fetch_add(accepted, std::memory_order_relaxed);
      counters.not_accepted.fetch_add(not_accepted, std::memory_order_relaxed);
    }
  }

  std::vector<Counters> counters_;
  std::vector<std::vector<double>> latencies_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> measuring_{false};
  FirstProblem problems_;
};

struct Snapshot {
  std::chrono::steady_clock::time_point at;
  Totals totals;
  int64_t process_cpu_ns = 0;
  double machine_busy_s = 0;
  std::map<int, ThreadTimes> threads;
};

Snapshot Take(const Streams& streams) {
  Snapshot s;
  s.at = std::chrono::steady_clock::now();
  s.totals = streams.totals();
  s.process_cpu_ns = ProcessCpuNanos();
  s.machine_busy_s = MachineBusySeconds();
  s.threads = ThreadSchedStats();
  return s;
}

}  // namespace

double Quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank =
      static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

void Probe::Loop(const std::string& token, const std::string& name,
                 absl::Time next, int w) {
  Worker& me = workers_[w];
  const absl::Duration period = kProbeWorkers * kProbeInterval;
  int64_t n = 0;
  while (!stop_.load()) {
    const absl::Time now = absl::Now();
    if (next > now) {
      absl::SleepFor(next - now);
      if (stop_.load()) break;
    } else if (now - next > kProbeInterval && measuring_.load()) {
      ++me.late;
    }
    next += period;
    if (next < absl::Now()) next = absl::Now();
    const bool measured = measuring_.load();
    pb::AllocateRequest r;
    r.set_request_id(absl::StrCat("probe-", name, "-", w, "-", ++n));
    pb::ResourceRequest* res = r.mutable_resources();
    res->set_gpu_model(kModel);
    res->set_gpu_count(1);
    res->set_max_duration_s(kAllocationSeconds);
    pb::Allocation a;
    auto t0 = std::chrono::steady_clock::now();
    grpc::Status s = stub_->Allocate(As(token).get(), r, &a);
    auto t1 = std::chrono::steady_clock::now();
    if (!s.ok()) {
      me.Error(absl::StrCat("Allocate: ", s.error_message()));
      continue;
    }
    if (a.state() != pb::ALLOCATION_STATE_ASSIGNED) {
      me.Error(absl::StrCat("Allocate: ", a.allocation_id(), " is ",
                            pb::AllocationState_Name(a.state())));
    } else if (measured) {
      me.allocate_ms.push_back(Seconds(t1 - t0) * 1e3);
    }
    pb::ReleaseAllocationRequest rr;
    rr.set_request_id(absl::StrCat("probe-", name, "-", w, "-", n, "-r"));
    rr.set_allocation_id(a.allocation_id());
    pb::Allocation out;
    t0 = std::chrono::steady_clock::now();
    s = stub_->ReleaseAllocation(As(token).get(), rr, &out);
    t1 = std::chrono::steady_clock::now();
    if (!s.ok()) {
      me.Error(absl::StrCat("ReleaseAllocation: ", s.error_message()));
    } else if (measured) {
      me.release_ms.push_back(Seconds(t1 - t0) * 1e3);
    }
  }
}

RunResult RunLoad(const std::string& target, std::vector<ClusterLoad>& clusters,
                  int streams_count, int records_per_batch, double warmup_s,
                  int seconds, const std::function<void(bool)>& during,
                  scheduler::SchedulerServer* server) {
  Streams streams(target, clusters, streams_count, records_per_batch);
  absl::SleepFor(absl::Seconds(warmup_s));
  // The server leads from its start (the benchmark runs one replica).
  auto writer_stats = [server] {
    engine::WriterStats stats;
    if (server == nullptr) return stats;
    absl::StatusOr<std::shared_ptr<engine::Writer>> writer =
        server->replica().writer();
    if (writer.ok()) stats = (*writer)->stats();
    return stats;
  };
  const engine::WriterStats w0 = writer_stats();
  streams.Measure(true);
  if (during) during(true);
  const Snapshot a = Take(streams);
  absl::SleepFor(absl::Seconds(seconds));
  const Snapshot b = Take(streams);
  streams.Measure(false);
  if (during) during(false);
  const engine::WriterStats w1 = writer_stats();
  streams.Stop();

  RunResult r;
  r.seconds = Seconds(b.at - a.at);
  r.records_per_s =
      static_cast<double>(b.totals.accepted - a.totals.accepted) / r.seconds;
  r.measured_batches = b.totals.batches - a.totals.batches;
  r.batches_per_s = static_cast<double>(r.measured_batches) / r.seconds;
  r.process_cores = static_cast<double>(b.process_cpu_ns - a.process_cpu_ns) /
                    (r.seconds * 1e9);
  r.other_cores = std::max(
      0.0, (b.machine_busy_s - a.machine_busy_s) / r.seconds - r.process_cores);
  std::vector<double> latencies = streams.latencies();
  r.rpc_p50_ms = Quantile(latencies, 0.50);
  r.rpc_p99_ms = Quantile(latencies, 0.99);
  int64_t busiest = -1, all_wait = 0;
  for (const auto& [tid, t1] : b.threads) {
    // A thread started in the window counts from 0.
    auto t0 = a.threads.find(tid);
    const ThreadTimes start =
        t0 == a.threads.end() || t0->second.started != t1.started
            ? ThreadTimes{}
            : t0->second;
    const int64_t on = t1.on_cpu_ns - start.on_cpu_ns;
    const int64_t wait = t1.runqueue_ns - start.runqueue_ns;
    all_wait += wait;
    r.on_cpu_by_name[t1.name] += on;
    if (on > busiest) {
      busiest = on;
      r.busiest_on_cpu = static_cast<double>(on) / (r.seconds * 1e9);
      r.busiest_runqueue = static_cast<double>(wait) / (r.seconds * 1e9);
    }
  }
  r.all_runqueue = static_cast<double>(all_wait) / (r.seconds * 1e9);
  r.total = streams.totals();
  r.first_problem = streams.first_problem();
  if (server != nullptr && w1.batches > w0.batches) {
    const int64_t txns = w1.batches - w0.batches;
    r.commands_per_txn = static_cast<double>(w1.commands - w0.commands) / txns;
    r.txn_ms = r.seconds * 1e3 / static_cast<double>(txns);
  }
  return r;
}

double CpuPerRecordUs(const RunResult& run) {
  return run.process_cores * 1e6 / run.records_per_s;
}

void PrintRun(const char* name, const RunResult& r) {
  std::printf(
      "%-10s %12s records/s  %8s batches/s  ReportUsage p50 %6.2f ms, p99 "
      "%7.2f ms  cores %.2f, others %.2f\n",
      name, Rate(r.records_per_s).c_str(), Rate(r.batches_per_s).c_str(),
      r.rpc_p50_ms, r.rpc_p99_ms, r.process_cores, r.other_cores);
  if (r.records_per_s > 0) {
    std::printf(
        "           this process: %.1f us of CPU per accepted record; busiest "
        "thread on a CPU %.0f%% of the time and waiting for one %.0f%%; all "
        "threads waited for a CPU %.2f s per s\n",
        CpuPerRecordUs(r), 100 * r.busiest_on_cpu, 100 * r.busiest_runqueue,
        r.all_runqueue);
  }
  if (r.records_per_s > 0 && !r.on_cpu_by_name.empty()) {
    const double records = r.records_per_s * r.seconds;
    std::string line;
    double counted = 0;
    for (const auto& [name, ns] : r.on_cpu_by_name) {
      const double us = static_cast<double>(ns) / records / 1e3;
      counted += us;
      if (us >= 0.05) {
        absl::StrAppend(&line, line.empty() ? "" : ", ", name, " ",
                        absl::StrFormat("%.1f", us));
      }
    }
    // What threads that ended before the window closed used is only in
    // the process's total.
    std::printf(
        "           us of CPU per accepted record by thread: %s; threads "
        "that ended in the window %.1f\n",
        line.c_str(), std::max(0.0, CpuPerRecordUs(r) - counted));
  }
  if (r.commands_per_txn > 0) {
    std::printf(
        "           group commit: %.1f commands per transaction, one every "
        "%.2f ms\n",
        r.commands_per_txn, r.txn_ms);
  }
  const Totals& t = r.total;
  const int64_t sent = t.accepted + t.not_accepted + t.failed_records;
  std::printf(
      "           whole run (warm-up included): %lld records sent, %lld "
      "accepted, %lld not accepted, %lld in %lld failed RPCs, %lld pacing "
      "skips\n",
      static_cast<long long>(sent), static_cast<long long>(t.accepted),
      static_cast<long long>(t.not_accepted),
      static_cast<long long>(t.failed_records),
      static_cast<long long>(t.failed_rpcs), static_cast<long long>(t.paced));
  if (!r.first_problem.empty())
    std::printf("           first problem: %s\n", r.first_problem.c_str());
  std::fflush(stdout);
}

}  // namespace computevoucher::bench::scheduler_load
