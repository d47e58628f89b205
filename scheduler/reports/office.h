// The program office's month-end reads besides usage: each enterprise's
// use of its annual cap, the vouchers about to expire with money on them,
// and the audit log of who sent which command.
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_OFFICE_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_OFFICE_H_

#include "absl/status/statusor.h"
#include "computevoucher/v1/admin.pb.h"
#include "scheduler/reports/sources.h"

namespace computevoucher::reports {

// Face value issued per program and enterprise in the year `request`
// names (the state's current year when 0), against each capped
// program's annual cap per enterprise.
absl::StatusOr<pb::CapUse> CapUse(const core::StateMachine& state,
                                  const pb::GetCapUseRequest& request);

// Active and suspended vouchers whose window ends within
// `request.within_days()` of the state's now with money available or
// held, soonest end first, with the totals over every page.
absl::StatusOr<pb::ListExpiringVouchersResponse> ExpiringVouchers(
    const core::StateMachine& state,
    const pb::ListExpiringVouchersRequest& request);

// The page of audit events `request` asks for, each with its token's
// description.
absl::StatusOr<pb::ListAuditResponse> AuditPage(
    const Sources& sources, const pb::ListAuditRequest& request);

}  // namespace computevoucher::reports

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_OFFICE_H_
