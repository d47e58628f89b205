#include "common/validate.h"

#include <cstdint>
#include <limits>
#include <tuple>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace cv {
namespace {

using ::cv::testing::IsOk;
using ::cv::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(Utf8Length, CountsCodePoints) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"", 0},        {"a", 1},
      {"abc", 3},     {"中", 1},
      {"中文", 2},    {"算力券", 3},
      {"GPU算力", 5}, {"杭州某某科技有限公司", 10},
      {"é", 1},       {"¥8,000,000", 10},
      {"😀", 1},       {"a😀b", 3},
  };
  for (const auto& [s, want] : cases) {
    EXPECT_EQ(Utf8Length(s), want) << s;
  }
}

// The header promises that invalid bytes count as one each.
TEST(Utf8Length, CountsInvalidLeadBytesAsOne) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"\xFF", 1},
      {"\xFF\xFE", 2},
      {"a\xFF", 2},
  };
  for (const auto& [s, want] : cases) {
    EXPECT_EQ(Utf8Length(s), want) << ::testing::PrintToString(s);
  }
}

// A stray continuation byte (10xxxxxx with no lead byte before it) is
// invalid too, so it counts as one.
TEST(Utf8Length, CountsStrayContinuationBytesAsOne) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"\x80", 1},
      {"a\x80"
       "b",
       3},
      {"\x80\x80\x80", 3},
  };
  for (const auto& [s, want] : cases) {
    EXPECT_EQ(Utf8Length(s), want) << ::testing::PrintToString(s);
  }
}

TEST(CheckLength, AcceptsLengthsWithinBounds) {
  struct Case {
    std::string value;
    int64_t min;
    int64_t max;
  };
  const std::vector<Case> cases = {
      {"a", 1, 4},
      {"abcd", 1, 4},
      // Four characters, twelve bytes.
      {"中文名称", 1, 4},
      {"", 0, 4},
      {"abcdef", 6, 6},
      {"杭州某某科技有限公司", 1, 10},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(CheckLength("name", c.value, c.min, c.max), IsOk())
        << c.value << " " << c.min << ".." << c.max;
  }
}

TEST(CheckLength, RejectsLengthsOutsideBoundsNamingTheField) {
  struct Case {
    std::string value;
    int64_t min;
    int64_t max;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", 1, 64, "company_name: required"},
      {"abcde", 1, 4,
       "company_name: must be 1..4 characters, got 5: \"abcde\""},
      {"中文名称五", 1, 4,
       "company_name: must be 1..4 characters, got 5: \"中文名称五\""},
      {"a", 2, 4, "company_name: must be 2..4 characters, got 1: \"a\""},
      {"abc", 6, 6, "company_name: must be 6 characters, got 3: \"abc\""},
      {"", 6, 6, "company_name: required"},
      {std::string(10 * 1024, 'x'), 1, 64,
       "company_name: must be 1..64 characters, got 10240: \"" +
           std::string(64, 'x') + "...\" (10240 bytes)"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(CheckLength("company_name", c.value, c.min, c.max),
                StatusIs(absl::StatusCode::kInvalidArgument, c.message))
        << c.value.substr(0, 40) << " " << c.min << ".." << c.max;
  }
}

TEST(CheckRange, AcceptsValuesWithinBounds) {
  struct Case {
    int64_t value;
    int64_t min;
    int64_t max;
  };
  const std::vector<Case> cases = {
      {1, 1, 1024},       {512, 1, 1024},     {1024, 1, 1024}, {0, 0, 0},
      {kMin, kMin, kMax}, {kMax, kMin, kMax}, {-5, -10, -1},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(CheckRange("gpu_count", c.value, c.min, c.max), IsOk())
        << c.value << " in " << c.min << ".." << c.max;
  }
}

TEST(CheckRange, RejectsValuesOutsideBoundsNamingFieldAndValue) {
  struct Case {
    int64_t value;
    int64_t min;
    int64_t max;
    std::string message;
  };
  const std::vector<Case> cases = {
      {0, 1, 1024, "gpu_count: must be 1..1024, got 0"},
      {1025, 1, 1024, "gpu_count: must be 1..1024, got 1025"},
      {-1, 1, 1024, "gpu_count: must be 1..1024, got -1"},
      {kMin, 1, 1024, "gpu_count: must be 1..1024, got -9223372036854775808"},
      {kMax, 1, 1024, "gpu_count: must be 1..1024, got 9223372036854775807"},
      {0, -10, -1, "gpu_count: must be -10..-1, got 0"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(CheckRange("gpu_count", c.value, c.min, c.max),
                StatusIs(absl::StatusCode::kInvalidArgument, c.message))
        << c.value << " in " << c.min << ".." << c.max;
  }
}

TEST(CheckRequestId, AcceptsIdempotencyKeys) {
  const std::vector<std::string> cases = {
      "a",
      "0",
      "req-2025-01-01:abc_DEF.1",
      "550e8400-e29b-41d4-a716-446655440000",
      "A.B_C:D-E",
      std::string(128, 'k'),
  };
  for (const std::string& id : cases) {
    EXPECT_THAT(CheckRequestId(id), IsOk()) << id;
  }
}

TEST(CheckRequestId, RejectsBadKeysNamingTheFieldAndValue) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "request_id: required"},
      {std::string(129, 'k'), "request_id: must be 1..128 characters, got 129"},
      {std::string(10 * 1024, 'k'),
       "request_id: must be 1..128 characters, got 10240"},
      {"has space",
       "request_id: \"has space\" may contain only A-Z a-z 0-9 . _ : -"},
      {"a/b", "request_id: \"a/b\" may contain only"},
      {"a\nb", "request_id: \"a\nb\" may contain only"},
      {"请求1", "request_id: \"请求1\" may contain only"},
      {"id!", "request_id: \"id!\" may contain only"},
      {"a+b", "request_id: \"a+b\" may contain only"},
      {std::string(100, 'x') + "!", "request_id: \"" + std::string(64, 'x') +
                                        "...\" (101 bytes) may contain only"},
  };
  for (const auto& [id, message] : cases) {
    EXPECT_THAT(CheckRequestId(id), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr(message)))
        << id.substr(0, 40);
  }
}

