#include "common/credit_code.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";

// Codes of real registered companies.
const std::vector<std::string>& ValidCodes() {
  static const auto* const codes = new std::vector<std::string>{
      "91330100716105852F", "9144030071526726XG", "914403001922038216",
      "91350100M000100Y43", "91110108551385082Q",
  };
  return *codes;
}

TEST(NormalizeCreditCode, AcceptsRealCodes) {
  for (const std::string& code : ValidCodes()) {
    const absl::StatusOr<std::string> got =
        NormalizeCreditCode("seller_credit_code", code);
    ASSERT_THAT(got, IsOk()) << code;
    EXPECT_EQ(*got, code) << code;
  }
}

TEST(NormalizeCreditCode, UpperCasesAndTrims) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"91330100716105852f", "91330100716105852F"},
      {"9144030071526726xg", "9144030071526726XG"},
      {"91350100m000100y43", "91350100M000100Y43"},
      {"9144030071526726xG", "9144030071526726XG"},
      {"  91110108551385082Q", "91110108551385082Q"},
      {"91110108551385082Q  ", "91110108551385082Q"},
      {"\t 91110108551385082q \n", "91110108551385082Q"},
  };
  for (const auto& [input, want] : cases) {
    const absl::StatusOr<std::string> got =
        NormalizeCreditCode("seller_credit_code", input);
    ASSERT_THAT(got, IsOk()) << input;
    EXPECT_EQ(*got, want) << input;
  }
}

TEST(NormalizeCreditCode, WrongCheckCharacterNamesTheExpectedOne) {
  for (const std::string& code : ValidCodes()) {
    const char check = code.back();
    for (const char c : std::string(kAlphabet)) {
      if (c == check) continue;
      std::string bad = code;
      bad.back() = c;
      EXPECT_THAT(
          NormalizeCreditCode("seller_credit_code", bad),
          StatusIs(absl::StatusCode::kInvalidArgument,
                   AllOf(HasSubstr("seller_credit_code"), HasSubstr(bad),
                         HasSubstr(std::string("check character must be '") +
                                   check + "', got '" + c + "'"))))
          << bad;
    }
  }
}

TEST(NormalizeCreditCode, DetectsEverySingleCharacterChange) {
  for (const std::string& code : ValidCodes()) {
    for (size_t i = 0; i + 1 < code.size(); ++i) {
      for (const char c : std::string(kAlphabet)) {
        if (c == code[i]) continue;
        std::string bad = code;
        bad[i] = c;
        EXPECT_THAT(NormalizeCreditCode("code", bad),
                    StatusIs(absl::StatusCode::kInvalidArgument))
            << bad;
      }
    }
  }
}

TEST(NormalizeCreditCode, RejectsMalformedCodesNamingTheField) {
  struct Case {
    std::string code;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"", "must be 18 characters, got 0"},
      {"   ", "must be 18 characters, got 0"},
      {"91330100716105852", "must be 18 characters, got 17"},
      {"91330100716105852F0", "must be 18 characters, got 19"},
      {"9133010071610 5852F", "must be 18 characters, got 19"},
      {std::string(10 * 1024, '9'), "must be 18 characters, got 10240"},
      // Letters outside the alphabet, in upper and lower case.
      {"I1330100716105852F", "character 1 'I' is not one of"},
      {"9O330100716105852F", "character 2 'O' is not one of"},
      {"913301007S6105852F", "character 10 'S' is not one of"},
      {"91330100716105852V", "character 18 'V' is not one of"},
      {"9133010071610585ZF", "character 17 'Z' is not one of"},
      {"913301007i6105852F", "character 10 'I' is not one of"},
      {"913301007o6105852F", "character 10 'O' is not one of"},
      {"913301007-6105852F", "character 10 '-' is not one of"},
      // Positions 3-8 are the administrative division code.
      {"91A30100716105852F", "character 3 is 'A'"},
      {"913301M0716105852F", "character 7 is 'M'"},
      {"9133010Y716105852F", "character 8 is 'Y'"},
      {"91330b00716105852F", "character 6 is 'B'"},
  };
  for (const Case& c : cases) {
    const std::string shown = c.code.substr(0, 40);
    EXPECT_THAT(
        NormalizeCreditCode("buyer.credit_code", c.code),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr("buyer.credit_code: "), HasSubstr(c.why))))
        << shown;
  }
}

TEST(NormalizeCreditCode, LetterInDivisionCodeNamesTheRule) {
  EXPECT_THAT(
      NormalizeCreditCode("credit_code", "91A30100716105852F"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("characters 3-8 are the administrative division code "
                         "and must be digits")));
}

TEST(NormalizeCreditCode, ForbiddenLettersAreRejectedAnywhere) {
  for (const char forbidden : std::string("IOSVZiosvz")) {
    for (size_t i = 0; i < 18; ++i) {
      std::string bad = "91330100716105852F";
      bad[i] = forbidden;
      const std::string upper(1, absl::ascii_toupper(forbidden));
      EXPECT_THAT(NormalizeCreditCode("credit_code", bad),
                  StatusIs(absl::StatusCode::kInvalidArgument,
                           HasSubstr("'" + upper + "' is not one of")))
          << bad;
    }
  }
}

}  // namespace
}  // namespace computevoucher
