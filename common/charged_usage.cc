#include "common/charged_usage.h"

namespace computevoucher {

namespace pb = ::computevoucher::v1;

namespace {

bool SameTime(const google::protobuf::Timestamp& a,
              const google::protobuf::Timestamp& b) {
  return a.seconds() == b.seconds() && a.nanos() == b.nanos();
}

}  // namespace

bool SameRecord(const pb::UsageRecord& a, const pb::UsageRecord& b) {
  // The cheapest and most telling first.
  return a.sequence() == b.sequence() && a.gpu_ms() == b.gpu_ms() &&
         SameTime(a.start(), b.start()) && SameTime(a.end(), b.end()) &&
         a.mean_utilization_bp() == b.mean_utilization_bp() &&
         a.energy_mj() == b.energy_mj() &&
         a.allocation_id() == b.allocation_id() && a.evidence() == b.evidence();
}

bool SameCharge(const pb::ChargedUsage& a, const pb::ChargedUsage& b,
                const pb::UsageRecord& b_record) {
  return a.cost_fen() == b.cost_fen() && a.subsidy_fen() == b.subsidy_fen() &&
         a.unsubsidised_gpu_ms() == b.unsubsidised_gpu_ms() &&
         SameTime(a.accepted_at(), b.accepted_at()) &&
         SameRecord(a.record(), b_record);
}

}  // namespace computevoucher
