// The load of scheduler_load (scheduler_load.cc): streams of ReportUsage
// batches sent as the clusters' agents, a probe timing Allocate meanwhile,
// and the no-op AgentService that gives the ceiling.
#ifndef COMPUTEVOUCHER_TESTS_BENCH_SCHEDULER_LOAD_RUN_H_
#define COMPUTEVOUCHER_TESTS_BENCH_SCHEDULER_LOAD_RUN_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/thread_name.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/server_context.h"
#include "scheduler/server.h"
#include "tests/bench/scheduler_load_world.h"

namespace computevoucher::bench::scheduler_load {

constexpr absl::Duration kProbeInterval = absl::Milliseconds(20);
// At most this many probe allocations at once (fewer than the spare GPUs).
constexpr int kProbeWorkers = 32;

// The q-quantile (0..1) of `v`, which it sorts; 0 when empty.
double Quantile(std::vector<double>& v, double q);

// What the streams of a run counted, summed over them.
struct Totals {
  int64_t batches = 0, accepted = 0, not_accepted = 0, failed_rpcs = 0,
          failed_records = 0, paced = 0;
};

// Starts an Allocate (one GPU) every kProbeInterval, as the probe
// enterprise, whatever the latency (an open loop, so that slow answers do
// not thin out the samples), and releases each allocation once placed.
// Worker w of kProbeWorkers fires at start + (k * kProbeWorkers + w) *
// kProbeInterval; a worker whose previous call is still running when its
// turn comes starts late and counts the delay.
class Probe {
 public:
  Probe(const std::string& target, const std::string& token,
        const std::string& name)
      : channel_(NewChannel(target)),
        stub_(pb::EnterpriseService::NewStub(channel_)),
        workers_(kProbeWorkers) {
    const absl::Time start = absl::Now();
    for (int w = 0; w < kProbeWorkers; ++w) {
      threads_.push_back(
          StartNamedThread("load-probe", [this, token, name, start, w] {
            Loop(token, name, start + w * kProbeInterval, w);
          }));
    }
  }
  ~Probe() { Stop(); }

  void Measure(bool on) { measuring_.store(on); }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // After Stop().
  std::vector<double> allocate_ms() const {
    std::vector<double> all;
    for (const Worker& w : workers_)
      all.insert(all.end(), w.allocate_ms.begin(), w.allocate_ms.end());
    return all;
  }
  std::vector<double> release_ms() const {
    std::vector<double> all;
    for (const Worker& w : workers_)
      all.insert(all.end(), w.release_ms.begin(), w.release_ms.end());
    return all;
  }
  int64_t late_starts() const {
    int64_t n = 0;
    for (const Worker& w : workers_) n += w.late;
    return n;
  }
  int64_t errors() const {
    int64_t n = 0;
    for (const Worker& w : workers_) n += w.errors;
    return n;
  }
  std::string first_error() const {
    for (const Worker& w : workers_) {
      if (!w.first_error.empty()) return w.first_error;
    }
    return "";
  }

 private:
  struct Worker {
    std::vector<double> allocate_ms;
    std::vector<double> release_ms;
    int64_t late = 0;
    int64_t errors = 0;
    std::string first_error;
    void Error(absl::string_view what) {
      ++errors;
      if (first_error.empty()) first_error = std::string(what);
    }
  };

  void Loop(const std::string& token, const std::string& name, absl::Time next,
            int w);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::EnterpriseService::Stub> stub_;
  std::vector<Worker> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> measuring_{false};
  std::vector<std::thread> threads_;  // last: start once the rest exists
};

// The ceiling: an AgentService that accepts every record and does nothing.
class NoopAgentService final : public pb::AgentService::Service {
 public:
  grpc::Status ReportUsage(grpc::ServerContext* context,
                           const pb::ReportUsageRequest* request,
                           pb::ReportUsageResponse* response) override {
    response->mutable_acks()->Reserve(request->records_size());
    for (const pb::UsageRecord& u : request->records()) {
      pb::UsageAck* ack = response->add_acks();
      ack->set_allocation_id(u.allocation_id());
      ack->set_sequence(u.sequence());
      ack->set_result(pb::USAGE_RESULT_ACCEPTED);
    }
    return grpc::Status::OK;
  }
};

struct RunResult {
  double seconds = 0;
  double records_per_s = 0;
  double batches_per_s = 0;
  double process_cores = 0;
  double other_cores = 0;
  double rpc_p50_ms = 0, rpc_p99_ms = 0;
  // The thread that spent most time on a CPU: its share of the wall time
  // on a CPU and waiting for one (a serial bottleneck shows here).
  double busiest_on_cpu = 0, busiest_runqueue = 0;
  double all_runqueue = 0;  // summed over threads, per wall second
  // Nanoseconds on a CPU, summed by thread name: the scheduler's own
  // threads (cv-writer, cv-commit, cv-snapshot, ...), gRPC's server
  // threads (grpcpp_sync_ser), the streams' (load-stream) and the probe's
  // (load-probe), and gRPC's own. A thread that names itself nothing
  // counts under its creator's name.
  std::map<std::string, int64_t> on_cpu_by_name;
  int64_t measured_batches = 0;
  Totals total;  // whole run, warm-up included
  std::string first_problem;
  // Scheduler run only.
  double commands_per_txn = 0;
  double txn_ms = 0;
};

// Runs the streams against `target` for warm-up + `seconds`; `during`
// (may be null) is told when the measured window opens and closes.
RunResult RunLoad(const std::string& target, std::vector<ClusterLoad>& clusters,
                  int streams_count, int records_per_batch, double warmup_s,
                  int seconds, const std::function<void(bool)>& during,
                  scheduler::SchedulerServer* server);

// Prints what `r` measured, as the run `name`.
// Microseconds of this process's CPU per record `run` accepted.
double CpuPerRecordUs(const RunResult& run);

void PrintRun(const char* name, const RunResult& r);

}  // namespace computevoucher::bench::scheduler_load

#endif  // COMPUTEVOUCHER_TESTS_BENCH_SCHEDULER_LOAD_RUN_H_
