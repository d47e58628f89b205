#include "common/time_util.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/timestamp.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

// An instant given in UTC.
absl::Time Utc(int64_t y, int m, int d, int hh, int mm, int ss) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss),
                         absl::UTCTimeZone());
}

google::protobuf::Timestamp Ts(int64_t seconds, int32_t nanos) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds);
  ts.set_nanos(nanos);
  return ts;
}

TEST(ShanghaiZone, IsUtcPlusEightAllYearRound) {
  const std::vector<absl::Time> instants = {
      Utc(1970, 1, 1, 0, 0, 0),   Utc(2025, 1, 15, 12, 0, 0),
      Utc(2025, 7, 15, 12, 0, 0), Utc(2027, 12, 31, 16, 0, 0),
      Utc(9999, 6, 1, 0, 0, 0),
  };
  for (const absl::Time t : instants) {
    const absl::TimeZone::CivilInfo info = ShanghaiZone().At(t);
    EXPECT_EQ(info.offset, 8 * 60 * 60) << t;
    EXPECT_FALSE(info.is_dst) << t;
    EXPECT_EQ(info.cs,
              absl::ToCivilSecond(t + absl::Hours(8), absl::UTCTimeZone()))
        << t;
  }
}

TEST(ParseDate, AcceptsCalendarDates) {
  const std::vector<std::pair<std::string, absl::CivilDay>> cases = {
      {"2027-12-31", absl::CivilDay(2027, 12, 31)},
      {"2024-02-29", absl::CivilDay(2024, 2, 29)},
      {"2025-01-05", absl::CivilDay(2025, 1, 5)},
      {"1970-01-01", absl::CivilDay(1970, 1, 1)},
      {"9998-12-31", absl::CivilDay(9998, 12, 31)},
  };
  for (const auto& [text, want] : cases) {
    const absl::StatusOr<absl::CivilDay> got = ParseDate("valid_until", text);
    ASSERT_THAT(got, IsOk()) << text;
    EXPECT_EQ(*got, want) << text;
  }
}

TEST(ParseDate, RejectsAnythingButYyyyMmDd) {
  const std::vector<std::string> cases = {
      "",
      "abc",
      "2025-02-30",
      "2025-02-29",
      "2025-13-01",
      "2025-00-10",
      "2025-04-31",
      "2025-01-00",
      "2025-1-5",
      "2025-1-05",
      "2025-01-5",
      "2025/01/05",
      "20250105",
      "2025-01-05T00:00:00",
      "2025-01-05 ",
      " 2025-01-05",
      "2025- 1-05",
      "2025-01- 5",
  };
  for (const std::string& text : cases) {
    EXPECT_THAT(
        ParseDate("valid_until", text),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr("valid_until: "),
                       HasSubstr("\"" + text + "\""), HasSubstr("YYYY-MM-DD"))))
        << "\"" << text << "\"";
  }
}

// Ten characters long, but not of the form YYYY-MM-DD: a sign, a leading
// zero on the year, one-digit months or days and surrounding whitespace.
TEST(ParseDate, RejectsOtherTenCharacterForms) {
  const std::vector<std::string> cases = {
      "2025-1-05 ", " 2025-1-05", "+2025-1-05", "02025-1-05",
      "2025-01-5 ", " 2025-01-5", "+2025-01-5", "2025-1-5  ",
  };
  for (const std::string& text : cases) {
    EXPECT_THAT(
        ParseDate("valid_until", text),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr("valid_until: "),
                       HasSubstr("\"" + text + "\""), HasSubstr("YYYY-MM-DD"))))
        << "\"" << text << "\"";
  }
}

TEST(ParseDate, RejectsYearsOutsideRange) {
  for (const char* text : {"1969-12-31", "9999-01-01", "0001-01-01"}) {
    EXPECT_THAT(
        ParseDate("valid_until", text),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr("valid_until: "), HasSubstr("1970..9998"))))
        << text;
  }
}

TEST(StartOfDay, IsShanghaiMidnight) {
  const std::vector<std::pair<absl::CivilDay, absl::Time>> cases = {
      {absl::CivilDay(2027, 12, 31), Utc(2027, 12, 30, 16, 0, 0)},
      {absl::CivilDay(2025, 1, 1), Utc(2024, 12, 31, 16, 0, 0)},
      {absl::CivilDay(2024, 2, 29), Utc(2024, 2, 28, 16, 0, 0)},
      {absl::CivilDay(1970, 1, 1), Utc(1969, 12, 31, 16, 0, 0)},
  };
  for (const auto& [day, want] : cases) {
    EXPECT_EQ(StartOfDay(day), want) << day;
  }
}

