// Reports over accepted usage: an enterprise's usage pages and statement,
// and the program office's settlement with providers. Each reads the
// allocations from committed state, then the usage index, and sums with
// checked arithmetic (an overflow is an error, never a wrapped total).
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_USAGE_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_USAGE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "scheduler/reports/sources.h"

namespace computevoucher::reports {

// The page of `enterprise_id`'s usage records `request` asks for, each
// with the facts of its allocation. An allocation_id that is missing or
// another enterprise's gets the same NotFound.
absl::StatusOr<pb::ListUsageResponse> UsagePage(
    const Sources& sources, absl::string_view enterprise_id,
    const pb::ListUsageRequest& request);

// `enterprise_id`'s statement for the period: one line per allocation with
// usage ending in it (GPU-ms, cost, subsidy, self-pay) and their total.
absl::StatusOr<pb::Statement> Statement(const Sources& sources,
                                        absl::string_view enterprise_id,
                                        const pb::GetStatementRequest& request);

// What the program owes providers for the period (all of them, or the one
// `request` names): one line per provider, program and hardware class with
// the records, subsidised GPU-ms and subsidy, their total, and the journal
// position the figures are as of.
absl::StatusOr<pb::Settlement> Settlement(
    const Sources& sources, const pb::GetSettlementRequest& request);

// Usage ending in the period `request` asks for, summed per value of its
// groups (enterprise, provider, program, hardware class, SME, month, in
// the order given), rows sorted by them, names and credit codes next to
// ids, and the total.
absl::StatusOr<pb::UsageReport> UsageReport(
    const Sources& sources, const pb::UsageReportRequest& request);

// `enterprise_id`'s balance over its vouchers: available on the active
// ones, held and charged on all.
absl::StatusOr<pb::Balance> Balance(const core::StateMachine& state,
                                    absl::string_view enterprise_id);

}  // namespace computevoucher::reports

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_USAGE_H_
