// Allocations wherever they are: in the state while they live, in the
// store once retired (core::Placement::RetireDue, store::RetiredRecords);
// read as reports/live_or_retired.h says.
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_ALLOCATIONS_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_ALLOCATIONS_H_

#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "computevoucher/v1/types.pb.h"
#include "google/protobuf/repeated_field.h"
#include "scheduler/reports/sources.h"

namespace computevoucher::reports {

// Which allocations: those matching every non-empty field.
struct AllocationFilter {
  std::string enterprise_id;
  std::string provider_id;
  std::string cluster_id;
  std::string voucher_id;
  pb::AllocationState state = pb::ALLOCATION_STATE_UNSPECIFIED;
  // Retired allocations only if retired since then (live ones all).
  absl::Time retired_from = absl::InfinitePast();
};

// The allocation `id` (its view) when it matches `filter`; NotFound
// otherwise, a missing one and another enterprise's alike.
absl::StatusOr<pb::Allocation> FindAllocation(const Sources& sources,
                                              const std::string& id,
                                              const AllocationFilter& filter);

// The page of allocations matching `filter` after `page.page_token()`, in
// id order, added to `out`; returns the next page token ("" at the end).
absl::StatusOr<std::string> AllocationPage(
    const Sources& sources, const AllocationFilter& filter,
    const pb::PageRequest& page,
    google::protobuf::RepeatedPtrField<pb::Allocation>* out);

// AllocationPage as a list response (allocations and next_page_token).
template <typename Response>
absl::StatusOr<Response> AllocationList(const Sources& sources,
                                        const AllocationFilter& filter,
                                        const pb::PageRequest& page) {
  Response response;
  absl::StatusOr<std::string> next =
      AllocationPage(sources, filter, page, response.mutable_allocations());
  if (!next.ok()) return next.status();
  response.set_next_page_token(*std::move(next));
  return response;
}

// Calls `fn` once with every allocation matching `filter`, live ones
// first, then retired ones.
absl::Status ForEachAllocation(
    const Sources& sources, const AllocationFilter& filter,
    const std::function<void(const pb::Allocation&)>& fn);

}  // namespace computevoucher::reports

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_ALLOCATIONS_H_