TEST(EndOfDay, IsNextShanghaiMidnight) {
  const std::vector<std::pair<absl::CivilDay, absl::Time>> cases = {
      {absl::CivilDay(2027, 12, 31), Utc(2027, 12, 31, 16, 0, 0)},
      {absl::CivilDay(2024, 2, 28), Utc(2024, 2, 28, 16, 0, 0)},
      {absl::CivilDay(2024, 2, 29), Utc(2024, 2, 29, 16, 0, 0)},
      {absl::CivilDay(2025, 2, 28), Utc(2025, 2, 28, 16, 0, 0)},
  };
  for (const auto& [day, want] : cases) {
    EXPECT_EQ(EndOfDay(day), want) << day;
    EXPECT_EQ(EndOfDay(day), StartOfDay(day + 1)) << day;
    EXPECT_EQ(EndOfDay(day) - StartOfDay(day), absl::Hours(24)) << day;
  }
}

TEST(ShanghaiYear, ChangesAtShanghaiMidnight) {
  const std::vector<std::pair<absl::Time, int>> cases = {
      {Utc(2024, 12, 31, 16, 0, 0), 2025},
      {Utc(2024, 12, 31, 15, 59, 59), 2024},
      {Utc(2024, 12, 31, 16, 0, 0) - absl::Nanoseconds(1), 2024},
      {Utc(2025, 6, 1, 0, 0, 0), 2025},
      {Utc(2025, 12, 31, 23, 0, 0), 2026},
  };
  for (const auto& [t, want] : cases) {
    EXPECT_EQ(ShanghaiYear(t), want) << t;
  }
}

TEST(StartOfYear, IsShanghaiNewYear) {
  const std::vector<std::pair<int, absl::Time>> cases = {
      {2025, Utc(2024, 12, 31, 16, 0, 0)},
      {2028, Utc(2027, 12, 31, 16, 0, 0)},
      {1970, Utc(1969, 12, 31, 16, 0, 0)},
  };
  for (const auto& [year, want] : cases) {
    EXPECT_EQ(StartOfYear(year), want) << year;
    EXPECT_EQ(ShanghaiYear(StartOfYear(year)), year) << year;
    EXPECT_EQ(ShanghaiYear(StartOfYear(year) - absl::Nanoseconds(1)), year - 1)
        << year;
  }
}

TEST(ToProto, SplitsIntoSecondsAndNonNegativeNanos) {
  struct Case {
    absl::Time t;
    int64_t seconds;
    int32_t nanos;
  };
  const std::vector<Case> cases = {
      {absl::FromUnixSeconds(1798732800), 1798732800, 0},
      {absl::FromUnixNanos(1798732800123456789), 1798732800, 123456789},
      {absl::FromUnixNanos(1), 0, 1},
      {absl::FromUnixNanos(-1), -1, 999999999},
      {absl::FromUnixNanos(-1500000000), -2, 500000000},
  };
  for (const Case& c : cases) {
    const google::protobuf::Timestamp ts = ToProto(c.t);
    EXPECT_EQ(ts.seconds(), c.seconds) << c.t;
    EXPECT_EQ(ts.nanos(), c.nanos) << c.t;
  }
}

TEST(FromProto, RoundTripsToProto) {
  const std::vector<absl::Time> cases = {
      Utc(2027, 12, 31, 16, 0, 0),
      Utc(2027, 12, 31, 16, 0, 0) + absl::Nanoseconds(123456789),
      Utc(2027, 12, 31, 16, 0, 0) + absl::Nanoseconds(999999999),
      absl::FromUnixNanos(1),
      absl::FromUnixNanos(-1),
      Utc(1, 1, 1, 0, 0, 0),
      Utc(9999, 12, 31, 23, 59, 59) + absl::Nanoseconds(999999999),
      Utc(1900, 3, 1, 12, 30, 0) + absl::Nanoseconds(42),
  };
  for (const absl::Time t : cases) {
    const absl::StatusOr<absl::Time> got = FromProto("valid_from", ToProto(t));
    ASSERT_THAT(got, IsOk()) << t;
    EXPECT_EQ(*got, t) << t;
  }
}

TEST(FromProto, RejectsInvalidTimestampsNamingTheField) {
  struct Case {
    google::protobuf::Timestamp ts;
    std::string why;
  };
  constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
  const std::vector<Case> cases = {
      {google::protobuf::Timestamp(), "required"},
      {Ts(0, 0), "required"},
      {Ts(1798732800, -1), "nanos must be 0..999999999, got -1"},
      {Ts(1798732800, 1000000000),
       "nanos must be 0..999999999, got 1000000000"},
      {Ts(0, -1), "nanos must be 0..999999999, got -1"},
      {Ts(kMaxSeconds + 1, 0),
       "seconds must be within years 1..9999, got 253402300800"},
      {Ts(kMinSeconds - 1, 0),
       "seconds must be within years 1..9999, got -62135596801"},
      {Ts(std::numeric_limits<int64_t>::max(), 0),
       "seconds must be within years 1..9999"},
      {Ts(std::numeric_limits<int64_t>::min(), 0),
       "seconds must be within years 1..9999"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(
        FromProto("lease.valid_from", c.ts),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr("lease.valid_from: "), HasSubstr(c.why))))
        << c.ts.ShortDebugString();
  }
}

