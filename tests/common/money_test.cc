#include "common/money.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

struct ArithCase {
  int64_t a;
  int64_t b;
  int64_t want;
};

struct OverflowCase {
  int64_t a;
  int64_t b;
  std::string message;
};

TEST(CheckedAdd, ReturnsSumWhenItFits) {
  const std::vector<ArithCase> cases = {
      {0, 0, 0},
      {1, 2, 3},
      {-5, 3, -2},
      {kMax, 0, kMax},
      {kMax - 1, 1, kMax},
      {kMin, 0, kMin},
      {kMin + 1, -1, kMin},
      {kMax, kMin, -1},
  };
  for (const ArithCase& c : cases) {
    const absl::StatusOr<int64_t> got = CheckedAdd(c.a, c.b);
    ASSERT_THAT(got, IsOk()) << c.a << " + " << c.b;
    EXPECT_EQ(*got, c.want) << c.a << " + " << c.b;
  }
}

TEST(CheckedAdd, OverflowIsOutOfRange) {
  const std::vector<OverflowCase> cases = {
      {kMax, 1, "overflow: 9223372036854775807 + 1"},
      {1, kMax, "overflow: 1 + 9223372036854775807"},
      {kMax, kMax, "overflow: 9223372036854775807 + 9223372036854775807"},
      {kMin, -1, "overflow: -9223372036854775808 + -1"},
      {kMin, kMin, "overflow: -9223372036854775808 + -9223372036854775808"},
  };
  for (const OverflowCase& c : cases) {
    EXPECT_THAT(CheckedAdd(c.a, c.b),
                StatusIs(absl::StatusCode::kOutOfRange, HasSubstr(c.message)))
        << c.a << " + " << c.b;
  }
}

TEST(CheckedSub, ReturnsDifferenceWhenItFits) {
  const std::vector<ArithCase> cases = {
      {0, 0, 0},        {5, 3, 2},        {3, 5, -2},
      {kMax, 0, kMax},  {kMin, 0, kMin},  {kMin + 1, 1, kMin},
      {-1, kMax, kMin}, {0, kMax, -kMax}, {kMin, kMin, 0},
  };
  for (const ArithCase& c : cases) {
    const absl::StatusOr<int64_t> got = CheckedSub(c.a, c.b);
    ASSERT_THAT(got, IsOk()) << c.a << " - " << c.b;
    EXPECT_EQ(*got, c.want) << c.a << " - " << c.b;
  }
}

TEST(CheckedSub, OverflowIsOutOfRange) {
  const std::vector<OverflowCase> cases = {
      {kMin, 1, "overflow: -9223372036854775808 - 1"},
      {0, kMin, "overflow: 0 - -9223372036854775808"},
      {kMax, -1, "overflow: 9223372036854775807 - -1"},
      {kMax, kMin, "overflow: 9223372036854775807 - -9223372036854775808"},
      {kMin, kMax, "overflow: -9223372036854775808 - 9223372036854775807"},
  };
  for (const OverflowCase& c : cases) {
    EXPECT_THAT(CheckedSub(c.a, c.b),
                StatusIs(absl::StatusCode::kOutOfRange, HasSubstr(c.message)))
        << c.a << " - " << c.b;
  }
}

TEST(CheckedMul, ReturnsProductWhenItFits) {
  const std::vector<ArithCase> cases = {
      {0, 0, 0},           {6, 7, 42},
      {-6, 7, -42},        {-6, -7, 42},
      {kMax, 1, kMax},     {kMax, -1, -kMax},
      {kMin, 1, kMin},     {kMin, 0, 0},
      {kMin / 2, 2, kMin}, {4611686018427387903, 2, kMax - 1},
  };
  for (const ArithCase& c : cases) {
    const absl::StatusOr<int64_t> got = CheckedMul(c.a, c.b);
    ASSERT_THAT(got, IsOk()) << c.a << " * " << c.b;
    EXPECT_EQ(*got, c.want) << c.a << " * " << c.b;
  }
}

TEST(CheckedMul, OverflowIsOutOfRange) {
  const std::vector<OverflowCase> cases = {
      {kMax, 2, "overflow: 9223372036854775807 * 2"},
      {kMin, -1, "overflow: -9223372036854775808 * -1"},
      {-1, kMin, "overflow: -1 * -9223372036854775808"},
      {kMin, 2, "overflow: -9223372036854775808 * 2"},
      {4611686018427387904, 2, "overflow: 4611686018427387904 * 2"},
      {3037000500, 3037000500, "overflow: 3037000500 * 3037000500"},
  };
  for (const OverflowCase& c : cases) {
    EXPECT_THAT(CheckedMul(c.a, c.b),
                StatusIs(absl::StatusCode::kOutOfRange, HasSubstr(c.message)))
        << c.a << " * " << c.b;
  }
}

TEST(FormatFen, FormatsYuanWithTwoDecimals) {
  const std::vector<std::pair<int64_t, std::string>> cases = {
      {0, "0.00 CNY"},
      {5, "0.05 CNY"},
      {-5, "-0.05 CNY"},
      {50, "0.50 CNY"},
      {100, "1.00 CNY"},
      {-100, "-1.00 CNY"},
      {123456, "1234.56 CNY"},
      {-123456, "-1234.56 CNY"},
      {800000000, "8000000.00 CNY"},
      {kMax, "92233720368547758.07 CNY"},
      {kMin, "-92233720368547758.08 CNY"},
      {kMin + 1, "-92233720368547758.07 CNY"},
  };
  for (const auto& [fen, want] : cases) {
    EXPECT_EQ(FormatFen(fen), want) << fen;
  }
}

