// Vouchers wherever they are: in the state while they live, in the store
// once retired (core::VoucherBook::RetireDue, store::RetiredRecords); read
// as reports/live_or_retired.h says.
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_VOUCHERS_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_VOUCHERS_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "computevoucher/v1/types.pb.h"
#include "google/protobuf/repeated_field.h"
#include "scheduler/reports/sources.h"

namespace computevoucher::reports {

// Which vouchers: those matching every non-empty field.
struct VoucherFilter {
  std::string program_id;
  std::string enterprise_id;
  pb::VoucherState state = pb::VOUCHER_STATE_UNSPECIFIED;
};

// The voucher `id` (its view) when it matches `filter`; NotFound
// otherwise, a missing one and another enterprise's alike.
absl::StatusOr<pb::Voucher> FindVoucher(const Sources& sources,
                                        const std::string& id,
                                        const VoucherFilter& filter);

// The page of vouchers matching `filter` after `page.page_token()`, in id
// order, added to `out`; returns the next page token ("" at the end).
absl::StatusOr<std::string> VoucherPage(
    const Sources& sources, const VoucherFilter& filter,
    const pb::PageRequest& page,
    google::protobuf::RepeatedPtrField<pb::Voucher>* out);

// VoucherPage as a list response (vouchers and next_page_token).
template <typename Response>
absl::StatusOr<Response> VoucherList(const Sources& sources,
                                     const VoucherFilter& filter,
                                     const pb::PageRequest& page) {
  Response response;
  absl::StatusOr<std::string> next =
      VoucherPage(sources, filter, page, response.mutable_vouchers());
  if (!next.ok()) return next.status();
  response.set_next_page_token(*std::move(next));
  return response;
}

}  // namespace computevoucher::reports

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_VOUCHERS_H_
