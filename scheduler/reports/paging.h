// Pages and periods as requests name them: the page size and token of a
// list, and the period of a statement or settlement.
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_PAGING_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_PAGING_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/time_util.h"
#include "computevoucher/v1/types.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace computevoucher::reports {

namespace pb = ::computevoucher::v1;

// The page size asked for: 0 means 100; otherwise 1..1000.
absl::StatusOr<int64_t> PageSize(const pb::PageRequest& page);

// A page token that is a position this server issued (0 when empty).
absl::StatusOr<int64_t> NumericPageToken(const pb::PageRequest& page);

// A required period [start, end) from two timestamps.
absl::StatusOr<Window> RequiredPeriod(const google::protobuf::Timestamp& start,
                                      const google::protobuf::Timestamp& end);

// An optional period bound: unset means `unbounded`.
absl::StatusOr<absl::Time> OptionalBound(absl::string_view field,
                                         const google::protobuf::Timestamp& ts,
                                         absl::Time unbounded);

// The page of `map` (an ordered map keyed by id) after `page.page_token()`:
// calls `emit(value)` for up to page_size values for which `keep(value)`
// holds, and returns the next page token ("" at the end).
template <typename Map, typename Keep, typename Emit>
absl::StatusOr<std::string> Page(const Map& map, const pb::PageRequest& page,
                                 Keep keep, Emit emit) {
  absl::StatusOr<int64_t> page_size = PageSize(page);
  if (!page_size.ok()) return page_size.status();
  int64_t size = *page_size;
  if (page.page_token().size() > 128) {
    return absl::InvalidArgumentError(
        "page.page_token: not a token this server issued");
  }
  auto it = page.page_token().empty() ? map.begin()
                                      : map.upper_bound(page.page_token());
  std::string last;
  for (; it != map.end() && size > 0; ++it) {
    if (!keep(it->second)) continue;
    if (absl::Status s = emit(it->second); !s.ok()) return s;
    last = it->first;
    --size;
  }
  // Another matching value after this page means there is a next page.
  for (; it != map.end(); ++it) {
    if (keep(it->second)) return last;
  }
  return std::string();
}

}  // namespace computevoucher::reports

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_PAGING_H_
