// The fixture of the state-machine tests: the standard world of
// tests/testing/world.h built through a Driver, with shortcuts to the views
// and a check that a rejected command changed nothing.
#ifndef COMPUTEVOUCHER_TESTS_SCHEDULER_CORE_STATE_MACHINE_FIXTURE_H_
#define COMPUTEVOUCHER_TESTS_SCHEDULER_CORE_STATE_MACHINE_FIXTURE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {

inline constexpr int64_t kYuan = 100;
inline constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
inline constexpr absl::StatusCode kPrecondition =
    absl::StatusCode::kFailedPrecondition;

class StateMachineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(driver_.BuildWorld(), ::computevoucher::testing::IsOk());
  }

  int64_t Balance(const std::string& account) const {
    return state_.ledger().Balance(account);
  }
  pb::Voucher Voucher(const std::string& id) const {
    return *state_.VoucherView(id);
  }
  pb::Allocation Allocation(const std::string& id) const {
    return *state_.AllocationView(id);
  }

  // Expects `command` to fail with `code` and a message containing `text`,
  // and the whole state to be exactly as before.
  void ExpectRejected(pb::Command command, absl::StatusCode code,
                      const std::string& text) {
    const std::string before = state_.Digest();
    EXPECT_THAT(driver_.Apply(std::move(command)),
                ::computevoucher::testing::StatusIs(code, ::testing::HasSubstr(text)));
    EXPECT_EQ(state_.Digest(), before)
        << "a rejected command changed the state";
  }

  pb::Command CreateProgramCommand(const std::string& request_id) {
    pb::Command c =
        ::computevoucher::testing::NewCommand(::computevoucher::testing::AdminPrincipal(), request_id);
    pb::CreateProgramRequest* r = c.mutable_create_program();
    r->set_name("Test program");
    r->set_issuer("Test office");
    r->set_budget_fen(1000 * kYuan);
    *r->mutable_valid_from() = ToProto(driver_.now());
    *r->mutable_valid_until() = ToProto(driver_.now() + absl::Hours(24 * 30));
    r->set_domestic_ratio_bp(3000);
    r->set_other_ratio_bp(2000);
    r->set_sme_ratio_bp(5000);
    return c;
  }

  StateMachine state_;
  ::computevoucher::testing::Driver driver_{state_};
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_TESTS_SCHEDULER_CORE_STATE_MACHINE_FIXTURE_H_
