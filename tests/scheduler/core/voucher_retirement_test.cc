// Voucher retirement (issue 15, item 2): vouchers whose window ended long
// enough ago, with nothing left on them and their allocations retired,
// leave the state and the ledger; their final view goes to the store, their
// sums stay for the yearly cap, balances and metrics.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/core/verify.h"
#include "tests/scheduler/core/state_machine_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::AdminPrincipal;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::NewCommand;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kGrace = 300;
constexpr int64_t kRetain = 30 * 24 * 3600;

class VoucherRetirementTest : public StateMachineTest {
 protected:
  // A voucher of `face_fen` for E-000001, valid for `days` from now.
  std::string IssueFor(int64_t face_fen, int days) {
    pb::Command c =
        NewCommand(AdminPrincipal(), "issue-" + std::to_string(++n_));
    pb::IssueVoucherRequest* r = c.mutable_issue_voucher();
    r->set_program_id("P-000001");
    r->set_enterprise_id("E-000001");
    r->set_face_value_fen(face_fen);
    *r->mutable_valid_until() = ToProto(driver_.now() + absl::Hours(24 * days));
    absl::StatusOr<Outcome> out = driver_.Apply(c);
    EXPECT_THAT(out, IsOk());
    return static_cast<const pb::Voucher&>(*out->response).voucher_id();
  }

  // An hour of one GPU on `voucher`, reported and released.
  std::string RunOnce(const std::string& voucher) {
    absl::StatusOr<pb::Allocation> a =
        driver_.Allocate("E-000001", "H100", 1, 7200, false, voucher);
    EXPECT_THAT(a, IsOk());
    const absl::Time start = driver_.now();
    driver_.Advance(absl::Hours(1));
    EXPECT_THAT(driver_.Report("sz-b", a->allocation_id(), 1, start,
                               driver_.now(), 3600 * 1000),
                IsOk());
    EXPECT_THAT(driver_.Release("E-000001", a->allocation_id()), IsOk());
    return a->allocation_id();
  }

  absl::StatusOr<Outcome> Tick(int vouchers_at_most = kRetiredPerTick,
                               int allocations_at_most = kRetiredPerTick) {
    pb::Command c;
    c.mutable_tick()->set_usage_grace_s(kGrace);
    c.mutable_tick()->set_retain_ended_s(kRetain);
    c.mutable_tick()->set_retire_at_most(allocations_at_most);
    c.mutable_tick()->set_retire_vouchers_at_most(vouchers_at_most);
    return driver_.Apply(std::move(c));
  }

  // Every ledger key and balance that names `id`.
  std::vector<std::string> LedgerMentions(const std::string& id) const {
    std::vector<std::string> out;
    for (const std::string& key : state_.ledger().keys())
      if (absl::StrContains(key, id)) out.push_back(key);
    for (const auto& [account, balance] : state_.ledger().balances())
      if (absl::StrContains(account, id)) out.push_back(account);
    return out;
  }

  int n_ = 0;
};