TEST(CheckIdRef, AcceptsIds) {
  const std::vector<std::string> cases = {
      "v",
      "voucher-123",
      "550e8400-e29b-41d4-a716-446655440000",
      std::string(128, 'v'),
  };
  for (const std::string& id : cases) {
    EXPECT_THAT(CheckIdRef("voucher_id", id), IsOk()) << id;
  }
}

TEST(CheckIdRef, RejectsEmptyAndLongIdsNamingFieldAndValue) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "voucher_id: required"},
      {std::string(129, 'v'),
       "voucher_id: \"" + std::string(64, 'v') +
           "...\" (129 bytes) is not a valid id (1..128 characters)"},
      {std::string(10 * 1024, 'v'),
       "voucher_id: \"" + std::string(64, 'v') +
           "...\" (10240 bytes) is not a valid id (1..128 characters)"},
  };
  for (const auto& [id, message] : cases) {
    EXPECT_THAT(CheckIdRef("voucher_id", id),
                StatusIs(absl::StatusCode::kInvalidArgument, message))
        << id.substr(0, 40);
  }
}

TEST(CheckIdRef, LongValueIsNotEchoedInFull) {
  const std::string id(10 * 1024, 'v');
  EXPECT_THAT(CheckIdRef("voucher_id", id),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("voucher_id"),
                             Not(HasSubstr(std::string(65, 'v'))))));
}

TEST(TruncateUtf8, NeverCutsASequence) {
  const std::vector<std::tuple<std::string, size_t, std::string>> cases = {
      {"abc", 5, "abc"},    {"abc", 2, "ab"},  {"中文", 3, "中"},
      {"中文", 4, "中"},    {"中文", 5, "中"}, {"中文", 6, "中文"},
      {"a中", 2, "a"},      {"", 0, ""},       {"中", 0, ""},
  };
  for (const auto& [in, max, want] : cases) {
    EXPECT_EQ(TruncateUtf8(in, max), want) << in << " " << max;
  }
}

TEST(Quoted, CutsLongValuesAtACharacterBoundary) {
  // 21 characters of 3 bytes: byte 64 falls inside the 22nd character.
  std::string value;
  for (int i = 0; i < 30; ++i) value += "算";
  const std::string quoted = Quoted(value);
  EXPECT_EQ(Utf8Length(quoted), static_cast<int64_t>(quoted.size()) -
                                    2 * 21);  // every byte well formed
  EXPECT_THAT(quoted, HasSubstr("...\" (90 bytes)"));
}

}  // namespace
}  // namespace cv
