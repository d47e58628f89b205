#include "scheduler/reports/paging.h"

#include "absl/strings/numbers.h"
#include "common/validate.h"

namespace computevoucher::reports {

absl::StatusOr<int64_t> PageSize(const pb::PageRequest& page) {
  const int64_t size = page.page_size() == 0 ? 100 : page.page_size();
  if (absl::Status s = CheckRange("page.page_size", size, 1, 1000); !s.ok())
    return s;
  return size;
}

absl::StatusOr<int64_t> NumericPageToken(const pb::PageRequest& page) {
  int64_t position = 0;
  if (!page.page_token().empty() &&
      !absl::SimpleAtoi(page.page_token(), &position)) {
    return absl::InvalidArgumentError(
        "page.page_token: not a token this server issued");
  }
  return position;
}

absl::StatusOr<Window> RequiredPeriod(const google::protobuf::Timestamp& start,
                                      const google::protobuf::Timestamp& end) {
  absl::StatusOr<absl::Time> from = FromProto("period_start", start);
  if (!from.ok()) return from.status();
  absl::StatusOr<absl::Time> until = FromProto("period_end", end);
  if (!until.ok()) return until.status();
  const Window window{*from, *until};
  if (absl::Status s = ValidateWindow("period_start", "period_end", window);
      !s.ok())
    return s;
  return window;
}

absl::StatusOr<absl::Time> OptionalBound(absl::string_view field,
                                         const google::protobuf::Timestamp& ts,
                                         absl::Time unbounded) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return unbounded;
  return FromProto(field, ts);
}

}  // namespace computevoucher::reports