TEST_F(VoucherRetirementTest,
       AVoucherRetiresOnceItsWindowAndAllocationsAreDone) {
  const std::string v = IssueFor(100 * kYuan, 10);
  const std::string a = RunOnce(v);
  pb::Command adjust = NewCommand(AdminPrincipal(), "adjust");
  adjust.mutable_adjust_voucher()->set_voucher_id(v);
  adjust.mutable_adjust_voucher()->set_delta_fen(5 * kYuan);
  adjust.mutable_adjust_voucher()->set_reason("top-up");
  ASSERT_THAT(driver_.Apply(adjust), IsOk());
  const absl::Time until = *FromProto("valid_until", Voucher(v).valid_until());
  driver_.Advance(until - driver_.now());
  ASSERT_THAT(Tick(), IsOk());
  const pb::Voucher expired = Voucher(v);
  ASSERT_EQ(expired.state(), pb::VOUCHER_STATE_EXPIRED);
  ASSERT_GT(expired.charged_fen(), 0);
  ASSERT_GT(expired.returned_fen(), 0);
  EXPECT_THAT(LedgerMentions(v), ::testing::Not(IsEmpty()));

  // A second before its time, it stays (its allocation went the tick
  // before, being due earlier); then it goes.
  driver_.Advance(absl::Seconds(kRetain - 1));
  ASSERT_THAT(Tick(), IsOk());
  EXPECT_FALSE(state_.allocations().contains(a));
  EXPECT_TRUE(state_.vouchers().contains(v));
  driver_.Advance(absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(const Outcome due, Tick());
  EXPECT_TRUE(due.changed) << "a retiring tick must be logged";
  EXPECT_FALSE(state_.vouchers().contains(v));
  EXPECT_THAT(LedgerMentions(v), IsEmpty());

  const std::vector<pb::Voucher> retired = state_.TakeRetiredVouchers();
  ASSERT_EQ(retired.size(), 1u);
  pb::Voucher expected = expired;
  *expected.mutable_retired_at() = ToProto(driver_.now());
  EXPECT_EQ(retired[0].DebugString(), expected.DebugString());
  EXPECT_THAT(state_.TakeRetiredVouchers(), IsEmpty());

  ASSERT_EQ(state_.retired_vouchers().size(), 1u);
  const auto& [key, sums] = *state_.retired_vouchers().begin();
  EXPECT_EQ(key, (VoucherBook::RetiredKey{"P-000001", "E-000001", 2025,
                                          pb::VOUCHER_STATE_EXPIRED}));
  EXPECT_EQ(sums.vouchers, 1);
  EXPECT_EQ(sums.face_value_fen, 105 * kYuan);
  EXPECT_EQ(sums.charged_fen, expired.charged_fen());
  EXPECT_EQ(sums.returned_fen, expired.returned_fen());
}

TEST_F(VoucherRetirementTest, TheYearlyCapStillCountsARetiredVoucher) {
  // The world's cap is 8,000,000.00 a year per enterprise and program.
  const std::string v = IssueFor(5'000'000 * kYuan, 1);
  driver_.Advance(absl::Hours(24) + absl::Seconds(kRetain));
  ASSERT_THAT(Tick(), IsOk());
  ASSERT_FALSE(state_.vouchers().contains(v));
  pb::Command c = NewCommand(AdminPrincipal(), "over-the-cap");
  c.mutable_issue_voucher()->set_program_id("P-000001");
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(4'000'000 * kYuan);
  ExpectRejected(c, kPrecondition, "cap");
  c.mutable_issue_voucher()->set_face_value_fen(3'000'000 * kYuan);
  EXPECT_THAT(driver_.Apply(c), IsOk());
}

TEST_F(VoucherRetirementTest, AVoucherWaitsForItsAllocationsAndTheTickLimits) {
  const std::string first = IssueFor(100 * kYuan, 5);
  const std::string second = IssueFor(100 * kYuan, 6);
  const std::string a1 = RunOnce(first);
  const std::string a2 = RunOnce(first);
  driver_.Advance(absl::Hours(24 * 6) + absl::Seconds(kRetain));
  // One allocation a tick: the first voucher still has one, and is passed
  // over; the second (nothing spent) retires.
  ASSERT_THAT(Tick(kRetiredPerTick, 1), IsOk());
  EXPECT_TRUE(state_.vouchers().contains(first));
  EXPECT_FALSE(state_.vouchers().contains(second));
  ASSERT_THAT(Tick(kRetiredPerTick, 1), IsOk());
  EXPECT_FALSE(state_.allocations().contains(a1));
  EXPECT_FALSE(state_.allocations().contains(a2));
  EXPECT_FALSE(state_.vouchers().contains(first));
  // One voucher a tick, in the order their windows ended.
  const std::string third = IssueFor(100 * kYuan, 1);
  const std::string fourth = IssueFor(100 * kYuan, 2);
  driver_.Advance(absl::Hours(24 * 2) + absl::Seconds(kRetain));
  ASSERT_THAT(Tick(1), IsOk());
  EXPECT_FALSE(state_.vouchers().contains(third));
  EXPECT_TRUE(state_.vouchers().contains(fourth));
  ASSERT_THAT(Tick(1), IsOk());
  EXPECT_FALSE(state_.vouchers().contains(fourth));
}

TEST_F(VoucherRetirementTest, TicksWithoutTheLimitRetireNoVoucher) {
  const std::string v = IssueFor(100 * kYuan, 1);
  driver_.Advance(absl::Hours(24) + absl::Seconds(10 * kRetain));
  // Ticks logged before vouchers retired carry no limit: replay of them
  // must not retire any.
  ASSERT_THAT(Tick(0), IsOk());
  EXPECT_TRUE(state_.vouchers().contains(v));
  // An active voucher, however old, stays.
  const std::string active = IssueFor(100 * kYuan, 300);
  driver_.Advance(absl::Seconds(kRetain));
  ASSERT_THAT(Tick(), IsOk());
  EXPECT_FALSE(state_.vouchers().contains(v));
  EXPECT_TRUE(state_.vouchers().contains(active));
}

TEST_F(VoucherRetirementTest, TheLimitIsValidated) {
  pb::Command c;
  c.mutable_tick()->set_usage_grace_s(kGrace);
  c.mutable_tick()->set_retire_vouchers_at_most(1);
  ExpectRejected(c, kInvalid, "retire_vouchers_at_most");  // no retention
  c.mutable_tick()->set_retain_ended_s(kRetain);
  c.mutable_tick()->set_retire_at_most(1);
  c.mutable_tick()->set_retire_vouchers_at_most(-1);
  ExpectRejected(c, kInvalid, "retire_vouchers_at_most");
  c.mutable_tick()->set_retire_vouchers_at_most(kMaxRetiredPerTick + 1);
  ExpectRejected(c, kInvalid, "retire_vouchers_at_most");
}

TEST_F(VoucherRetirementTest, ASnapshotCarriesTheSumsAndWhatIsDueNext) {
  const std::string first = IssueFor(100 * kYuan, 1);
  const std::string second = IssueFor(200 * kYuan, 3);
  RunOnce(second);
  driver_.Advance(absl::Hours(24) + absl::Seconds(kRetain));
  ASSERT_THAT(Tick(), IsOk());
  ASSERT_FALSE(state_.vouchers().contains(first));
  ASSERT_TRUE(state_.vouchers().contains(second));

  StateMachine loaded;
  ASSERT_THAT(loaded.Load(state_.Save()), IsOk());
  EXPECT_EQ(loaded.Digest(), state_.Digest());
  EXPECT_EQ(loaded.retired_vouchers().size(), 1u);

  // Both retire the second voucher at the same tick.
  driver_.Advance(absl::Hours(24 * 2));
  pb::Command tick;
  tick.set_sequence(state_.last_command_sequence() + 1);
  *tick.mutable_time() = ToProto(driver_.now());
  tick.mutable_tick()->set_usage_grace_s(kGrace);
  tick.mutable_tick()->set_retain_ended_s(kRetain);
  tick.mutable_tick()->set_retire_at_most(kRetiredPerTick);
  tick.mutable_tick()->set_retire_vouchers_at_most(kRetiredPerTick);
  ASSERT_THAT(state_.Apply(tick), IsOk());
  ASSERT_THAT(loaded.Apply(tick), IsOk());
  EXPECT_EQ(loaded.Digest(), state_.Digest());
  ASSERT_EQ(loaded.TakeRetiredVouchers().size(), 1u);
  EXPECT_FALSE(loaded.vouchers().contains(second));
  EXPECT_EQ(loaded.retired_vouchers().begin()->second.vouchers, 2);
}

// An exhausted voucher is passed by at the end of its window (nothing to
// return); topped up after that, it would keep money past its window. It
// is expired when it retires, its money back in the budget, whether
// active or suspended by then.
TEST_F(VoucherRetirementTest,
       AVoucherToppedUpAfterItsWindowExpiresAsItRetires) {
  for (const bool suspend : {false, true}) {
    SCOPED_TRACE(suspend ? "suspended" : "active");
    const std::string v = IssueFor(100 * kYuan, 1);
    auto adjust = [&](int64_t delta) {
      pb::Command c =
          NewCommand(AdminPrincipal(), "adjust-" + std::to_string(++n_));
      c.mutable_adjust_voucher()->set_voucher_id(v);
      c.mutable_adjust_voucher()->set_delta_fen(delta);
      c.mutable_adjust_voucher()->set_reason("correction");
      return driver_.Apply(c);
    };
    ASSERT_THAT(adjust(-100 * kYuan), IsOk());
    ASSERT_EQ(Voucher(v).state(), pb::VOUCHER_STATE_EXHAUSTED);
    driver_.Advance(absl::Hours(25));
    ASSERT_THAT(Tick(), IsOk());
    ASSERT_EQ(Voucher(v).state(), pb::VOUCHER_STATE_EXHAUSTED);
    ASSERT_THAT(adjust(30 * kYuan), IsOk());
    ASSERT_EQ(Voucher(v).state(), pb::VOUCHER_STATE_ACTIVE);
    if (suspend) {
      pb::Command c = NewCommand(AdminPrincipal(), "suspend-" + v);
      c.mutable_suspend_voucher()->set_voucher_id(v);
      c.mutable_suspend_voucher()->set_reason("audit");
      ASSERT_THAT(driver_.Apply(c), IsOk());
    }
    const int64_t budget = Balance(ProgramBudgetAccount("P-000001"));
    driver_.Advance(absl::Seconds(kRetain));
    ASSERT_THAT(Tick(), IsOk());
    EXPECT_FALSE(state_.vouchers().contains(v));
    const std::vector<pb::Voucher> retired = state_.TakeRetiredVouchers();
    ASSERT_EQ(retired.size(), 1u);
    EXPECT_EQ(retired[0].state(), pb::VOUCHER_STATE_EXPIRED);
    EXPECT_EQ(retired[0].returned_fen(), 30 * kYuan);
    EXPECT_EQ(retired[0].available_fen(), 0);
    EXPECT_EQ(Balance(ProgramBudgetAccount("P-000001")), budget + 30 * kYuan);
  }
  // The journal of it all adds up.
  JournalVerifier verifier;
  for (const pb::JournalEntry& e : state_.TakeJournal()) verifier.Add(e);
  EXPECT_THAT(verifier.Check(state_), IsEmpty());
}

TEST_F(VoucherRetirementTest, DroppedOutputsLeaveNothingBehind) {
  const std::string v = IssueFor(100 * kYuan, 1);
  RunOnce(v);
  driver_.Advance(absl::Hours(24) + absl::Seconds(kRetain));
  ASSERT_THAT(Tick(), IsOk());
  ASSERT_FALSE(state_.vouchers().contains(v));
  state_.DropOutputs();
  EXPECT_THAT(state_.TakeJournal(), IsEmpty());
  EXPECT_THAT(state_.TakeUsage(), IsEmpty());
  EXPECT_THAT(state_.TakeRetired(), IsEmpty());
  EXPECT_THAT(state_.TakeRetiredVouchers(), IsEmpty());
}

// A full replay's verifier forgets a retired voucher as the state does; one
// retired with money on it is a violation.
TEST_F(VoucherRetirementTest, TheJournalVerifierForgetsARetiredVoucher) {
  const std::string v = IssueFor(100 * kYuan, 1);
  RunOnce(v);
  driver_.Advance(absl::Hours(24) + absl::Seconds(kRetain));
  ASSERT_THAT(Tick(), IsOk());
  const std::vector<pb::Voucher> retired = state_.TakeRetiredVouchers();
  ASSERT_EQ(retired.size(), 1u);
  const std::vector<pb::Allocation> allocations = state_.TakeRetired();
  const std::vector<pb::JournalEntry> all = state_.TakeJournal();

  JournalVerifier verifier;
  for (const pb::JournalEntry& e : all) verifier.Add(e);
  for (const pb::Allocation& a : allocations) verifier.Forget(a);
  const size_t before = verifier.accounts();
  verifier.Forget(retired[0]);
  EXPECT_EQ(verifier.accounts(), before - 1);
  EXPECT_THAT(verifier.Check(state_), IsEmpty());

  // Forgotten before its expiry returned what was left.
  JournalVerifier early;
  for (const pb::JournalEntry& e : all) {
    if (e.kind() == pb::ENTRY_KIND_EXPIRE) break;
    early.Add(e);
  }
  for (const pb::Allocation& a : allocations) early.Forget(a);
  early.Forget(retired[0]);
  EXPECT_THAT(early.Check(state_),
              ::testing::Contains(HasSubstr("voucher " + v + ": state (face")));
  // A final view with money on it.
  pb::Voucher forged = retired[0];
  forged.set_available_fen(1);
  JournalVerifier left;
  for (const pb::JournalEntry& e : all) left.Add(e);
  for (const pb::Allocation& a : allocations) left.Forget(a);
  left.Forget(forged);
  EXPECT_THAT(
      left.Check(state_),
      ::testing::Contains(HasSubstr("retired with 0.01 CNY available")));
}

}  // namespace
}  // namespace computevoucher::core
