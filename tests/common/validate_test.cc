#include "common/validate.h"

#include <cstdint>
#include <limits>
#include <tuple>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
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

TEST(Quoted, NeverCutsInsideACharacter) {
  const struct {
    std::string value;
    std::string want;
  } cases[] = {
      {"短", "\"短\""},
      // 21 characters of 3 bytes fit in 64 bytes; the 22nd is not split.
      {std::string(30 * 3, 'x'),
       "\"" + std::string(64, 'x') + "...\" (90 bytes)"},
      {[] {
         std::string s;
         for (int i = 0; i < 30; ++i) s += "算";
         return s;
       }(),
       [] {
         std::string s = "\"";
         for (int i = 0; i < 21; ++i) s += "算";
         return s + "...\" (90 bytes)";
       }()},
      // "a" then 4-byte characters: the cut falls after 15 of them.
      {[] {
         std::string s = "a";
         for (int i = 0; i < 20; ++i) s += "😀";
         return s;
       }(),
       [] {
         std::string s = "\"a";
         for (int i = 0; i < 15; ++i) s += "😀";
         return s + "...\" (81 bytes)";
       }()},
      // Stray continuation bytes are cut where they fall.
      {std::string(70, '\x80'),
       "\"" + std::string(64, '\x80') + "...\" (70 bytes)"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Quoted(c.value), c.want) << ::testing::PrintToString(c.value);
  }
}

TEST(CheckText, AcceptsPrintableTextWithinBounds) {
  const struct {
    std::string value;
    int64_t max;
    TextLines lines;
  } cases[] = {
      {"", 8, TextLines::kOne},
      {"slurm+simulated", 64, TextLines::kOne},
      {"slurm job 42 CANCELLED by root", 64, TextLines::kOne},
      {"ssh login.hz-a\nsrun --jobid=42 --overlap --pty bash\n", 64,
       TextLines::kMany},
      {"算力券 😀 é", 8, TextLines::kOne},
      // U+00A0 and U+2028 are not control characters.
      {"a\u00A0b\u2028c", 8, TextLines::kOne},
      // The largest code point and the last before the surrogates.
      {"\U0010FFFF\uD7FF", 2, TextLines::kOne},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(CheckText("access", c.value, 0, c.max, c.lines), IsOk())
        << ::testing::PrintToString(c.value);
  }
}

TEST(CheckText, RefusesBadTextNamingTheFieldWithoutEchoingIt) {
  const auto malformed = [](int byte) {
    return absl::StrCat(
        "access: must be valid UTF-8, got a malformed sequence at byte "
        "offset ",
        byte);
  };
  const auto control = [](TextLines lines, const char* code_point) {
    return absl::StrCat("access: must be ",
                        lines == TextLines::kOne
                            ? "one line of printable text"
                            : "printable text (line feeds allowed)",
                        ", got ", code_point, " at character offset 1");
  };
  const struct {
    std::string value;
    TextLines lines;
    std::string message;
  } cases[] = {
      {"abcdefghi", TextLines::kOne,
       "access: must be 0..8 characters, got 9: \"abcdefghi\""},
      {"a\nb", TextLines::kOne, control(TextLines::kOne, "U+000A")},
      {"a\tb", TextLines::kMany, control(TextLines::kMany, "U+0009")},
      {"算\x1b[31m", TextLines::kMany, control(TextLines::kMany, "U+001B")},
      {"a\x7F", TextLines::kOne, control(TextLines::kOne, "U+007F")},
      {"a\u0085", TextLines::kOne, control(TextLines::kOne, "U+0085")},
      {std::string("a\0b", 3), TextLines::kOne,
       control(TextLines::kOne, "U+0000")},
      // Malformed: a stray continuation byte, a truncated sequence, an
      // overlong form, a surrogate, past U+10FFFF, a byte never used.
      {"ab\x80", TextLines::kOne, malformed(2)},
      {"\xE7\xAE", TextLines::kOne, malformed(0)},
      {"a\xC0\xAF", TextLines::kOne, malformed(1)},
      {"\xED\xA0\x80", TextLines::kOne, malformed(0)},
      {"\xF4\x90\x80\x80", TextLines::kOne, malformed(0)},
      {"\xFF", TextLines::kOne, malformed(0)},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(CheckText("access", c.value, 0, 8, c.lines),
                StatusIs(absl::StatusCode::kInvalidArgument, c.message))
        << ::testing::PrintToString(c.value);
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

TEST(CleanText, MakesAnyInputPassCheckText) {
  const std::vector<std::tuple<std::string, int64_t, TextLines, std::string>>
      cases = {
          {"slurm job 42 RUNNING", 100, TextLines::kOne, "slurm job 42 RUNNING"},
          {"a\nb", 100, TextLines::kMany, "a\nb"},
          {"a\nb", 100, TextLines::kOne, "a?b"},
          {"step \x1b[31mred\x7f", 100, TextLines::kOne, "step ?[31mred?"},
          {"bad \xff\xfe utf8", 100, TextLines::kOne, "bad ?? utf8"},
          {"算力券算力券", 4, TextLines::kOne, "算力券算"},
          {"\xe7\xae", 10, TextLines::kOne, "??"},
      };
  for (const auto& [in, max, lines, want] : cases) {
    const std::string out = CleanText(in, max, lines);
    EXPECT_EQ(out, want) << in;
    EXPECT_THAT(CheckText("f", out, 0, max, lines), IsOk()) << in;
  }
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

}  // namespace
}  // namespace computevoucher
