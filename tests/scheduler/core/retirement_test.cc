// Retirement (issue 15, item 2): allocations ended long enough ago leave
// the state and the ledger, their final view handed to the store, their
// money kept in running sums.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "tests/scheduler/core/state_machine_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::NewCommand;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kGrace = 300;
constexpr int64_t kRetain = 30 * 24 * 3600;

class RetirementTest : public StateMachineTest {
 protected:
  void SetUp() override {
    StateMachineTest::SetUp();
    ASSERT_OK_AND_ASSIGN(const pb::Voucher v,
                         driver_.Issue("P-000001", "E-000001", 10'000 * kYuan));
    voucher_ = v.voucher_id();
  }

  // An allocation on sz-b that ran an hour with one usage record, was
  // extended once and released; its hold released after the grace period.
  pb::Allocation RunAndEnd() {
    absl::StatusOr<pb::Allocation> a =
        driver_.Allocate("E-000001", "H100", 2, 3600);
    EXPECT_THAT(a, IsOk());
    pb::Command extend =
        NewCommand(::computevoucher::testing::EnterprisePrincipal("E-000001"),
                   "extend-" + a->allocation_id());
    extend.mutable_extend_allocation()->set_allocation_id(a->allocation_id());
    extend.mutable_extend_allocation()->set_extra_duration_s(600);
    EXPECT_THAT(driver_.Apply(extend), IsOk());
    const absl::Time start = driver_.now();
    driver_.Advance(absl::Minutes(30));
    EXPECT_THAT(driver_.Report("sz-b", a->allocation_id(), 1, start,
                               driver_.now(), 2 * 30 * 60 * 1000),
                IsOk());
    EXPECT_THAT(driver_.Release("E-000001", a->allocation_id()), IsOk());
    driver_.Advance(absl::Seconds(kGrace));
    EXPECT_THAT(driver_.Tick(kGrace, kRetain), IsOk());
    return *state_.AllocationView(a->allocation_id());
  }

  // Every ledger key, balance and charge mark that names `id`.
  std::vector<std::string> LedgerMentions(const std::string& id) const {
    std::vector<std::string> out;
    for (const std::string& key : state_.ledger().keys())
      if (absl::StrContains(key, id)) out.push_back(key);
    for (const auto& [account, balance] : state_.ledger().balances())
      if (absl::StrContains(account, id)) out.push_back(account);
    for (const auto& [allocation, mark] : state_.ledger().charge_marks())
      if (allocation == id) out.push_back("mark " + allocation);
    return out;
  }

  std::string voucher_;
};

TEST_F(RetirementTest, AnEndedAllocationIsRetiredOnceItsTimeHasCome) {
  const pb::Allocation ended = RunAndEnd();
  const std::string id = ended.allocation_id();
  ASSERT_EQ(ended.state(), pb::ALLOCATION_STATE_ENDED);
  ASSERT_EQ(ended.held_fen(), 0);
  ASSERT_GT(ended.charged_fen(), 0);
  EXPECT_THAT(LedgerMentions(id), ::testing::Not(IsEmpty()));
  EXPECT_THAT(state_.TakeRetired(), IsEmpty());

  // A second before its time, nothing; then it goes.
  driver_.Advance(absl::Seconds(kRetain - kGrace - 1));
  ASSERT_OK_AND_ASSIGN(Outcome early, driver_.Tick(kGrace, kRetain));
  EXPECT_FALSE(early.changed);
  EXPECT_TRUE(state_.allocations().contains(id));
  driver_.Advance(absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(Outcome due, driver_.Tick(kGrace, kRetain));
  EXPECT_TRUE(due.changed) << "a retiring tick must be logged";

  EXPECT_FALSE(state_.allocations().contains(id));
  EXPECT_THAT(state_.AllocationView(id),
              ::computevoucher::testing::StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(LedgerMentions(id), IsEmpty());
  const std::vector<pb::Allocation> retired = state_.TakeRetired();
  ASSERT_EQ(retired.size(), 1u);
  EXPECT_EQ(retired[0].allocation_id(), id);
  EXPECT_EQ(retired[0].charged_fen(), ended.charged_fen());
  EXPECT_EQ(retired[0].cost_fen(), ended.cost_fen());
  EXPECT_EQ(retired[0].state(), pb::ALLOCATION_STATE_ENDED);
  EXPECT_THAT(state_.TakeRetired(), IsEmpty());

  // Its money stays counted, and the voucher's sums are untouched.
  ASSERT_EQ(state_.retired().size(), 1u);
  const auto& [key, sums] = *state_.retired().begin();
  EXPECT_EQ(key,
            (Placement::RetiredKey{"P-000001", "E-000001", ended.provider_id(),
                                   ended.hardware_class()}));
  EXPECT_EQ(sums.allocations, 1);
  EXPECT_EQ(sums.charged_fen, ended.charged_fen());
  EXPECT_EQ(sums.cost_fen, ended.cost_fen());
  EXPECT_EQ(sums.used_gpu_ms, ended.used_gpu_ms());
  EXPECT_EQ(Voucher(voucher_).charged_fen(), ended.charged_fen());
  EXPECT_EQ(Voucher(voucher_).held_fen(), 0);
}

TEST_F(RetirementTest, UsageForARetiredAllocationIsRefusedSayingWhy) {
  const pb::Allocation ended = RunAndEnd();
  const absl::Time end = *FromProto("ended_at", ended.ended_at());
  driver_.Advance(absl::Seconds(kRetain));
  ASSERT_THAT(driver_.Tick(kGrace, kRetain), IsOk());
  ASSERT_FALSE(state_.allocations().contains(ended.allocation_id()));
  const std::string before = state_.Digest();
  ASSERT_OK_AND_ASSIGN(const pb::UsageAck ack,
                       driver_.Report("sz-b", ended.allocation_id(), 2,
                                      end - absl::Minutes(1), end, 1000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(ack.reason(), HasSubstr("retired"));
  EXPECT_EQ(state_.Digest(), before);
}

TEST_F(RetirementTest, TicksWithoutRetentionAndHeldAllocationsRetireNothing) {
  const pb::Allocation ended = RunAndEnd();
  // Ticks logged before retirement existed carry no retention.
  driver_.Advance(absl::Seconds(10 * kRetain));
  ASSERT_OK_AND_ASSIGN(Outcome old, driver_.Tick(kGrace, 0));
  EXPECT_FALSE(old.changed);
  EXPECT_TRUE(state_.allocations().contains(ended.allocation_id()));
  // A running allocation, however old, stays.
  ASSERT_OK_AND_ASSIGN(const pb::Allocation running,
                       driver_.Allocate("E-000001", "H100", 1, 3600 * 24 * 90));
  driver_.Advance(absl::Seconds(kRetain + 1));
  ASSERT_THAT(driver_.Tick(kGrace, kRetain), IsOk());
  EXPECT_TRUE(state_.allocations().contains(running.allocation_id()));
  EXPECT_FALSE(state_.allocations().contains(ended.allocation_id()));
}

TEST_F(RetirementTest, ATickRetiresAtMostWhatItSays) {
  const pb::Allocation first = RunAndEnd();
  const pb::Allocation second = RunAndEnd();
  driver_.Advance(absl::Seconds(kRetain));
  pb::Command c;
  c.mutable_tick()->set_usage_grace_s(kGrace);
  c.mutable_tick()->set_retain_ended_s(kRetain);
  c.mutable_tick()->set_retire_at_most(1);
  ASSERT_THAT(driver_.Apply(c), IsOk());
  // The earlier end first.
  EXPECT_FALSE(state_.allocations().contains(first.allocation_id()));
  EXPECT_TRUE(state_.allocations().contains(second.allocation_id()));
  ASSERT_THAT(driver_.Apply(c), IsOk());
  EXPECT_FALSE(state_.allocations().contains(second.allocation_id()));
  EXPECT_EQ(state_.TakeRetired().size(), 2u);
}

TEST_F(RetirementTest, RetentionIsValidated) {
  pb::Command c;
  c.mutable_tick()->set_usage_grace_s(kGrace);
  c.mutable_tick()->set_retain_ended_s(-1);
  ExpectRejected(c, kInvalid, "retain_ended_s");
  c.mutable_tick()->set_retain_ended_s(kMaxRetainEndedS + 1);
  ExpectRejected(c, kInvalid, "retain_ended_s");
  // How many a tick retires is in the command, so that replay retires the
  // same ones.
  c.mutable_tick()->set_retain_ended_s(kRetain);
  ExpectRejected(c, kInvalid, "retire_at_most");
  c.mutable_tick()->set_retire_at_most(kMaxRetiredPerTick + 1);
  ExpectRejected(c, kInvalid, "retire_at_most");
}

TEST_F(RetirementTest, ASnapshotCarriesTheSumsAndWhatIsDueNext) {
  const pb::Allocation first = RunAndEnd();
  driver_.Advance(absl::Seconds(kRetain));
  ASSERT_THAT(driver_.Tick(kGrace, kRetain), IsOk());
  const pb::Allocation second = RunAndEnd();
  state_.TakeRetired();

  StateMachine loaded;
  ASSERT_THAT(loaded.Load(state_.Save()), IsOk());
  EXPECT_EQ(loaded.Digest(), state_.Digest());
  EXPECT_EQ(loaded.retired().size(), 1u);

  // Both retire the second allocation at the same tick.
  driver_.Advance(absl::Seconds(kRetain));
  pb::Command tick;
  tick.set_sequence(state_.last_command_sequence() + 1);
  *tick.mutable_time() = ToProto(driver_.now());
  tick.mutable_tick()->set_usage_grace_s(kGrace);
  tick.mutable_tick()->set_retain_ended_s(kRetain);
  tick.mutable_tick()->set_retire_at_most(kRetiredPerTick);
  ASSERT_THAT(state_.Apply(tick), IsOk());
  ASSERT_THAT(loaded.Apply(tick), IsOk());
  EXPECT_EQ(loaded.Digest(), state_.Digest());
  ASSERT_EQ(loaded.TakeRetired().size(), 1u);
  EXPECT_EQ(loaded.retired().begin()->second.allocations, 2);
  EXPECT_FALSE(loaded.allocations().contains(second.allocation_id()));
  EXPECT_FALSE(loaded.allocations().contains(first.allocation_id()));
}

}  // namespace
}  // namespace computevoucher::core
