#include "scheduler/core/verify.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/journal_hash.h"
#include "common/sha256.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::Driver;
using ::computevoucher::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class JournalVerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(driver_.BuildWorld(), IsOk());
    ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 10'000), IsOk());
    ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                         driver_.Allocate("E-000001", "H100", 1, 3600));
    driver_.Advance(absl::Hours(1));
    ASSERT_THAT(driver_.Report("sz-b", a.allocation_id(), 1,
                               driver_.now() - absl::Hours(1),
                               driver_.now() - absl::Minutes(30), 1'800'000),
                IsOk());
    ASSERT_THAT(driver_.Report("sz-b", a.allocation_id(), 2,
                               driver_.now() - absl::Minutes(30), driver_.now(),
                               1'800'000),
                IsOk());
    entries_ = state_.TakeJournal();
    ASSERT_GE(entries_.size(), 5u);
  }

  std::vector<std::string> Verify(
      const std::vector<pb::JournalEntry>& entries) {
    JournalVerifier verifier;
    for (const pb::JournalEntry& e : entries) verifier.Add(e);
    return verifier.Check(state_);
  }

  StateMachine state_;
  Driver driver_{state_};
  std::vector<pb::JournalEntry> entries_;
};

TEST_F(JournalVerifierTest, CleanJournalPasses) {
  EXPECT_THAT(Verify(entries_), IsEmpty());
}

TEST_F(JournalVerifierTest, DetectsATamperedAmount) {
  std::vector<pb::JournalEntry> tampered = entries_;
  tampered.back().set_amount_fen(tampered.back().amount_fen() + 1);
  const std::vector<std::string> violations = Verify(tampered);
  ASSERT_FALSE(violations.empty());
  EXPECT_THAT(violations[0], HasSubstr("does not match its contents"));
}

TEST_F(JournalVerifierTest, DetectsARemovedEntry) {
  std::vector<pb::JournalEntry> shortened = entries_;
  shortened.erase(shortened.begin() + 2);
  const std::vector<std::string> violations = Verify(shortened);
  ASSERT_FALSE(violations.empty());
  EXPECT_THAT(violations[0], HasSubstr("expected sequence 3"));
}

TEST_F(JournalVerifierTest, DetectsADoubleCharge) {
  std::vector<pb::JournalEntry> doubled = entries_;
  pb::JournalEntry again = doubled.back();
  ASSERT_EQ(again.kind(), pb::ENTRY_KIND_CHARGE);
  again.set_sequence(again.sequence() + 1);
  again.set_prev_hash(doubled.back().hash());
  again.set_hash(EntryHash(again));
  doubled.push_back(again);
  const std::vector<std::string> violations = Verify(doubled);
  // A usage charge is unique by its allocation and sequence, not its key.
  EXPECT_THAT(violations, ::testing::Contains(HasSubstr("charged twice")));
  EXPECT_THAT(violations, ::testing::Contains(HasSubstr("goes negative")));
}

TEST_F(JournalVerifierTest, DetectsAWronglyShapedEntry) {
  std::vector<pb::JournalEntry> bad = entries_;
  // Re-chain a HOLD entry that pretends to pay the provider directly.
  for (size_t i = 0; i < bad.size(); ++i) {
    if (bad[i].kind() == pb::ENTRY_KIND_HOLD) {
      bad[i].set_debit_account(PayableAccount("PR-000002"));
    }
    if (i > 0) bad[i].set_prev_hash(bad[i - 1].hash());
    bad[i].set_hash(EntryHash(bad[i]));
  }
  EXPECT_THAT(Verify(bad),
              ::testing::Contains(HasSubstr("(ENTRY_KIND_HOLD): moves")));
}

// A charge taken from another allocation's hold: the accounts differ only
// in the allocation's id, which the verifier compares without building the
// expected names.
TEST_F(JournalVerifierTest, DetectsAChargeFromAnotherAllocationsHold) {
  std::vector<pb::JournalEntry> bad = entries_;
  std::string expected, other, payable;
  for (size_t i = 0; i < bad.size(); ++i) {
    if (bad[i].kind() == pb::ENTRY_KIND_CHARGE && other.empty()) {
      expected = bad[i].credit_account();
      payable = bad[i].debit_account();
      other = expected;
      other.back() = other.back() == '9' ? '8' : '9';
      bad[i].set_credit_account(other);
    }
    if (i > 0) bad[i].set_prev_hash(bad[i - 1].hash());
    bad[i].set_hash(EntryHash(bad[i]));
  }
  ASSERT_FALSE(other.empty());
  EXPECT_THAT(Verify(bad),
              ::testing::Contains(HasSubstr(absl::StrCat(
                  "(ENTRY_KIND_CHARGE): moves ", other, " -> ", payable,
                  ", expected ", expected, " -> ", payable))));
}

