// The world of writer_bench (writer_bench.cc): the standard test world and
// 64 agent clusters with their one-GPU allocations, built through a real
// Writer, and a Store that times the writer's appends.
#ifndef COMPUTEVOUCHER_TESTS_BENCH_WRITER_BENCH_WORLD_H_
#define COMPUTEVOUCHER_TESTS_BENCH_WRITER_BENCH_WORLD_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "computevoucher/v1/journal.pb.h"
#include "scheduler/engine/writer.h"
#include "scheduler/store/store.h"
#include "tests/bench/bench_util.h"

namespace computevoucher::bench::writer_bench {

namespace pb = ::computevoucher::v1;

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
  int64_t DefaultBatchRecords() const override {
    return inner_.DefaultBatchRecords();
  }
  absl::Status WriteSnapshot(const store::Snapshot& snapshot,
                             int keep) override {
    return inner_.WriteSnapshot(snapshot, keep);
  }
  absl::StatusOr<std::vector<int64_t>> ListSnapshots() override {
    return inner_.ListSnapshots();
  }
  absl::StatusOr<store::Snapshot> ReadSnapshot(int64_t position) override {
    return inner_.ReadSnapshot(position);
  }
  absl::StatusOr<std::vector<store::UsageRow>> ReadUsage(
      const store::UsageQuery& query) override {
    return inner_.ReadUsage(query);
  }
  absl::StatusOr<store::Head> ScanUsage(
      const store::UsageQuery& query,
      const std::function<void(const pb::ChargedUsage&)>& fn) override {
    return inner_.ScanUsage(query, fn);
  }
  absl::StatusOr<std::vector<pb::Allocation>> ReadRetired(
      const store::RetiredQuery& query) override {
    return inner_.ReadRetired(query);
  }
  absl::StatusOr<std::vector<pb::Voucher>> ReadRetiredVouchers(
      const store::RetiredVoucherQuery& query) override {
    return inner_.ReadRetiredVouchers(query);
  }
  absl::StatusOr<std::vector<pb::AuditEvent>> ReadAudit(
      const store::AuditQuery& query) override {
    return inner_.ReadAudit(query);
  }
  absl::StatusOr<std::optional<store::Horizon>> ReadHorizon() override {
    return inner_.ReadHorizon();
  }
  absl::StatusOr<store::BatchEnd> BatchEndAtOrBefore(int64_t command) override {
    return inner_.BatchEndAtOrBefore(command);
  }
  absl::Status DropArchived(const store::Horizon& horizon,
                            const std::vector<store::UsageDay>& days) override {
    return inner_.DropArchived(horizon, days);
  }
  absl::Status ScanUsageDays(
      const store::UsageQuery& query,
      const std::function<void(const store::UsageDay&)>& fn) override {
    return inner_.ScanUsageDays(query, fn);
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

// The ReportUsage command of `slot`'s agent: one record per allocation,
// from the end of its previous record to `now` (one GPU, busy).
pb::Command UsageCommand(const Slot& slot, absl::Time now,
                         const std::string& request_id);

// Builds the world and the bench's clusters and allocations through
// `writer`; returns one slot per cluster.
absl::StatusOr<std::vector<Slot>> Setup(engine::Writer& writer,
                                        int allocations_per_cluster);

}  // namespace computevoucher::bench::writer_bench

#endif  // COMPUTEVOUCHER_TESTS_BENCH_WRITER_BENCH_WORLD_H_
