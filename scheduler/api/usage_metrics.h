// computevoucher_usage_records_total (deploy/METRICS.md): the usage records
// the scheduler answered, by result and, for refused records, by the field
// that was wrong.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_USAGE_METRICS_H_
#define COMPUTEVOUCHER_SCHEDULER_API_USAGE_METRICS_H_

#include <string>

#include "computevoucher/v1/agent.pb.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"

namespace computevoucher::api {

namespace pb = ::computevoucher::v1;

// The reason label of `ack`: empty for accepted and duplicate records;
// for rejected and retry ones the field its reason names first (the text
// before the first ':', e.g. "gpu_ms"), or "other" when that is not a field
// of a usage record.
std::string UsageReasonLabel(const pb::UsageAck& ack);

class UsageMetrics {
 public:
  // Registers the family in `registry`, which must outlive this.
  explicit UsageMetrics(prometheus::Registry& registry);
  UsageMetrics(const UsageMetrics&) = delete;
  UsageMetrics& operator=(const UsageMetrics&) = delete;

  // Counts every ack of `response`. Thread-safe.
  void Count(const pb::ReportUsageResponse& response);

 private:
  prometheus::Family<prometheus::Counter>& records_;
};

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_USAGE_METRICS_H_