TEST(ParseMoney, AcceptsAmountsAsPeopleTypeThem) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"1234.56", 123456},
      {"1234.5", 123450},
      {"1234", 123400},
      {"0", 0},
      {"0.05", 5},
      {"007", 700},
      {"¥8,000,000", 800000000},
      {"￥8,000,000", 800000000},
      {"8,000,000.00 CNY", 800000000},
      {"8000000CNY", 800000000},
      {"1,234.56", 123456},
      {"999,999", 99999900},
      {"8M", 800000000},
      {"8m", 800000000},
      {"1.5M", 150000000},
      // 1.2345678 million yuan is 1,234,567.80 yuan: still whole fen.
      {"1.2345678M", 123456780},
      {"1.23456789M", 123456789},
      {"300k", 30000000},
      {"300K", 30000000},
      {"1.5k", 150000},
      {"0.00001k", 1},
      {"50万", 50000000},
      {"1.5万", 1500000},
      {"¥50万", 50000000},
      {"8M CNY", 800000000},
      {"1.230", 123},
      {"-12.30", -1230},
      {"-0.05", -5},
      {"-¥8,000,000", -800000000},
      {"-300k", -30000000},
      {"  1234.56  ", 123456},
      {"\t1234.56\n", 123456},
      {" ¥8,000,000.00 CNY ", 800000000},
      {"92233720368547758.07", kMax},
      {"-92233720368547758.07", -kMax},
  };
  for (const auto& [text, want] : cases) {
    const absl::StatusOr<int64_t> got = ParseMoney(text);
    ASSERT_THAT(got, IsOk()) << text;
    EXPECT_EQ(*got, want) << text;
  }
}

TEST(ParseMoney, RejectsMalformedAmounts) {
  struct Case {
    std::string text;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"   ", "empty"},
      {"abc", "unexpected character 'a'"},
      {"12a", "unexpected character 'a'"},
      {"+5", "unexpected character '+'"},
      {"1e5", "unexpected character 'e'"},
      {"--5", "unexpected character '-'"},
      {"¥-5", "unexpected character '-'"},
      {"1.234", "more precision than one fen"},
      {"0.001", "more precision than one fen"},
      {"1.234567891M", "more precision than one fen"},
      {"0.000000001M", "more precision than one fen"},
      {"0.000001k", "more precision than one fen"},
      {"1.0000001万", "more precision than one fen"},
      {"1,23", "commas must separate groups of three digits"},
      {"12,3456", "commas must separate groups of three digits"},
      {"1234,567", "commas must separate groups of three digits"},
      {",123", "commas must separate groups of three digits"},
      {"1,,234", "commas must separate groups of three digits"},
      {"1,234,", "commas must separate groups of three digits"},
      {"1,00,000", "commas must separate groups of three digits"},
      {"1..2", "unexpected character '.'"},
      {"1.2.3", "unexpected character '.'"},
      {"1.2,34", "unexpected character ','"},
      {".5", "no digits before '.'"},
      {"5.", "no digits after '.'"},
      {"M", "no digits"},
      {"k", "no digits"},
      {"万", "no digits"},
      {"¥", "no digits"},
      {"CNY", "no digits"},
      {"-", "no digits"},
  };
  for (const Case& c : cases) {
    const absl::StatusOr<int64_t> got = ParseMoney(c.text);
    EXPECT_THAT(got,
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.why)))
        << c.text;
    // The message quotes the input as given.
    EXPECT_THAT(got, StatusIs(absl::StatusCode::kInvalidArgument,
                              HasSubstr("amount \"" + c.text + "\"")))
        << c.text;
  }
}

TEST(ParseMoney, AmountsBeyondInt64FenAreOutOfRange) {
  const std::vector<std::string> cases = {
      "99999999999999999999",  "92233720368547758.08",
      "-92233720368547758.09", "92,233,720,368,547,758.08",
      "100000000000M",         "1000000000000000万",
      "-99999999999999999999",
  };
  for (const std::string& text : cases) {
    EXPECT_THAT(ParseMoney(text),
                StatusIs(absl::StatusCode::kOutOfRange,
                         HasSubstr("amount \"" + text + "\": too large")))
        << text;
  }
}

TEST(ParseMoney, ParsesWhatFormatFenWrites) {
  const std::vector<int64_t> cases = {
      0, 5, -5, 123456, -123456, 800000000, kMax, kMin + 1,
  };
  for (const int64_t fen : cases) {
    const std::string text = FormatFen(fen);
    const absl::StatusOr<int64_t> got = ParseMoney(text);
    ASSERT_THAT(got, IsOk()) << text;
    EXPECT_EQ(*got, fen) << text;
  }
}

// INT64_MIN fen is within int64 fen, so it is not OutOfRange; FormatFen
// writes it as "-92233720368547758.08 CNY".
TEST(ParseMoney, ParsesInt64MinFen) {
  const std::vector<std::string> cases = {
      "-92233720368547758.08",
      "-92233720368547758.08 CNY",
      "-92,233,720,368,547,758.08",
  };
  for (const std::string& text : cases) {
    const absl::StatusOr<int64_t> got = ParseMoney(text);
    ASSERT_THAT(got, IsOk()) << text;
    EXPECT_EQ(*got, kMin) << text;
  }
}

}  // namespace
}  // namespace computevoucher
