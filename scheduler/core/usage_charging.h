// Usage charging: the usage records agents report for their allocations,
// each decided once per (allocation, sequence) — accepted and charged to
// the allocation's hold (cumulatively, so that rounding never drifts),
// refused (using up its sequence number), a duplicate, or to be retried.
// An allocation whose hold runs out ends.
//
// Not thread-safe; owned by StateMachine.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_USAGE_CHARGING_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_USAGE_CHARGING_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "computevoucher/v1/agent.pb.h"
#include "computevoucher/v1/journal.pb.h"
#include "computevoucher/v1/types.pb.h"
#include "scheduler/core/books.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/records.h"
#include "scheduler/core/response.h"
#include "scheduler/core/voucher_book.h"

namespace computevoucher::core {

// The end of placed allocation `a`'s billable life by `now`: its deadline,
// now, or its end, whichever comes first.
absl::Time BillableEnd(const pb::Allocation& a, absl::Time now);
// The subsidy `a` may be charged at most by `now`: GPUs × its billable life
// at its price and ratio (0 when it was never placed).
absl::StatusOr<int64_t> MaxChargeOf(const pb::Allocation& a, absl::Time now);

class UsageCharging {
 public:
  UsageCharging(Placement& placement, VoucherBook& vouchers, Books& books)
      : placement_(placement), vouchers_(vouchers), books_(books) {}
  UsageCharging(const UsageCharging&) = delete;
  UsageCharging& operator=(const UsageCharging&) = delete;

  // Decides each record of agent `p`'s report, at books.now(); one ack per
  // record. PermissionDenied unless `p` is an agent; Internal on a broken
  // invariant. Reply::changed is false when every record was a duplicate
  // or is to be retried.
  absl::StatusOr<Reply> ReportUsage(const pb::Principal& p,
                                    const pb::ReportUsageRequest& r);

  // The subsidy an allocation may be charged at most: its hold at placement
  // plus extensions, for GPUs × its billable life so far.
  absl::StatusOr<int64_t> MaxChargeFen(const std::string& allocation_id) const;

  // Records accepted since the previous call, in order, with their charges.
  std::vector<pb::ChargedUsage> TakeUsage() {
    return std::exchange(usage_, {});
  }

 private:
  // What the checks of a record that is next in sequence decided.
  struct Verdict {
    pb::UsageResult result = pb::USAGE_RESULT_ACCEPTED;  // or REJECTED, RETRY
    std::string reason;
    absl::Time start;
    absl::Time end;
  };
  // Decides one record. Sets *consumed when a refused record used up its
  // sequence number (a change of state, like an accepted one).
  absl::StatusOr<pb::UsageAck> ChargeRecord(const pb::Principal& p,
                                            const pb::UsageRecord& record,
                                            bool* consumed);
  Verdict Check(const AllocationRec& rec, const pb::UsageRecord& u) const;
  // Charges an accepted record and ends the allocation if its hold ran out.
  absl::StatusOr<pb::UsageAck> Charge(AllocationRec& rec,
                                      const pb::UsageRecord& u,
                                      const Verdict& verdict);

  Placement& placement_;
  VoucherBook& vouchers_;
  Books& books_;
  std::vector<pb::ChargedUsage> usage_;
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_USAGE_CHARGING_H_
