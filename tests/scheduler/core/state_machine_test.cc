#include "scheduler/core/state_machine.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/ledger.h"
#include "tests/scheduler/core/state_machine_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::AdminPrincipal;
using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::Driver;
using ::computevoucher::testing::EnterprisePrincipal;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::NewCommand;
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;

TEST_F(StateMachineTest, WorldIsFunded) {
  ASSERT_OK_AND_ASSIGN(const pb::Program p, state_.ProgramView("P-000001"));
  EXPECT_EQ(p.budget_fen(), 250'000'000 * kYuan);
  EXPECT_EQ(p.unissued_fen(), 250'000'000 * kYuan);
  EXPECT_EQ(Balance(ProgramSourceAccount("P-000001")), -250'000'000 * kYuan);
  EXPECT_EQ(state_.enterprises().size(), 3u);
  ASSERT_OK_AND_ASSIGN(const pb::Cluster hz, state_.ClusterView("hz-a"));
  EXPECT_EQ(hz.state(), pb::CLUSTER_STATE_APPROVED);
  EXPECT_EQ(hz.provider_id(), "PR-000001");
  EXPECT_EQ(hz.inventory(0).free_gpus(), 8);
}

TEST_F(StateMachineTest, CreateProgramRejectsBadFields) {
  const struct {
    const char* what;
    void (*mutate)(pb::CreateProgramRequest*);
    const char* message;
  } cases[] = {
      {"empty name", [](pb::CreateProgramRequest* r) { r->clear_name(); },
       "name: required"},
      {"huge name",
       [](pb::CreateProgramRequest* r) {
         r->set_name(std::string(100'000, 'x'));
       },
       "name: must be 1..200 characters"},
      {"zero budget", [](pb::CreateProgramRequest* r) { r->set_budget_fen(0); },
       "budget_fen: must be 1.."},
      {"negative budget",
       [](pb::CreateProgramRequest* r) { r->set_budget_fen(-100); },
       "got -100"},
      {"overflowing budget",
       [](pb::CreateProgramRequest* r) {
         r->set_budget_fen(std::numeric_limits<int64_t>::max());
       },
       "budget_fen"},
      {"window ends before it starts",
       [](pb::CreateProgramRequest* r) {
         const auto from = r->valid_from();
         *r->mutable_valid_from() = r->valid_until();
         *r->mutable_valid_until() = from;
       },
       "valid_until: must be after valid_from"},
      {"no window", [](pb::CreateProgramRequest* r) { r->clear_valid_from(); },
       "valid_from: required"},
      {"ratio above 100%",
       [](pb::CreateProgramRequest* r) { r->set_other_ratio_bp(10'001); },
       "other_ratio_bp: must be 0..10000, got 10001"},
      {"negative ratio",
       [](pb::CreateProgramRequest* r) { r->set_sme_ratio_bp(-1); },
       "sme_ratio_bp"},
      {"duplicate category",
       [](pb::CreateProgramRequest* r) {
         r->add_eligible_categories("整机");
         r->add_eligible_categories("整机");
       },
       "listed twice"},
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    pb::Command command =
        CreateProgramCommand(absl::StrCat("bad-program-", ++i));
    c.mutate(command.mutable_create_program());
    ExpectRejected(std::move(command), kInvalid, c.message);
  }
}

TEST_F(StateMachineTest, RegisterEnterpriseValidatesCreditCodeAndRelations) {
  auto enterprise = [](const std::string& request_id, const std::string& code) {
    pb::Command c = NewCommand(AdminPrincipal(), request_id);
    c.mutable_register_enterprise()->set_name("新公司");
    c.mutable_register_enterprise()->set_credit_code(code);
    c.mutable_register_enterprise()->set_category("整机");
    return c;
  };
  ExpectRejected(enterprise("e1", "91330100716105852X"), kInvalid,
                 "check character must be 'F'");
  ExpectRejected(enterprise("e2", ""), kInvalid, "credit_code");
  ExpectRejected(enterprise("e3", "914403001922038216"),
                 absl::StatusCode::kAlreadyExists,
                 "already registered as enterprise E-000001");
  pb::Command related = enterprise("e4", "91330000MA27XL0E2W");
  related.mutable_register_enterprise()->set_credit_code("91330100716105852F");
  related.mutable_register_enterprise()->add_related_provider_ids("PR-999999");
  ExpectRejected(std::move(related), absl::StatusCode::kNotFound,
                 "provider PR-999999 not found");
  // A provider's own code may be registered as an enterprise (the same legal
  // entity); lower case is normalised.
  ASSERT_OK_AND_ASSIGN(
      const pb::Enterprise e,
      driver_.Call<pb::Enterprise>(enterprise("e5", "91330100716105852f")));
  EXPECT_EQ(e.credit_code(), "91330100716105852F");
  EXPECT_EQ(e.enterprise_id(), "E-000004");
}

TEST_F(StateMachineTest, IssueMovesBudgetToVoucher) {
  ASSERT_OK_AND_ASSIGN(const pb::Voucher v,
                       driver_.Issue("P-000001", "E-000001", 10'000 * kYuan));
  EXPECT_EQ(v.voucher_id(), "CV-2025-000001");
  EXPECT_EQ(v.state(), pb::VOUCHER_STATE_ACTIVE);
  EXPECT_EQ(v.available_fen(), 10'000 * kYuan);
  EXPECT_EQ(v.face_value_fen(), 10'000 * kYuan);
  EXPECT_EQ(v.valid_until().seconds(),
            absl::ToUnixSeconds(EndOfDay(absl::CivilDay(2027, 12, 31))));
  ASSERT_OK_AND_ASSIGN(const pb::Program p, state_.ProgramView("P-000001"));
  EXPECT_EQ(p.unissued_fen(), (250'000'000 - 10'000) * kYuan);
  EXPECT_EQ(p.issued_fen(), 10'000 * kYuan);
}

TEST_F(StateMachineTest, IssueRespectsTheEnterpriseCapPerYear) {
  ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 5'000'000 * kYuan), IsOk());
  pb::Command c = NewCommand(AdminPrincipal(), "over-cap");
  c.mutable_issue_voucher()->set_program_id("P-000001");
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(4'000'000 * kYuan);
  ExpectRejected(c, kPrecondition,
                 "cap of program P-000001 for 2025 exceeded: need 4000000.00 "
                 "CNY, remaining "
                 "3000000.00 CNY");
  // Another enterprise has its own cap; a new calendar year resets it.
  ASSERT_THAT(driver_.Issue("P-000001", "E-000003", 8'000'000 * kYuan), IsOk());
  driver_.Advance(absl::Hours(24 * 306));  // 2026-01-01 00:00 Shanghai
  ASSERT_OK_AND_ASSIGN(
      const pb::Voucher next,
      driver_.Issue("P-000001", "E-000001", 8'000'000 * kYuan));
  EXPECT_EQ(next.voucher_id(), "CV-2026-000003");
}

TEST_F(StateMachineTest, IssueRespectsBudgetEligibilityAndWindow) {
  ASSERT_OK_AND_ASSIGN(
      const pb::Program small,
      driver_.Call<pb::Program>(CreateProgramCommand("small")));
  pb::Command c = NewCommand(AdminPrincipal(), "too-much");
  c.mutable_issue_voucher()->set_program_id(small.program_id());
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(1500 * kYuan);
  ExpectRejected(c, kPrecondition,
                 "insufficient budget: need 1500.00 CNY, have 1000.00 CNY");

  pb::Command restricted = CreateProgramCommand("restricted");
  restricted.mutable_create_program()->add_eligible_categories("科研平台");
  ASSERT_OK_AND_ASSIGN(const pb::Program research,
                       driver_.Call<pb::Program>(restricted));
  c = NewCommand(AdminPrincipal(), "ineligible");
  c.mutable_issue_voucher()->set_program_id(research.program_id());
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(100 * kYuan);
  ExpectRejected(c, kPrecondition, "category \"整机\" is not eligible");

  c = NewCommand(AdminPrincipal(), "outside-window");
  c.mutable_issue_voucher()->set_program_id(small.program_id());
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(100 * kYuan);
  *c.mutable_issue_voucher()->mutable_valid_until() =
      ToProto(driver_.now() + absl::Hours(24 * 365));
  ExpectRejected(c, kInvalid, "must lie inside program");

  c = NewCommand(AdminPrincipal(), "unknown");
  c.mutable_issue_voucher()->set_program_id("P-404");
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(100 * kYuan);
  ExpectRejected(c, absl::StatusCode::kNotFound, "program P-404 not found");
  c.mutable_issue_voucher()->set_program_id("P-000001");
  c.mutable_issue_voucher()->set_enterprise_id("E-404");
  ExpectRejected(c, absl::StatusCode::kNotFound, "enterprise E-404 not found");
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(-5);
  ExpectRejected(c, kInvalid, "face_value_fen: must be 1..");
}

TEST_F(StateMachineTest, RetriedRequestIdReturnsTheFirstAnswer) {
  pb::Command c = NewCommand(AdminPrincipal(), "issue-once");
  c.mutable_issue_voucher()->set_program_id("P-000001");
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(100 * kYuan);
  ASSERT_OK_AND_ASSIGN(const core::Outcome first, driver_.Apply(c));
  EXPECT_TRUE(first.changed);
  const std::string after_first = state_.Digest();
  driver_.Advance(absl::Minutes(1));
  ASSERT_OK_AND_ASSIGN(const core::Outcome retry, driver_.Apply(c));
  EXPECT_FALSE(retry.changed);
  EXPECT_EQ(retry.response.get(), first.response.get());
  EXPECT_EQ(state_.Digest(), after_first);
  EXPECT_EQ(state_.VoucherIds().size(), 1u);

  c.mutable_issue_voucher()->set_face_value_fen(200 * kYuan);
  ExpectRejected(
      c, kInvalid,
      "request_id: \"issue-once\" was already used for a different request");
  c.set_request_id("");
  ExpectRejected(c, kInvalid, "request_id: required");
  c.set_request_id("has space");
  ExpectRejected(c, kInvalid, "may contain only");
}

TEST_F(StateMachineTest, RequestIdsAreRememberedForTheirRetentionOnly) {
  pb::Command c = NewCommand(AdminPrincipal(), "issue-weekly");
  c.mutable_issue_voucher()->set_program_id("P-000001");
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(100 * kYuan);
  ASSERT_OK_AND_ASSIGN(const core::Outcome first, driver_.Apply(c));
  ASSERT_TRUE(first.changed);
  const pb::Command first_command = driver_.log().back();
  // Just inside the window: the first answer.
  driver_.Advance(kRequestIdRetention - absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(const core::Outcome retry, driver_.Apply(c));
  EXPECT_FALSE(retry.changed);
  EXPECT_EQ(retry.response.get(), first.response.get());
  // Past it, the id is free: a new request (even a different one).
  driver_.Advance(absl::Seconds(1));
  c.mutable_issue_voucher()->set_face_value_fen(200 * kYuan);
  ASSERT_OK_AND_ASSIGN(const core::Outcome again, driver_.Apply(c));
  EXPECT_TRUE(again.changed);
  EXPECT_EQ(state_.VoucherIds().size(), 2u);
  // And the new use is what a retry now gets.
  ASSERT_OK_AND_ASSIGN(const core::Outcome retry_again, driver_.Apply(c));
  EXPECT_EQ(retry_again.response.get(), again.response.get());

  // Forgotten ids leave memory: a snapshot taken a window later holds
  // none of the requests made before it, only the one that moved time on.
  driver_.Advance(kRequestIdRetention);
  ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 1 * kYuan), IsOk());
  const pb::StateSnapshot saved = state_.Save();
  ASSERT_EQ(saved.idempotency_size(), 1);
  EXPECT_FALSE(absl::EndsWith(saved.idempotency(0).key(), "/issue-weekly"));
}

TEST_F(StateMachineTest, AllocatePlacesOnCheapestUnrelatedClusterAndHolds) {
  ASSERT_OK_AND_ASSIGN(const pb::Voucher v,
                       driver_.Issue("P-000001", "E-000001", 10'000 * kYuan));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 2, 3600));
  EXPECT_EQ(a.state(), pb::ALLOCATION_STATE_ASSIGNED);
  EXPECT_EQ(a.cluster_id(), "sz-b");  // 1800 < 2000 fen per GPU-hour
  EXPECT_EQ(a.price_fen_per_gpu_hour(), 1800);
  EXPECT_EQ(a.ratio_bp(), 2000);
  // cost = 2 GPUs × 1 h × 18.00 = 36.00; subsidy 20% = 7.20
  EXPECT_EQ(a.held_fen(), 720);
  EXPECT_EQ(Voucher(v.voucher_id()).available_fen(), 10'000 * kYuan - 720);
  EXPECT_EQ(Voucher(v.voucher_id()).held_fen(), 720);
  EXPECT_EQ(state_.ClusterView("sz-b")->inventory(0).free_gpus(), 6);

  // The SME related to sz-b's provider goes to hz-a, at the SME ratio.
  ASSERT_THAT(driver_.Issue("P-000001", "E-000002", 1'000 * kYuan), IsOk());
  ASSERT_OK_AND_ASSIGN(const pb::Allocation b,
                       driver_.Allocate("E-000002", "H100", 2, 3600));
  EXPECT_EQ(b.cluster_id(), "hz-a");
  EXPECT_EQ(b.ratio_bp(), 5000);
  EXPECT_EQ(b.held_fen(), 2000);  // 2 × 20.00 × 50%
}

TEST_F(StateMachineTest, QuoteChangesNothing) {
  ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 10'000 * kYuan), IsOk());
  const std::string before = state_.Digest();
  pb::ResourceRequest r;
  r.set_hardware_class(pb::HARDWARE_CLASS_DOMESTIC);
  r.set_gpu_count(4);
  r.set_max_duration_s(7200);
  ASSERT_OK_AND_ASSIGN(const pb::QuoteResponse q, state_.Quote("E-000001", r));
  EXPECT_EQ(state_.Digest(), before);
  EXPECT_EQ(q.gpu_model(), "910B");
  EXPECT_EQ(q.cluster_id(), "hz-a");
  EXPECT_TRUE(q.capacity_available());
  EXPECT_EQ(q.amounts().cost_fen(), 4 * 2 * 1200);
  EXPECT_EQ(q.amounts().subsidy_fen(), 4 * 2 * 1200 * 3 / 10);
  EXPECT_EQ(q.amounts().self_pay_fen(), 4 * 2 * 1200 * 7 / 10);
  ASSERT_EQ(q.vouchers_size(), 1);
  EXPECT_TRUE(q.vouchers(0).sufficient());
}

TEST_F(StateMachineTest, InsufficientBalanceNamesBothAmounts) {
  ASSERT_OK_AND_ASSIGN(const pb::Voucher v,
                       driver_.Issue("P-000001", "E-000001", 5 * kYuan));
  pb::Command c = NewCommand(EnterprisePrincipal("E-000001"), "too-big");
  c.mutable_allocate()->mutable_resources()->set_gpu_model("H100");
  c.mutable_allocate()->mutable_resources()->set_gpu_count(2);
  c.mutable_allocate()->mutable_resources()->set_max_duration_s(3600);
  ExpectRejected(c, kPrecondition,
                 "need 7.20 CNY on one voucher, have 5.00 CNY");
  c.mutable_allocate()->mutable_resources()->set_voucher_id(v.voucher_id());
  ExpectRejected(
      c, kPrecondition,
      absl::StrCat("voucher ", v.voucher_id(),
                   ": insufficient balance: need 7.20 CNY, have 5.00 CNY"));
}

TEST_F(StateMachineTest, AllocateRejectsBadRequests) {
  ASSERT_OK_AND_ASSIGN(const pb::Voucher other,
                       driver_.Issue("P-000001", "E-000003", 100 * kYuan));
  ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 100 * kYuan), IsOk());
  const struct {
    const char* what;
    void (*mutate)(pb::ResourceRequest*);
    absl::StatusCode code;
    const char* message;
  } cases[] = {
      {"zero gpus", [](pb::ResourceRequest* r) { r->set_gpu_count(0); },
       kInvalid, "gpu_count: must be 1..1024, got 0"},
      {"too many gpus", [](pb::ResourceRequest* r) { r->set_gpu_count(5000); },
       kInvalid, "gpu_count"},
      {"short", [](pb::ResourceRequest* r) { r->set_max_duration_s(1); },
       kInvalid, "max_duration_s: must be 60..31536000, got 1"},
      {"model and class",
       [](pb::ResourceRequest* r) {
         r->set_hardware_class(pb::HARDWARE_CLASS_OTHER);
       },
       kInvalid, "exactly one"},
      {"unknown model",
       [](pb::ResourceRequest* r) { r->set_gpu_model("B200"); }, kPrecondition,
       "no approved, unrelated cluster offers 1 × B200"},
      {"more than any cluster has",
       [](pb::ResourceRequest* r) { r->set_gpu_count(9); }, kPrecondition,
       "offers 9 × H100"},
      {"another's voucher",
       [](pb::ResourceRequest* r) { r->set_voucher_id("CV-2025-000001"); },
       absl::StatusCode::kNotFound, "voucher CV-2025-000001 not found"},
  };
  EXPECT_EQ(other.voucher_id(), "CV-2025-000001");
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    pb::Command command =
        NewCommand(EnterprisePrincipal("E-000001"), absl::StrCat("bad-", ++i));
    pb::ResourceRequest* r = command.mutable_allocate()->mutable_resources();
    r->set_gpu_model("H100");
    r->set_gpu_count(1);
    r->set_max_duration_s(3600);
    c.mutate(r);
    ExpectRejected(std::move(command), c.code, c.message);
  }
}

TEST_F(StateMachineTest, QueueWaitsForCapacityAndReturnsExcessHold) {
  ASSERT_OK_AND_ASSIGN(const pb::Voucher v,
                       driver_.Issue("P-000001", "E-000003", 10'000 * kYuan));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation first,
                       driver_.Allocate("E-000003", "H100", 8, 3600));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation second,
                       driver_.Allocate("E-000003", "H100", 8, 3600));
  EXPECT_EQ(first.cluster_id(), "sz-b");
  EXPECT_EQ(second.cluster_id(), "hz-a");
  pb::Command busy = NewCommand(EnterprisePrincipal("E-000003"), "busy");
  busy.mutable_allocate()->mutable_resources()->set_gpu_model("H100");
  busy.mutable_allocate()->mutable_resources()->set_gpu_count(1);
  busy.mutable_allocate()->mutable_resources()->set_max_duration_s(3600);
  ExpectRejected(busy, absl::StatusCode::kResourceExhausted,
                 "wait in the queue (queue_if_busy)");

  ASSERT_OK_AND_ASSIGN(
      const pb::Allocation queued,
      driver_.Allocate("E-000003", "H100", 1, 3600, /*queue_if_busy=*/true));
  EXPECT_EQ(queued.state(), pb::ALLOCATION_STATE_PENDING);
  EXPECT_EQ(queued.held_fen(), 400);  // at the highest price, 20.00 × 20%
  const int64_t available = Voucher(v.voucher_id()).available_fen();

  driver_.Advance(absl::Minutes(10));
  ASSERT_THAT(driver_.Release("E-000003", first.allocation_id()), IsOk());
  const pb::Allocation placed = Allocation(queued.allocation_id());
  EXPECT_EQ(placed.state(), pb::ALLOCATION_STATE_ASSIGNED);
  EXPECT_EQ(placed.cluster_id(), "sz-b");
  EXPECT_EQ(placed.held_fen(), 360);
  // 40 fen of excess hold came back at once; the released allocation's
  // hold waits for the grace period.
  EXPECT_EQ(Voucher(v.voucher_id()).available_fen(), available + 40);
  EXPECT_EQ(Allocation(first.allocation_id()).held_fen(), 8 * 1800 * 2 / 10);
  ASSERT_THAT(driver_.Tick(), IsOk());
  EXPECT_EQ(Allocation(first.allocation_id()).held_fen(), 8 * 1800 * 2 / 10);
  driver_.Advance(absl::Seconds(300));
  ASSERT_THAT(driver_.Tick(), IsOk());
  EXPECT_EQ(Allocation(first.allocation_id()).held_fen(), 0);
  EXPECT_EQ(Voucher(v.voucher_id()).available_fen(),
            available + 40 + 8 * 1800 * 2 / 10);
}

// Reports for allocation `id` (on "sz-b", which accepted its first record,
// up to `t30`) that wait for a resend — a gap, an interval ending in the
// future by the scheduler's clock — or that come from another cluster's
// agent, which learns nothing.
void ReportOutOfTurn(Driver& driver, const std::string& id, absl::Time t30) {
  ASSERT_OK_AND_ASSIGN(
      pb::UsageAck ack,
      driver.Report("sz-b", id, 3, t30, t30 + absl::Minutes(1), 1000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_RETRY);
  EXPECT_THAT(ack.reason(), HasSubstr("sequence: expected 2, got 3"));
  ASSERT_OK_AND_ASSIGN(
      ack, driver.Report("sz-b", id, 2, t30, t30 + absl::Minutes(7), 1000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_RETRY);
  EXPECT_THAT(ack.reason(), HasSubstr("is in the future"));
  ASSERT_OK_AND_ASSIGN(
      ack, driver.Report("hz-a", id, 2, t30, t30 + absl::Minutes(1), 100));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_REJECTED);
  ASSERT_OK_AND_ASSIGN(
      pb::UsageAck unknown,
      driver.Report("hz-a", "AL-404", 1, t30, t30 + absl::Minutes(1), 100));
  EXPECT_THAT(unknown.reason(),
              ::testing::StartsWith("allocation_id: \"AL-404\" is not an "
                                    "allocation of cluster hz-a "));
}

TEST_F(StateMachineTest, UsageIsChargedCumulativelyAndOnce) {
  ASSERT_OK_AND_ASSIGN(const pb::Voucher v,
                       driver_.Issue("P-000001", "E-000001", 10'000 * kYuan));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 2, 3600));
  const std::string& id = a.allocation_id();
  const absl::Time t0 = driver_.now();
  driver_.Advance(absl::Minutes(30));
  // 2 GPUs × 30 min = 36.00 × 0.5 = 18.00 cost, 3.60 subsidy.
  ASSERT_OK_AND_ASSIGN(
      pb::UsageAck ack,
      driver_.Report("sz-b", id, 1, t0, t0 + absl::Minutes(30), 3'600'000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED);
  EXPECT_EQ(ack.subsidy_fen(), 360);
  EXPECT_FALSE(ack.stop());
  // The same record again is a duplicate, charged nothing.
  const std::string before = state_.Digest();
  ASSERT_OK_AND_ASSIGN(ack, driver_.Report("sz-b", id, 1, t0,
                                           t0 + absl::Minutes(30), 3'600'000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_DUPLICATE);
  EXPECT_EQ(state_.Digest(), before);
  const absl::Time t30 = t0 + absl::Minutes(30);
  driver_.Advance(absl::Minutes(1));
  ReportOutOfTurn(driver_, id, t30);
  EXPECT_EQ(state_.Digest(), before);
  // A record refused for its content uses up its sequence number, so the
  // records after it are not blocked; resending it is a duplicate.
  ASSERT_OK_AND_ASSIGN(ack,
                       driver_.Report("sz-b", id, 2, t30 - absl::Seconds(1),
                                      t30 + absl::Minutes(1), 1000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(ack.reason(), HasSubstr("overlaps the previous record"));
  EXPECT_EQ(Allocation(id).last_sequence(), 2);
  ASSERT_OK_AND_ASSIGN(ack,
                       driver_.Report("sz-b", id, 2, t30 - absl::Seconds(1),
                                      t30 + absl::Minutes(1), 1000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_DUPLICATE);
  ASSERT_OK_AND_ASSIGN(
      ack, driver_.Report("sz-b", id, 3, t30, t30 + absl::Minutes(1), 120'001));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(ack.reason(), HasSubstr("gpu_ms: must be 0..120000"));
  EXPECT_EQ(Allocation(id).charged_fen(), 360);
  EXPECT_EQ(Allocation(id).used_gpu_ms(), 3'600'000);

  // Slicing the rest oddly still sums to the exact figure.
  driver_.Advance(absl::Minutes(29));
  absl::Time t = t30;
  int64_t seq = 4;
  for (int64_t ms : {1, 999, 7'777, 1'790'000 - 8'777}) {
    ASSERT_OK_AND_ASSIGN(
        ack, driver_.Report("sz-b", id, seq++, t, t + absl::Milliseconds(ms),
                            2 * ms));
    EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED);
    t += absl::Milliseconds(ms);
  }
  ASSERT_OK_AND_ASSIGN(
      ack,
      driver_.Report("sz-b", id, seq, t, t0 + absl::Hours(1),
                     2 * absl::ToInt64Milliseconds(t0 + absl::Hours(1) - t)));
  EXPECT_TRUE(ack.stop());
  const pb::Allocation done = Allocation(id);
  EXPECT_EQ(done.charged_fen(), 720);
  EXPECT_EQ(done.held_fen(), 0);
  EXPECT_EQ(done.state(), pb::ALLOCATION_STATE_ENDED);
  EXPECT_EQ(done.end_reason(), pb::END_REASON_DURATION_REACHED);
  EXPECT_EQ(done.used_gpu_ms(), 2 * 3'600'000);
  EXPECT_EQ(done.cost_fen(), 3600);
  EXPECT_EQ(Voucher(v.voucher_id()).charged_fen(), 720);
  EXPECT_EQ(state_.ProviderView("PR-000002")->payable_fen(), 720);
}

TEST_F(StateMachineTest, UsageBeforeTheLifeIsRejectedAndLateUsageUnsubsidised) {
  ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 10'000 * kYuan), IsOk());
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 1, 7200));
  const std::string& id = a.allocation_id();
  const absl::Time t0 = driver_.now();
  driver_.Advance(absl::Minutes(20));
  ASSERT_THAT(driver_.Release("E-000001", id), IsOk());
  const absl::Time released = driver_.now();
  driver_.Advance(absl::Minutes(1));
  pb::UsageAck ack;
  ASSERT_OK_AND_ASSIGN(ack, driver_.Report("sz-b", id, 1, t0 - absl::Seconds(1),
                                           t0 + absl::Minutes(1), 1000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(ack.reason(), HasSubstr("before the allocation was assigned"));
  EXPECT_EQ(Allocation(id).used_gpu_ms(), 0);
  // Within the grace period, usage up to the release is charged; what runs
  // past the release is not subsidised.
  ASSERT_OK_AND_ASSIGN(
      ack, driver_.Report("sz-b", id, 2, t0, t0 + absl::Minutes(10), 600'000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED);
  EXPECT_EQ(ack.subsidy_fen(), 60);  // 10 min × 18.00/h × 20%
  EXPECT_TRUE(ack.stop());
  ASSERT_OK_AND_ASSIGN(ack,
                       driver_.Report("sz-b", id, 3, t0 + absl::Minutes(10),
                                      released + absl::Seconds(30), 630'000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED);
  EXPECT_EQ(Allocation(id).unsubsidised_gpu_ms(), 30'000);
  const int64_t charged = Allocation(id).charged_fen();
  // A record wholly after the end (the agent had not yet learnt of it) is
  // recorded at its cost, without subsidy.
  ASSERT_OK_AND_ASSIGN(
      ack, driver_.Report("sz-b", id, 4, released + absl::Seconds(30),
                          released + absl::Seconds(40), 10'000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED);
  EXPECT_EQ(ack.subsidy_fen(), 0);
  EXPECT_EQ(Allocation(id).unsubsidised_gpu_ms(), 40'000);
  EXPECT_EQ(Allocation(id).charged_fen(), charged);
  // After the grace period the hold is gone; late usage is recorded, never
  // charged, never dropped.
  driver_.Advance(absl::Minutes(10));
  ASSERT_THAT(driver_.Tick(300), IsOk());
  EXPECT_EQ(Allocation(id).held_fen(), 0);
  ASSERT_OK_AND_ASSIGN(
      ack, driver_.Report("sz-b", id, 5, released + absl::Seconds(40),
                          released + absl::Seconds(50), 10'000));
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED);
  EXPECT_EQ(ack.subsidy_fen(), 0);
  EXPECT_EQ(Allocation(id).unsubsidised_gpu_ms(), 50'000);
  EXPECT_EQ(Allocation(id).charged_fen(), charged);
}

TEST_F(StateMachineTest, ExpiryEndsAllocationsAndReturnsTheRest) {
  pb::Command c = NewCommand(AdminPrincipal(), "short-voucher");
  c.mutable_issue_voucher()->set_program_id("P-000001");
  c.mutable_issue_voucher()->set_enterprise_id("E-000001");
  c.mutable_issue_voucher()->set_face_value_fen(100 * kYuan);
  *c.mutable_issue_voucher()->mutable_valid_until() =
      ToProto(driver_.now() + absl::Hours(2));
  ASSERT_OK_AND_ASSIGN(const pb::Voucher v, driver_.Call<pb::Voucher>(c));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 1, 3 * 3600));
  driver_.Advance(absl::Hours(2));
  ASSERT_THAT(driver_.Tick(300), IsOk());
  pb::Voucher expired = Voucher(v.voucher_id());
  EXPECT_EQ(expired.state(), pb::VOUCHER_STATE_EXPIRED);
  EXPECT_EQ(Allocation(a.allocation_id()).end_reason(),
            pb::END_REASON_VOUCHER_EXPIRED);
  EXPECT_EQ(expired.available_fen(), 0);
  EXPECT_EQ(expired.returned_fen(), 100 * kYuan - a.held_fen());
  driver_.Advance(absl::Minutes(5));
  ASSERT_THAT(driver_.Tick(300), IsOk());
  expired = Voucher(v.voucher_id());
  EXPECT_EQ(expired.returned_fen(), 100 * kYuan);
  EXPECT_EQ(expired.held_fen(), 0);
  ASSERT_OK_AND_ASSIGN(const pb::Program p, state_.ProgramView("P-000001"));
  EXPECT_EQ(p.unissued_fen(), 250'000'000 * kYuan);
  EXPECT_EQ(p.returned_fen(), 100 * kYuan);
}

TEST_F(StateMachineTest, SuspendResumeRevoke) {
  ASSERT_OK_AND_ASSIGN(const pb::Voucher v,
                       driver_.Issue("P-000001", "E-000001", 100 * kYuan));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 1, 3600));
  pb::Command suspend = NewCommand(AdminPrincipal(), "suspend");
  suspend.mutable_suspend_voucher()->set_voucher_id(v.voucher_id());
  ExpectRejected(suspend, kInvalid, "reason: required");
  suspend.mutable_suspend_voucher()->set_reason("audit");
  ASSERT_THAT(driver_.Apply(suspend), IsOk());
  EXPECT_EQ(Voucher(v.voucher_id()).state(), pb::VOUCHER_STATE_SUSPENDED);
  EXPECT_EQ(Allocation(a.allocation_id()).end_reason(),
            pb::END_REASON_VOUCHER_SUSPENDED);
  pb::Command alloc =
      NewCommand(EnterprisePrincipal("E-000001"), "while-suspended");
  alloc.mutable_allocate()->mutable_resources()->set_gpu_model("H100");
  alloc.mutable_allocate()->mutable_resources()->set_gpu_count(1);
  alloc.mutable_allocate()->mutable_resources()->set_max_duration_s(600);
  ExpectRejected(alloc, kPrecondition, "no active voucher");

  pb::Command resume = NewCommand(AdminPrincipal(), "resume");
  resume.mutable_resume_voucher()->set_voucher_id(v.voucher_id());
  ASSERT_THAT(driver_.Apply(resume), IsOk());
  EXPECT_EQ(Voucher(v.voucher_id()).state(), pb::VOUCHER_STATE_ACTIVE);
  pb::Command resume_again = resume;
  resume_again.set_request_id("resume-again");
  ExpectRejected(resume_again, kPrecondition,
                 "only a suspended voucher can be resumed");

  pb::Command revoke = NewCommand(AdminPrincipal(), "revoke");
  revoke.mutable_revoke_voucher()->set_voucher_id(v.voucher_id());
  revoke.mutable_revoke_voucher()->set_reason("fraud");
  ASSERT_THAT(driver_.Apply(revoke), IsOk());
  const pb::Voucher revoked = Voucher(v.voucher_id());
  EXPECT_EQ(revoked.state(), pb::VOUCHER_STATE_REVOKED);
  EXPECT_EQ(revoked.available_fen(), 0);
  EXPECT_EQ(revoked.returned_fen() + revoked.held_fen(), 100 * kYuan);
  revoke.set_request_id("revoke-again");
  ExpectRejected(revoke, kPrecondition, "already revoked");
}

TEST_F(StateMachineTest, AdjustAndSettle) {
  ASSERT_OK_AND_ASSIGN(const pb::Voucher v,
                       driver_.Issue("P-000001", "E-000001", 100 * kYuan));
  pb::Command adjust = NewCommand(AdminPrincipal(), "adjust-up");
  adjust.mutable_adjust_voucher()->set_voucher_id(v.voucher_id());
  adjust.mutable_adjust_voucher()->set_delta_fen(50 * kYuan);
  adjust.mutable_adjust_voucher()->set_reason("top-up approved 2025-03-01");
  ASSERT_THAT(driver_.Apply(adjust), IsOk());
  EXPECT_EQ(Voucher(v.voucher_id()).face_value_fen(), 150 * kYuan);
  adjust.set_request_id("adjust-down-too-far");
  adjust.mutable_adjust_voucher()->set_delta_fen(-151 * kYuan);
  ExpectRejected(adjust, kPrecondition,
                 "insufficient balance: need 151.00 CNY, have 150.00 CNY");
  adjust.set_request_id("adjust-zero");
  adjust.mutable_adjust_voucher()->set_delta_fen(0);
  ExpectRejected(adjust, kInvalid, "delta_fen: must not be zero");

  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 1, 3600));
  driver_.Advance(absl::Hours(1));
  ASSERT_THAT(
      driver_.Report("sz-b", a.allocation_id(), 1,
                     driver_.now() - absl::Hours(1), driver_.now(), 3'600'000),
      IsOk());
  EXPECT_EQ(state_.ProviderView("PR-000002")->payable_fen(), 360);
  pb::Command settle = NewCommand(AdminPrincipal(), "settle");
  settle.mutable_settle_provider()->set_provider_id("PR-000002");
  settle.mutable_settle_provider()->set_amount_fen(361);
  settle.mutable_settle_provider()->set_reference("bank-2025-03-001");
  ExpectRejected(settle, kInvalid, "amount_fen: must be 1..360");
  settle.mutable_settle_provider()->set_amount_fen(360);
  ASSERT_OK_AND_ASSIGN(const pb::SettleProviderResponse paid,
                       driver_.Call<pb::SettleProviderResponse>(settle));
  EXPECT_EQ(paid.provider().payable_fen(), 0);
  EXPECT_EQ(paid.provider().paid_fen(), 360);
  EXPECT_EQ(paid.entry().kind(), pb::ENTRY_KIND_SETTLE);
  EXPECT_EQ(paid.entry().memo(), "bank-2025-03-001");
}

TEST_F(StateMachineTest, ApplicationsFlowIntoVouchers) {
  pb::Command apply = NewCommand(EnterprisePrincipal("E-000003"), "apply");
  apply.mutable_apply()->set_program_id("P-000001");
  apply.mutable_apply()->set_requested_fen(500'000 * kYuan);
  apply.mutable_apply()->set_purpose("训练人形机器人运动控制模型");
  ASSERT_OK_AND_ASSIGN(const pb::Application application,
                       driver_.Call<pb::Application>(apply));
  EXPECT_EQ(application.state(), pb::APPLICATION_STATE_PENDING);
  pb::Command approve = NewCommand(AdminPrincipal(), "approve");
  approve.mutable_approve_application()->set_application_id(
      application.application_id());
  approve.mutable_approve_application()->set_approved_fen(600'000 * kYuan);
  ExpectRejected(approve, kInvalid, "approved_fen: must be 1..50000000");
  approve.mutable_approve_application()->set_approved_fen(300'000 * kYuan);
  ASSERT_OK_AND_ASSIGN(const pb::Application approved,
                       driver_.Call<pb::Application>(approve));
  EXPECT_EQ(approved.state(), pb::APPLICATION_STATE_APPROVED);
  EXPECT_EQ(Voucher(approved.voucher_id()).face_value_fen(), 300'000 * kYuan);
  EXPECT_EQ(Voucher(approved.voucher_id()).application_id(),
            application.application_id());
  pb::Command reject = NewCommand(AdminPrincipal(), "reject");
  reject.mutable_reject_application()->set_application_id(
      application.application_id());
  reject.mutable_reject_application()->set_reason("duplicate");
  ExpectRejected(reject, kPrecondition, "already approved");
}

TEST_F(StateMachineTest, TimeNeverRunsBackwards) {
  driver_.Advance(-absl::Seconds(1));
  pb::Command c = NewCommand(AdminPrincipal(), "late");
  c.mutable_register_provider()->set_name("x");
  c.mutable_register_provider()->set_credit_code("91110108551385082Q");
  ExpectRejected(c, kInvalid, "is before the previous command's");
}

TEST_F(StateMachineTest, ReplayingTheLogRebuildsTheSameState) {
  ASSERT_OK_AND_ASSIGN(const pb::Voucher v,
                       driver_.Issue("P-000001", "E-000001", 100 * kYuan));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 1, 3600));
  driver_.Advance(absl::Minutes(30));
  ASSERT_THAT(driver_.Report("sz-b", a.allocation_id(), 1,
                             driver_.now() - absl::Minutes(30), driver_.now(),
                             1'800'000),
              IsOk());
  ASSERT_THAT(driver_.Release("E-000001", a.allocation_id()), IsOk());
  driver_.Advance(absl::Minutes(10));
  ASSERT_THAT(driver_.Tick(), IsOk());
  StateMachine replica;
  for (const pb::Command& c : driver_.log()) {
    ASSERT_OK_AND_ASSIGN(const core::Outcome outcome, replica.Apply(c));
    EXPECT_TRUE(outcome.changed) << c.DebugString();
  }
  EXPECT_EQ(replica.Digest(), state_.Digest());
  EXPECT_EQ(replica.ledger().last_hash(), state_.ledger().last_hash());
  EXPECT_EQ(replica.VoucherView(v.voucher_id())->available_fen(),
            Voucher(v.voucher_id()).available_fen());
}

}  // namespace
}  // namespace computevoucher::core

namespace computevoucher::core {
namespace {

// Tokens' revocations and uses (issue 16): a revocation logged before
// they were recorded replays as before, a recorded one says when and by
// whom, and a tick records uses of known tokens an hour or more after the
// recorded one, never after the tick.
TEST_F(StateMachineTest, TokensRecordRevocationsAndUses) {
  auto create = [&](const std::string& id) {
    pb::Command c = NewCommand(AdminPrincipal(), id);
    c.mutable_create_token()->mutable_request()->set_role(pb::ROLE_AUDITOR);
    c.mutable_create_token()->set_secret_sha256(std::string(31, 'a') + id[0]);
    return driver_.Call<pb::CreateTokenResponse>(c)->token().token_id();
  };
  const std::string old_style = create("1");
  const std::string recorded = create("2");
  pb::Command revoke = NewCommand(AdminPrincipal(), "revoke-1");
  revoke.mutable_revoke_token()->set_token_id(old_style);
  const absl::StatusOr<pb::Token> before = driver_.Call<pb::Token>(revoke);
  ASSERT_THAT(before.status(), IsOk());
  EXPECT_TRUE(before->revoked());
  EXPECT_FALSE(before->has_revoked_at());
  EXPECT_EQ(before->revoked_by(), "");

  pb::Command stamped = NewCommand(AdminPrincipal(), "revoke-2");
  stamped.mutable_principal()->set_peer("ipv4:10.0.0.5:4242");
  stamped.mutable_revoke_token_recorded()->mutable_request()->set_token_id(
      recorded);
  const absl::StatusOr<pb::Token> now = driver_.Call<pb::Token>(stamped);
  ASSERT_THAT(now.status(), IsOk());
  EXPECT_EQ(now->revoked_at().seconds(), absl::ToUnixSeconds(driver_.now()));
  EXPECT_EQ(now->revoked_by(), AdminPrincipal().token_id());
  // A retry over another connection is the same request.
  stamped.mutable_principal()->set_peer("ipv4:10.0.0.5:5151");
  EXPECT_THAT(driver_.Apply(stamped).status(), IsOk());

  // Uses: unknown tokens and times after the tick are passed over; an
  // older use never replaces a newer one.
  const absl::Time t0 = driver_.now();
  driver_.Advance(absl::Minutes(5));
  auto tick = [&](std::vector<std::pair<std::string, absl::Time>> uses) {
    pb::Command c = NewCommand(pb::Principal(), "");
    c.mutable_tick()->set_usage_grace_s(300);
    for (const auto& [id, at] : uses) {
      pb::TokenUse* use = c.mutable_tick()->add_token_uses();
      use->set_token_id(id);
      *use->mutable_at() = ToProto(at);
    }
    return driver_.Apply(c);
  };
  ASSERT_THAT(tick({{recorded, t0 + absl::Minutes(2)},
                    {"TK-999999", t0},
                    {old_style, driver_.now() + absl::Minutes(1)}})
                  .status(),
              IsOk());
  EXPECT_EQ(state_.tokens().at(recorded).last_used_at().seconds(),
            absl::ToUnixSeconds(t0 + absl::Minutes(2)));
  EXPECT_FALSE(state_.tokens().at(old_style).has_last_used_at());
  EXPECT_FALSE(state_.tokens().contains("TK-999999"));
  // Older, or within the hour of the recorded use: not recorded.
  for (const absl::Time at : {t0, t0 + absl::Minutes(50)}) {
    driver_.Advance(absl::Minutes(50));
    const absl::StatusOr<Outcome> skipped = tick({{recorded, at}});
    ASSERT_THAT(skipped.status(), IsOk());
    EXPECT_FALSE(skipped->changed);
  }
  EXPECT_EQ(state_.tokens().at(recorded).last_used_at().seconds(),
            absl::ToUnixSeconds(t0 + absl::Minutes(2)));
}

}  // namespace
}  // namespace computevoucher::core
