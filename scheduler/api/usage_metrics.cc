#include "scheduler/api/usage_metrics.h"

#include <cstdint>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"

namespace computevoucher::api {
namespace {

const char* ResultLabel(pb::UsageResult result) {
  switch (result) {
    case pb::USAGE_RESULT_ACCEPTED:
      return "accepted";
    case pb::USAGE_RESULT_DUPLICATE:
      return "duplicate";
    case pb::USAGE_RESULT_REJECTED:
      return "rejected";
    case pb::USAGE_RESULT_RETRY:
      return "retry";
    default:
      return "unspecified";
  }
}

}  // namespace

std::string UsageReasonLabel(const pb::UsageAck& ack) {
  if (ack.result() != pb::USAGE_RESULT_REJECTED &&
      ack.result() != pb::USAGE_RESULT_RETRY) {
    return "";
  }
  const absl::string_view reason = ack.reason();
  const std::string field =
      absl::AsciiStrToLower(reason.substr(0, reason.find(':')));
  // Only the fields of a usage record, so that the label stays bounded
  // whatever the reasons say.
  if (pb::UsageRecord::descriptor()->FindFieldByName(field) == nullptr) {
    return "other";
  }
  return field;
}

UsageMetrics::UsageMetrics(prometheus::Registry& registry)
    : records_(prometheus::BuildCounter()
                   .Name("computevoucher_usage_records_total")
                   .Help("Usage records answered, by result and, for "
                         "rejected and retry, the field named first in the "
                         "reason.")
                   .Register(registry)) {}

void UsageMetrics::Count(const pb::ReportUsageResponse& response) {
  // A report carries hundreds of records with a handful of distinct
  // answers: look each series up once.
  absl::flat_hash_map<std::pair<absl::string_view, std::string>, int64_t>
      counts;
  for (const pb::UsageAck& ack : response.acks()) {
    ++counts[{ResultLabel(ack.result()), UsageReasonLabel(ack)}];
  }
  for (const auto& [labels, n] : counts) {
    records_
        .Add({{"result", std::string(labels.first)}, {"reason", labels.second}})
        .Increment(static_cast<double>(n));
  }
}

}  // namespace computevoucher::api
