// Comparing accepted usage records: how a store finds an accepted record in
// the report that carried it, and how replay checks the stored records
// against the ones the replayed commands accept.
#ifndef COMPUTEVOUCHER_COMMON_CHARGED_USAGE_H_
#define COMPUTEVOUCHER_COMMON_CHARGED_USAGE_H_

#include "computevoucher/v1/enterprise.pb.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher {

// Whether `a` and `b` agree on every field.
bool SameRecord(const computevoucher::v1::UsageRecord& a,
                const computevoucher::v1::UsageRecord& b);

// Whether `a` and `b` are the same record accepted at the same time with the
// same charges: the fields a store keeps (record, cost_fen, subsidy_fen,
// unsubsidised_gpu_ms, accepted_at), not who used it, which reports fill
// in from the allocation. `b_record` is b's record: its own, or the one of
// the command that carried it when a read left it out.
bool SameCharge(const computevoucher::v1::ChargedUsage& a,
                const computevoucher::v1::ChargedUsage& b,
                const computevoucher::v1::UsageRecord& b_record);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_CHARGED_USAGE_H_