// An archive's anchor (ArchiveCommand): an entry that moves nothing, once
// per archived range, made only by the scheduler itself; the verifier
// accepts it and refuses one that moves money.
TEST_F(JournalVerifierTest, AnArchiveAnchorMovesNothingAndIsPostedOnce) {
  const int64_t through = state_.last_command_sequence();
  auto archive = [&](const pb::Principal& principal, std::string hash) {
    pb::Command c = ::computevoucher::testing::NewCommand(principal, "");
    pb::ArchiveCommand& a = *c.mutable_archive();
    a.mutable_through()->set_command(through);
    a.mutable_through()->set_entry(entries_.back().sequence());
    a.mutable_through()->set_entry_hash(entries_.back().hash());
    *a.mutable_before() = ToProto(driver_.now() - absl::Hours(1));
    a.set_manifest_sha256(std::move(hash));
    return c;
  };
  const std::string manifest(32, '\x5a');
  EXPECT_THAT(
      driver_.Apply(
          archive(::computevoucher::testing::AdminPrincipal(), manifest)),
      ::computevoucher::testing::StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(
      driver_.Apply(archive(pb::Principal(), "short")),
      ::computevoucher::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("manifest_sha256")));
  ASSERT_THAT(driver_.Apply(archive(pb::Principal(), manifest)), IsOk());
  std::vector<pb::JournalEntry> anchored = entries_;
  for (pb::JournalEntry& e : state_.TakeJournal()) anchored.push_back(e);
  ASSERT_EQ(anchored.size(), entries_.size() + 1);
  const pb::JournalEntry& anchor = anchored.back();
  EXPECT_EQ(anchor.kind(), pb::ENTRY_KIND_ARCHIVE);
  EXPECT_EQ(anchor.amount_fen(), 0);
  EXPECT_THAT(anchor.memo(), HasSubstr(ToHex(manifest)));
  EXPECT_THAT(anchor.memo(), HasSubstr(absl::StrCat("through ", through)));
  EXPECT_THAT(Verify(anchored), IsEmpty());
  // The same range again is refused: one anchor per archive.
  EXPECT_THAT(
      driver_.Apply(archive(pb::Principal(), manifest)),
      ::computevoucher::testing::StatusIs(absl::StatusCode::kAlreadyExists));

  std::vector<pb::JournalEntry> moving = anchored;
  moving.back().set_amount_fen(1);
  moving.back().set_debit_account(PayableAccount("PR-000001"));
  moving.back().set_hash(EntryHash(moving.back()));
  EXPECT_THAT(Verify(moving),
              ::testing::Contains(HasSubstr("an anchor moves nothing")));
}

// A full replay's verifier forgets a retired allocation, as the state does,
// so that its memory does not grow with every allocation ever; an
// allocation retired with money on its hold is a violation.
TEST_F(JournalVerifierTest, ARetiredAllocationIsForgotten) {
  // It reached its duration as the usage came in; the hold goes back after
  // the grace period, and it is retired an hour after its end.
  driver_.Advance(absl::Seconds(301));
  ASSERT_THAT(driver_.Tick(300, 3600), IsOk());
  driver_.Advance(absl::Hours(1));
  ASSERT_THAT(driver_.Tick(300, 3600), IsOk());
  const std::vector<pb::Allocation> retired = state_.TakeRetired();
  ASSERT_EQ(retired.size(), 1u);
  std::vector<pb::JournalEntry> all = entries_;
  for (pb::JournalEntry& e : state_.TakeJournal()) all.push_back(e);

  JournalVerifier verifier;
  for (const pb::JournalEntry& e : all) verifier.Add(e);
  const size_t before = verifier.accounts();
  verifier.Forget(retired[0]);
  EXPECT_EQ(verifier.accounts(), before - 1);
  EXPECT_THAT(verifier.Check(state_), IsEmpty());

  // Forgotten while it still holds money: before its last charge.
  JournalVerifier early;
  ASSERT_EQ(entries_.back().kind(), pb::ENTRY_KIND_CHARGE);
  for (size_t i = 0; i + 1 < entries_.size(); ++i) early.Add(entries_[i]);
  early.Forget(retired[0]);
  EXPECT_THAT(early.Check(state_),
              ::testing::Contains(
                  HasSubstr("allocation AL-00000001: state (charged ")));
  // A final view charged more than the journal, or than its GPUs × life.
  pb::Allocation forged = retired[0];
  forged.set_charged_fen(forged.charged_fen() + 1);
  JournalVerifier more;
  for (const pb::JournalEntry& e : all) more.Add(e);
  more.Forget(forged);
  EXPECT_THAT(more.Check(state_),
              ::testing::Contains(HasSubstr("differs from the journal")));
  forged = retired[0];
  *forged.mutable_ended_at() = forged.assigned_at();  // no billable life
  JournalVerifier longer;
  for (const pb::JournalEntry& e : all) longer.Add(e);
  longer.Forget(forged);
  EXPECT_THAT(longer.Check(state_),
              ::testing::Contains(HasSubstr("billable life")));
}

}  // namespace
}  // namespace computevoucher::core
