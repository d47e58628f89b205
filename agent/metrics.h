// The agent's Prometheus metrics, in one place (deploy/METRICS.md lists
// them). Families are registered with `registry` at construction; the
// agent's loop thread sets them.
#ifndef COMPUTEVOUCHER_AGENT_METRICS_H_
#define COMPUTEVOUCHER_AGENT_METRICS_H_

#include <cstdint>
#include <map>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace computevoucher::agent {

struct AgentMetrics {
  explicit AgentMetrics(prometheus::Registry& r)
      : allocations(prometheus::BuildGauge()
                        .Name("computevoucher_agent_allocations")
                        .Help("Allocations on the cluster, by state "
                              "(running, stopping)")
                        .Register(r)),
        gpus(prometheus::BuildGauge()
                 .Name("computevoucher_agent_gpus")
                 .Help("GPUs of the cluster by model and state (free, used)")
                 .Register(r)),
        utilization(prometheus::BuildGauge()
                        .Name("computevoucher_agent_gpu_utilization_ratio")
                        .Help("GPU utilisation at the last sample, 0..1")
                        .Register(r)),
        memory(prometheus::BuildGauge()
                   .Name("computevoucher_agent_gpu_memory_used_bytes")
                   .Help("GPU memory in use at the last sample")
                   .Register(r)),
        energy(prometheus::BuildCounter()
                   .Name("computevoucher_agent_gpu_energy_joules_total")
                   .Help("Energy used by each GPU since the agent started")
                   .Register(r)),
        metered(prometheus::BuildCounter()
                    .Name("computevoucher_agent_metered_gpu_seconds_total")
                    .Help("GPU-seconds of usage spooled, by model")
                    .Register(r)),
        spool_records(prometheus::BuildGauge()
                          .Name("computevoucher_agent_spool_records")
                          .Help("Usage records waiting for the scheduler")
                          .Register(r)
                          .Add({})),
        spool_bytes(prometheus::BuildGauge()
                        .Name("computevoucher_agent_spool_bytes")
                        .Help("Live bytes of the spool")
                        .Register(r)
                        .Add({})),
        spool_age(prometheus::BuildGauge()
                      .Name("computevoucher_agent_spool_oldest_record_age_"
                            "seconds")
                      .Help("Age of the oldest unacknowledged record's end; 0 "
                            "when the spool is empty")
                      .Register(r)
                      .Add({})),
        rpc_errors(prometheus::BuildCounter()
                       .Name("computevoucher_agent_rpc_errors_total")
                       .Help("Failed calls to the scheduler, by method")
                       .Register(r)),
        records(prometheus::BuildCounter()
                    .Name("computevoucher_agent_usage_records_total")
                    .Help("Usage records answered by the scheduler, by result")
                    .Register(r)),
        idle(prometheus::BuildGauge()
                 .Name("computevoucher_agent_idle_allocations")
                 .Help("Running allocations whose GPUs sat idle past the "
                       "threshold")
                 .Register(r)
                 .Add({})),
        connected(prometheus::BuildGauge()
                      .Name("computevoucher_agent_scheduler_connected")
                      .Help("1 while the scheduler answers, else 0")
                      .Register(r)
                      .Add({})),
        runtime_up(prometheus::BuildGauge()
                       .Name("computevoucher_agent_runtime_up")
                       .Help("1 while the cluster's runtime (e.g. Slurm) "
                             "answers, else 0; allocations are metered as "
                             "last seen meanwhile")
                       .Register(r)),
        pending(prometheus::BuildGauge()
                    .Name("computevoucher_agent_pending_allocations")
                    .Help("Allocations the runtime has not started yet (a "
                          "Slurm job PENDING); not charged")
                    .Register(r)
                    .Add({})) {
    // Present at 0 from the start, so that rates and alerts see them.
    for (const char* method : {"Register", "Heartbeat", "ReportUsage"}) {
      rpc_errors.Add({{"method", method}});
    }
  }

  prometheus::Family<prometheus::Gauge>& allocations;
  prometheus::Family<prometheus::Gauge>& gpus;
  prometheus::Family<prometheus::Gauge>& utilization;
  prometheus::Family<prometheus::Gauge>& memory;
  prometheus::Family<prometheus::Counter>& energy;
  prometheus::Family<prometheus::Counter>& metered;
  prometheus::Gauge& spool_records;
  prometheus::Gauge& spool_bytes;
  prometheus::Gauge& spool_age;
  prometheus::Family<prometheus::Counter>& rpc_errors;
  prometheus::Family<prometheus::Counter>& records;
  prometheus::Gauge& idle;
  prometheus::Gauge& connected;
  prometheus::Family<prometheus::Gauge>& runtime_up;
  prometheus::Gauge& pending;
  // Last energy reading per GPU, so that the counter grows by differences.
  std::map<int, uint64_t> energy_seen;
};

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_METRICS_H_