TEST(FromProto, AcceptsRangeEdges) {
  const std::vector<std::pair<google::protobuf::Timestamp, absl::Time>> cases =
      {
          {Ts(-62135596800, 0), Utc(1, 1, 1, 0, 0, 0)},
          {Ts(253402300799, 999999999),
           Utc(9999, 12, 31, 23, 59, 59) + absl::Nanoseconds(999999999)},
          {Ts(0, 1), absl::UnixEpoch() + absl::Nanoseconds(1)},
      };
  for (const auto& [ts, want] : cases) {
    const absl::StatusOr<absl::Time> got = FromProto("t", ts);
    ASSERT_THAT(got, IsOk()) << ts.ShortDebugString();
    EXPECT_EQ(*got, want) << ts.ShortDebugString();
  }
}

TEST(Window, ContainsInstantsInHalfOpenInterval) {
  const Window w{Utc(2025, 1, 1, 0, 0, 0), Utc(2025, 2, 1, 0, 0, 0)};
  const std::vector<std::pair<absl::Time, bool>> cases = {
      {w.from, true},
      {w.from + absl::Nanoseconds(1), true},
      {Utc(2025, 1, 15, 0, 0, 0), true},
      {w.until - absl::Nanoseconds(1), true},
      {w.until, false},
      {w.from - absl::Nanoseconds(1), false},
      {absl::InfinitePast(), false},
      {absl::InfiniteFuture(), false},
  };
  for (const auto& [t, want] : cases) {
    EXPECT_EQ(w.Contains(t), want) << t;
  }
}

TEST(Window, ContainsInnerWindows) {
  const absl::Time jan = Utc(2025, 1, 1, 0, 0, 0);
  const absl::Time feb = Utc(2025, 2, 1, 0, 0, 0);
  const absl::Time mar = Utc(2025, 3, 1, 0, 0, 0);
  const absl::Time apr = Utc(2025, 4, 1, 0, 0, 0);
  const Window outer{jan, mar};
  struct Case {
    Window inner;
    bool want;
  };
  const std::vector<Case> cases = {
      {{jan, mar}, true},  {{jan, feb}, true},
      {{feb, mar}, true},  {{feb, apr}, false},
      {{jan, apr}, false}, {{jan - absl::Seconds(1), feb}, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(outer.Contains(c.inner), c.want)
        << "[" << c.inner.from << ", " << c.inner.until << ")";
  }
}

TEST(ValidateWindow, AcceptsNonEmptyWindows) {
  const absl::Time t = Utc(2025, 1, 1, 0, 0, 0);
  EXPECT_THAT(ValidateWindow("valid_from", "valid_until",
                             Window{t, t + absl::Nanoseconds(1)}),
              IsOk());
  EXPECT_THAT(ValidateWindow("valid_from", "valid_until",
                             Window{t, t + absl::Hours(24)}),
              IsOk());
}

TEST(ValidateWindow, RejectsEmptyOrReversedWindowsNamingBothFields) {
  const absl::Time t = Utc(2027, 12, 31, 16, 0, 0);
  const std::vector<Window> cases = {
      {t, t},
      {t, t - absl::Seconds(1)},
      {t, t - absl::Hours(24 * 365)},
  };
  for (const Window& w : cases) {
    EXPECT_THAT(ValidateWindow("valid_from", "valid_until", w),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("valid_until: must be after "
                                         "valid_from (2028-01-01 00:00:00 "
                                         "+08:00), got "),
                               HasSubstr(FormatInstant(w.until)))))
        << w.from << " " << w.until;
  }
}

TEST(FormatInstant, WritesShanghaiOrUtc) {
  struct Case {
    absl::Time t;
    std::string shanghai;
    std::string utc;
  };
  const std::vector<Case> cases = {
      {Utc(2027, 12, 31, 15, 59, 59), "2027-12-31 23:59:59 +08:00",
       "2027-12-31T15:59:59Z"},
      {Utc(2027, 12, 31, 16, 0, 0), "2028-01-01 00:00:00 +08:00",
       "2027-12-31T16:00:00Z"},
      {absl::UnixEpoch(), "1970-01-01 08:00:00 +08:00", "1970-01-01T00:00:00Z"},
      {Utc(2025, 3, 4, 5, 6, 7) + absl::Milliseconds(999),
       "2025-03-04 13:06:07 +08:00", "2025-03-04T05:06:07Z"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FormatInstant(c.t), c.shanghai) << c.t;
    EXPECT_EQ(FormatInstant(c.t, /*utc=*/false), c.shanghai) << c.t;
    EXPECT_EQ(FormatInstant(c.t, /*utc=*/true), c.utc) << c.t;
  }
}

}  // namespace
}  // namespace computevoucher
