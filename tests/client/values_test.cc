// What people type as argument values (client/internal/values.h), table by
// table: each accepted form with its value, each refused one with the part
// of the message that says why.
#include "client/internal/values.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "computevoucher/v1/types.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace computevoucher::client {
namespace {

namespace pb = ::computevoucher::v1;
using ::testing::HasSubstr;

// An input and what it gives: `want`, or (nullopt) a refusal whose message
// names the argument and contains `error`.
template <typename T>
struct Case {
  std::string text;
  std::optional<T> want;
  std::string error = "";
};

template <typename T, typename Parse>
void Check(const std::vector<Case<T>>& cases, const std::string& name,
           Parse parse) {
  for (const Case<T>& c : cases) {
    SCOPED_TRACE(c.text);
    const auto got = parse(c.text);
    if (c.want.has_value()) {
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, *c.want);
    } else {
      ASSERT_FALSE(got.ok()) << "accepted";
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(got.status().message(), HasSubstr(name));
      EXPECT_THAT(got.status().message(), HasSubstr(c.error));
    }
  }
}

TEST(Values, Amounts) {
  Check<int64_t>({{"100", 100'00},
                  {"1,000.50", 1'000'50},
                  {"¥12.3", 12'30},
                  {"0", std::nullopt, "must be"},
                  {"-5", std::nullopt},
                  {"1.234", std::nullopt},
                  {"ten", std::nullopt}},
                 "--amount", [](const std::string& t) {
                   return ParseAmountArg("--amount", t);
                 });
}

TEST(Values, Dates) {
  Check<absl::CivilDay>({{"2027-12-31", absl::CivilDay(2027, 12, 31)},
                         {"2028-02-29", absl::CivilDay(2028, 2, 29)},
                         {"2027-02-29", std::nullopt},
                         {"27-12-31", std::nullopt},
                         {"2027/12/31", std::nullopt},
                         {"", std::nullopt}},
                        "--until", [](const std::string& t) {
                          return ParseDateArg("--until", t);
                        });
}

TEST(Values, Counts) {
  Check<int64_t>({{"8", 8},
                  {"1024", 1024},
                  {"0", std::nullopt, "1..1024"},
                  {"1025", std::nullopt, "1..1024"},
                  {"1e3", std::nullopt},
                  {" 8", std::nullopt}},
                 "--gpus", [](const std::string& t) {
                   return ParseCountArg("--gpus", t, 1, 1024);
                 });
}

TEST(Values, HoursBecomeWholeSeconds) {
  Check<int64_t>({{"2", 7200},
                  {"1.5", 5400},
                  {"0.25", 900},
                  {"8760", 31'536'000},
                  {"0.01", std::nullopt},
                  {"8761", std::nullopt},
                  {"-1", std::nullopt},
                  {"two", std::nullopt}},
                 "--hours", [](const std::string& t) {
                   return ParseHoursArg("--hours", t);
                 });
}

TEST(Values, PercentagesBecomeBasisPoints) {
  Check<int32_t>({{"30", 3000},
                  {"30%", 3000},
                  {"12.5%", 1250},
                  {"0", 0},
                  {"100", 10'000},
                  {"100.01", std::nullopt},
                  {"12.345", std::nullopt},
                  {"%", std::nullopt}},
                 "--ratio", [](const std::string& t) {
                   return ParsePercentArg("--ratio", t);
                 });
}

TEST(Values, Ids) {
  Check<std::string>({{"AL-00000001", "AL-00000001"},
                      {"CV-2026-000001", "CV-2026-000001"},
                      {"", std::nullopt},
                      {"a b", std::nullopt},
                      {std::string(129, 'A'), std::nullopt}},
                     "ID", [](const std::string& t) {
                       return ParseIdArg("ID", t);
                     });
}

TEST(Values, Durations) {
  Check<absl::Duration>({{"2s", absl::Seconds(2)},
                         {"1m", absl::Minutes(1)},
                         {"1500ms", absl::Milliseconds(1500)},
                         {"500ms", std::nullopt},
                         {"soon", std::nullopt}},
                        "--leader-wait", [](const std::string& t) {
                          return ParseDurationArg("--leader-wait", t,
                                                  absl::Seconds(1));
                        });
}

TEST(Values, Booleans) {
  Check<bool>({{"yes", true},
               {"TRUE", true},
               {"1", true},
               {"No", false},
               {"false", false},
               {"0", false},
               {"maybe", std::nullopt}},
              "--sme", [](const std::string& t) {
                return ParseBoolArg("--sme", t);
              });
}

TEST(Values, EnumWordsAreLowerCaseWithDashes) {
  EXPECT_EQ(EnumWord(pb::VOUCHER_STATE_ACTIVE), "active");
  EXPECT_EQ(EnumWord(pb::END_REASON_RELEASED), "released");
  EXPECT_EQ(EnumWord(pb::HARDWARE_CLASS_DOMESTIC), "domestic");
  Check<pb::VoucherState>(
      {{"suspended", pb::VOUCHER_STATE_SUSPENDED},
       {"active", pb::VOUCHER_STATE_ACTIVE},
       {"unspecified", std::nullopt},
       {"VOUCHER_STATE_ACTIVE", std::nullopt},
       {"gone", std::nullopt}},
      "--state", [](const std::string& t) {
        return ParseEnumArg<pb::VoucherState>("--state", t);
      });
}

}  // namespace
}  // namespace computevoucher::client
