// Instants, Asia/Shanghai calendar dates and validity windows.
//
// Asia/Shanghai has been UTC+8 without daylight saving since 1991, so it is
// modelled as a fixed offset: conversions do not depend on the machine's
// time zone database and are the same on every host.
#ifndef COMPUTEVOUCHER_COMMON_TIME_UTIL_H_
#define COMPUTEVOUCHER_COMMON_TIME_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace computevoucher {

// The Asia/Shanghai time zone (UTC+8).
absl::TimeZone ShanghaiZone();

// Timestamp <-> absl::Time. FromProto rejects timestamps outside
// 0001-01-01..9999-12-31 or with nanos outside 0..999999999, naming
// `field`; an unset timestamp is InvalidArgument too.
google::protobuf::Timestamp ToProto(absl::Time t);
absl::StatusOr<absl::Time> FromProto(absl::string_view field,
                                     const google::protobuf::Timestamp& ts);

// Parses "YYYY-MM-DD" as an Asia/Shanghai calendar date.
absl::StatusOr<absl::CivilDay> ParseDate(absl::string_view field,
                                         absl::string_view text);

// First instant of `day` in Asia/Shanghai.
absl::Time StartOfDay(absl::CivilDay day);
// First instant after `day` in Asia/Shanghai: "valid until 2027-12-31"
// means valid before EndOfDay(2027-12-31).
absl::Time EndOfDay(absl::CivilDay day);

// Calendar year of `t` in Asia/Shanghai.
int ShanghaiYear(absl::Time t);
// [start, end) of a calendar year in Asia/Shanghai.
absl::Time StartOfYear(int year);

// "2027-12-31 23:59:59 +08:00" (or UTC "2027-12-31T15:59:59Z" when `utc`).
std::string FormatInstant(absl::Time t, bool utc = false);

// A half-open interval of time [from, until).
struct Window {
  absl::Time from;
  absl::Time until;

  bool Contains(absl::Time t) const { return from <= t && t < until; }
  bool Contains(const Window& inner) const {
    return from <= inner.from && inner.until <= until;
  }
};

// OK when from < until; otherwise InvalidArgument naming the fields.
absl::Status ValidateWindow(absl::string_view from_field,
                            absl::string_view until_field, const Window& w);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_TIME_UTIL_H_
