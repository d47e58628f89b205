// Matchers for absl::Status and absl::StatusOr in tests:
//   EXPECT_THAT(s, IsOk());
//   EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
//   EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
//                           testing::HasSubstr("gpu_count")));
//   ASSERT_OK_AND_ASSIGN(auto value, FunctionReturningStatusOr());
#ifndef COMPUTEVOUCHER_TESTS_TESTING_STATUS_MATCHERS_H_
#define COMPUTEVOUCHER_TESTS_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace computevoucher::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code, "has code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + absl::StatusCodeToString(code) +
               " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::Matches(message_matcher)(std::string(s.message()));
}

}  // namespace computevoucher::testing

#define CV_TEST_CONCAT_INNER_(a, b) a##b
#define CV_TEST_CONCAT_(a, b) CV_TEST_CONCAT_INNER_(a, b)

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                      \
  CV_ASSERT_OK_AND_ASSIGN_IMPL_(CV_TEST_CONCAT_(cv_test_statusor_, __LINE__), \
                                lhs, rexpr)

#define CV_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  ASSERT_TRUE(statusor.ok()) << statusor.status();          \
  lhs = std::move(statusor).value()

#endif  // COMPUTEVOUCHER_TESTS_TESTING_STATUS_MATCHERS_H_
