// The scheduler's Prometheus metrics other than the gRPC and usage-record
// counters (deploy/METRICS.md, section voucher-scheduler): the writer's
// commit histograms, the figures computed from the state at each scrape,
// and the HTTP endpoint that serves them all.
#ifndef COMPUTEVOUCHER_SCHEDULER_METRICS_H_
#define COMPUTEVOUCHER_SCHEDULER_METRICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "scheduler/api/liveness.h"
#include "scheduler/engine/replica.h"

namespace computevoucher::scheduler {

// computevoucher_writer_batch_commands and
// computevoucher_writer_commit_seconds.
class WriterMetrics {
 public:
  // Registers both histograms in `registry`, which must outlive this.
  explicit WriterMetrics(prometheus::Registry& registry);
  WriterMetrics(const WriterMetrics&) = delete;
  WriterMetrics& operator=(const WriterMetrics&) = delete;

  // A engine::WriterOptions::on_commit that observes one committed batch.
  // This object must outlive the writer.
  std::function<void(int64_t commands, absl::Duration commit)> OnCommit();

 private:
  prometheus::Histogram& batch_commands_;
  prometheus::Histogram& commit_seconds_;
};

// Computes, at each scrape, the metrics that describe the state: programs
// (with their commitments and end), vouchers (each enterprise's use of its
// annual cap, those ending soon with money left), applications,
// allocations and their queue, money totals, the subsidy idle allocations
// cost, providers' payable and paid, clusters and GPUs, whether this
// replica leads and whether the writer has failed. A scrape reads the
// state in memory once (the vouchers and allocations it holds, the retired
// sums, the expiry index up to 30 days ahead), never the store. It holds
// the writer's read lock only while it sums (copying only the programs,
// enterprises, providers and clusters it names), and builds the families
// after releasing it. A follower has no state: it exports only that it does
// not lead.
class StateCollector final : public prometheus::Collectable {
 public:
  // `replica`, `liveness` and `clock` must outlive this. A cluster counts
  // as connected when its agent was heard from within `cluster_silence`.
  StateCollector(const engine::Replica& replica, const api::Liveness& liveness,
                 Clock& clock, absl::Duration cluster_silence)
      : replica_(replica),
        liveness_(liveness),
        clock_(clock),
        cluster_silence_(cluster_silence) {}

  // Thread-safe.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const engine::Replica& replica_;
  const api::Liveness& liveness_;
  Clock& clock_;
  const absl::Duration cluster_silence_;
};

// Serves `collectables` as Prometheus text at /metrics on `address`
// ("127.0.0.1:9464"; port 0 picks one; "[::]:9464" for IPv6). Unavailable
// naming the address when it cannot listen there. The exposer keeps weak
// references: the caller keeps the collectables alive, and destroys the
// exposer (which stops serving) before what they read.
absl::StatusOr<std::unique_ptr<prometheus::Exposer>> ServeMetrics(
    const std::string& address,
    const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables);

// The port `exposer` listens on; 0 if none.
int MetricsPort(const prometheus::Exposer& exposer);

}  // namespace computevoucher::scheduler

#endif  // COMPUTEVOUCHER_SCHEDULER_METRICS_H_
