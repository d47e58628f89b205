#include "common/time_util.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace computevoucher {
namespace {

// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range protobuf allows.
constexpr int64_t kMinSeconds = -62135596800;
constexpr int64_t kMaxSeconds = 253402300799;

}  // namespace

absl::TimeZone ShanghaiZone() { return absl::FixedTimeZone(8 * 60 * 60); }

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t s = absl::ToUnixSeconds(t);
  ts.set_seconds(s);
  ts.set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(s)) /
                                    absl::Nanoseconds(1)));
  return ts;
}

absl::StatusOr<absl::Time> FromProto(absl::string_view field,
                                     const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  if (ts.seconds() < kMinSeconds || ts.seconds() > kMaxSeconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": seconds must be within years 1..9999, got ", ts.seconds()));
  }
  if (ts.nanos() < 0 || ts.nanos() > 999999999) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": nanos must be 0..999999999, got ", ts.nanos()));
  }
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::StatusOr<absl::CivilDay> ParseDate(absl::string_view field,
                                         absl::string_view text) {
  // The shape is checked here because ParseCivilTime also takes signs,
  // spaces and one-digit months; it rejects impossible dates (2025-02-30).
  bool shaped = text.size() == 10;
  for (size_t i = 0; shaped && i < text.size(); ++i) {
    shaped = (i == 4 || i == 7)
                 ? text[i] == '-'
                 : absl::ascii_isdigit(static_cast<unsigned char>(text[i]));
  }
  absl::CivilDay day;
  if (!shaped || !absl::ParseCivilTime(text, &day)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", text, "\" is not a date of the form YYYY-MM-DD"));
  }
  if (day.year() < 1970 || day.year() > 9998) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", text, "\" must be within years 1970..9998"));
  }
  return day;
}

absl::Time StartOfDay(absl::CivilDay day) {
  return absl::FromCivil(day, ShanghaiZone());
}

absl::Time EndOfDay(absl::CivilDay day) { return StartOfDay(day + 1); }

int ShanghaiYear(absl::Time t) {
  return static_cast<int>(absl::ToCivilYear(t, ShanghaiZone()).year());
}

absl::Time StartOfYear(int year) {
  return absl::FromCivil(absl::CivilYear(year), ShanghaiZone());
}

std::string FormatInstant(absl::Time t, bool utc) {
  if (utc)
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Ez", t, ShanghaiZone());
}

absl::Status ValidateWindow(absl::string_view from_field,
                            absl::string_view until_field, const Window& w) {
  if (w.from < w.until) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(until_field, ": must be after ", from_field, " (",
                   FormatInstant(w.from), "), got ", FormatInstant(w.until)));
}

}  // namespace computevoucher
