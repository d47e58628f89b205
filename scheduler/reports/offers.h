// What an enterprise may allocate: the GPU models on offer to it, and the
// spelling of a model as its providers list it.
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_OFFERS_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_OFFERS_H_

#include <string>

#include "absl/status/statusor.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "scheduler/core/state_machine.h"

namespace computevoucher::reports {

namespace pb = ::computevoucher::v1;

// The offers to enterprise `enterprise_id` (which must exist) that
// `request`'s filters keep, by model ignoring letter case, then price,
// then cluster.
absl::StatusOr<pb::ListOffersResponse> Offers(
    const core::StateMachine& state, const std::string& enterprise_id,
    const pb::ListOffersRequest& request);

}  // namespace computevoucher::reports

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_OFFERS_H_
