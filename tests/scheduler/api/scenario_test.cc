// A program run end to end through the API, modelled on Hangzhou's
// published measures: ¥250M budget, 30% domestic / 20% other / 50% SME,
// ¥8M cap per enterprise, two providers (one related to an enterprise),
// three enterprises; applications, allocations, usage, revocation and
// expiry. Every balance, payable, statement and settlement total is checked
// to the fen, and again after a restart.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/api/api_fixture.h"

namespace computevoucher::testing {
namespace {

using ::testing::HasSubstr;

class ScenarioTest : public ApiTest {
 protected:
  pb::Allocation Allocate(const std::string& token, const std::string& model,
                          int gpus, int64_t hours,
                          const std::string& voucher_id = "") {
    pb::AllocateRequest r;
    r.set_request_id(NextRequestId());
    r.mutable_resources()->set_gpu_model(model);
    r.mutable_resources()->set_gpu_count(gpus);
    r.mutable_resources()->set_max_duration_s(hours * 3600);
    r.mutable_resources()->set_voucher_id(voucher_id);
    pb::Allocation a;
    grpc::Status s = enterprise_->Allocate(As(token).get(), r, &a);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return a;
  }

  pb::UsageAck Report(const std::string& token, const pb::Allocation& a,
                      int64_t sequence, absl::Time start, absl::Time end) {
    pb::ReportUsageRequest r;
    r.set_request_id(NextRequestId());
    pb::UsageRecord* u = r.add_records();
    u->set_allocation_id(a.allocation_id());
    u->set_sequence(sequence);
    *u->mutable_start() = ToProto(start);
    *u->mutable_end() = ToProto(end);
    u->set_gpu_ms(a.gpu_count() * absl::ToInt64Milliseconds(end - start));
    u->set_mean_utilization_bp(9000);
    pb::ReportUsageResponse response;
    grpc::Status s = agent_->ReportUsage(As(token).get(), r, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.acks(0);
  }

  pb::Voucher Voucher(const std::string& id) {
    pb::AdminListVouchersRequest r;
    pb::AdminListVouchersResponse out;
    EXPECT_TRUE(admin_->ListVouchers(As(auditor_token_).get(), r, &out).ok());
    for (const pb::Voucher& v : out.vouchers()) {
      if (v.voucher_id() == id) return v;
    }
    ADD_FAILURE() << "no voucher " << id;
    return pb::Voucher();
  }

  pb::Provider Provider(const std::string& id) {
    pb::ListProvidersRequest r;
    pb::ListProvidersResponse out;
    EXPECT_TRUE(admin_->ListProviders(As(auditor_token_).get(), r, &out).ok());
    for (const pb::Provider& p : out.providers()) {
      if (p.provider_id() == id) return p;
    }
    ADD_FAILURE() << "no provider " << id;
    return pb::Provider();
  }

  pb::Statement Statement(const std::string& token) {
    pb::GetStatementRequest r;
    *r.mutable_period_start() = ToProto(StartOfDay(absl::CivilDay(2025, 3, 1)));
    *r.mutable_period_end() = ToProto(StartOfDay(absl::CivilDay(2025, 4, 1)));
    pb::Statement out;
    grpc::Status s = enterprise_->GetStatement(As(token).get(), r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  // The scenario's steps, in order.

  // E3, a research platform, applies; the office approves part of it.
  void E3AppliesAndIsApprovedInPart() {
    pb::ApplyRequest apply;
    apply.set_request_id(NextRequestId());
    apply.set_program_id("P-000001");
    apply.set_requested_fen(500'000'00);
    apply.set_purpose("人形机器人全身运动控制大模型训练");
    pb::Application application;
    ASSERT_TRUE(
        enterprise_->Apply(As(e3_token_).get(), apply, &application).ok());
    pb::ApproveApplicationRequest approve;
    approve.set_request_id(NextRequestId());
    approve.set_application_id(application.application_id());
    approve.set_approved_fen(300'000'00);
    ASSERT_TRUE(
        admin_
            ->ApproveApplication(As(admin_token_).get(), approve, &application)
            .ok());
    EXPECT_EQ(application.voucher_id(), "CV-2025-000001");
  }

  // Vouchers for E1 and E2, one refused over the enterprise cap, and a short
  // one for E1.
  void OfficeIssuesVouchers() {
    EXPECT_EQ(Issue("E-000001", 1'000'000'00).voucher_id(), "CV-2025-000002");
    EXPECT_EQ(Issue("E-000002", 200'000'00).voucher_id(), "CV-2025-000003");
    {
      pb::IssueVoucherRequest r;
      r.set_request_id(NextRequestId());
      r.set_program_id("P-000001");
      r.set_enterprise_id("E-000001");
      r.set_face_value_fen(7'500'000'00);
      pb::Voucher v;
      grpc::Status s = admin_->IssueVoucher(As(admin_token_).get(), r, &v);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
      EXPECT_THAT(s.error_message(),
                  HasSubstr("need 7500000.00 CNY, remaining 7000000.00 CNY"));
    }
    {
      const pb::Voucher v = Issue("E-000001", 1'000'00, "P-000001",
                                  EndOfDay(absl::CivilDay(2025, 3, 2)));
      EXPECT_EQ(v.voucher_id(), "CV-2025-000004");
    }
  }

  // Quotes, then allocations on the right clusters at the right ratios.
  void EnterprisesQuoteAndAllocate() {
    pb::QuoteRequest quote;
    quote.mutable_resources()->set_gpu_model("910B");
    quote.mutable_resources()->set_gpu_count(4);
    quote.mutable_resources()->set_max_duration_s(10 * 3600);
    quote.mutable_resources()->set_voucher_id("CV-2025-000002");
    pb::QuoteResponse priced;
    ASSERT_TRUE(enterprise_->Quote(As(e1_token_).get(), quote, &priced).ok());
    EXPECT_EQ(priced.amounts().cost_fen(), 48'000);
    EXPECT_EQ(priced.amounts().subsidy_fen(), 14'400);
    EXPECT_EQ(priced.amounts().self_pay_fen(), 33'600);
    EXPECT_EQ(priced.cluster_id(), "hz-a");

    a1_ = Allocate(e1_token_, "910B", 4, 10, "CV-2025-000002");
    EXPECT_EQ(a1_.held_fen(), 14'400);
    a2_ = Allocate(e2_token_, "H100", 2, 5);
    EXPECT_EQ(a2_.cluster_id(), "hz-a");  // sz-b's provider is related to E2
    EXPECT_EQ(a2_.ratio_bp(), 5000);      // SME
    EXPECT_EQ(a2_.held_fen(), 10'000);
    a3_ = Allocate(e3_token_, "H100", 8, 2);
    EXPECT_EQ(a3_.cluster_id(), "sz-b");  // cheaper
    EXPECT_EQ(a3_.held_fen(), 5'760);
  }

  // Agents see what to run and start it.
  void AgentsStartTheAllocations() {
    for (const auto& [token, ids] :
         {std::pair{hz_token_,
                    std::vector{a1_.allocation_id(), a2_.allocation_id()}},
          std::pair{sz_token_, std::vector{a3_.allocation_id()}}}) {
      pb::HeartbeatRequest beat;
      beat.set_request_id(NextRequestId());
      for (const std::string& id : ids) {
        pb::ObservedAllocation* o = beat.add_allocations();
        o->set_allocation_id(id);
        o->set_running(true);
      }
      pb::HeartbeatResponse desired;
      ASSERT_TRUE(agent_->Heartbeat(As(token).get(), beat, &desired).ok());
      EXPECT_EQ(desired.allocations_size(), static_cast<int>(ids.size()));
      EXPECT_EQ(desired.heartbeat_interval_s(), 10);
    }
  }

  // First hour of usage.
  void AgentsReportTheFirstHour() {
    clock_.Advance(absl::Hours(1));
    const absl::Time t1 = t0_ + absl::Hours(1);
    EXPECT_EQ(Report(hz_token_, a1_, 1, t0_, t1).subsidy_fen(), 1'440);
    EXPECT_EQ(Report(hz_token_, a2_, 1, t0_, t1).subsidy_fen(), 2'000);
    EXPECT_EQ(Report(sz_token_, a3_, 1, t0_, t1).subsidy_fen(), 2'880);
  }

  // The office revokes E2's voucher: its allocation stops, what is left goes
  // back to the budget (the hold after the grace period).
  void OfficeRevokesE2sVoucher() {
    pb::RevokeVoucherRequest revoke;
    revoke.set_request_id(NextRequestId());
    revoke.set_voucher_id("CV-2025-000003");
    revoke.set_reason("申报材料不实");
    pb::Voucher revoked;
    ASSERT_TRUE(
        admin_->RevokeVoucher(As(admin_token_).get(), revoke, &revoked).ok());
    EXPECT_EQ(revoked.returned_fen(), 20'000'000 - 10'000);
  }

  // Second hour: E3's allocation uses its whole duration; E1 releases.
  void SecondHourEndsE3sAllocationAndE1Releases() {
    clock_.Advance(absl::Hours(1));
    const absl::Time t1 = t0_ + absl::Hours(1);
    const absl::Time t2 = t0_ + absl::Hours(2);
    EXPECT_EQ(Report(hz_token_, a1_, 2, t1, t2).subsidy_fen(), 1'440);
    const pb::UsageAck last = Report(sz_token_, a3_, 2, t1, t2);
    EXPECT_EQ(last.subsidy_fen(), 2'880);
    EXPECT_TRUE(last.stop());
    pb::ReleaseAllocationRequest release;
    release.set_request_id(NextRequestId());
    release.set_allocation_id(a1_.allocation_id());
    pb::Allocation released;
    ASSERT_TRUE(
        enterprise_->ReleaseAllocation(As(e1_token_).get(), release, &released)
            .ok());
    EXPECT_EQ(released.end_reason(), pb::END_REASON_RELEASED);
    server_->TickNow();
    clock_.Advance(absl::Minutes(10));
    server_->TickNow();
  }

  // The short voucher expires at the end of 2025-03-02, Shanghai time.
  void ShortVoucherExpires() {
    clock_.Set(EndOfDay(absl::CivilDay(2025, 3, 2)));
    server_->TickNow();
  }

  void OfficePaysHangzhouProvider() {
    pb::SettleProviderRequest pay;
    pay.set_request_id(NextRequestId());
    pay.set_provider_id("PR-000001");
    pay.set_amount_fen(4'880);
    pay.set_reference("杭州财政 2025-03 第1批");
    pb::SettleProviderResponse paid;
    ASSERT_TRUE(
        admin_->SettleProvider(As(admin_token_).get(), pay, &paid).ok());
  }

  // Checks every figure the scenario ends with.
  void ExpectFinalFigures() {
    const pb::Voucher v1 = Voucher("CV-2025-000002");
    EXPECT_EQ(v1.face_value_fen(), 100'000'000);
    EXPECT_EQ(v1.charged_fen(), 2'880);
    EXPECT_EQ(v1.held_fen(), 0);
    EXPECT_EQ(v1.available_fen(), 100'000'000 - 2'880);
    const pb::Voucher v2 = Voucher("CV-2025-000003");
    EXPECT_EQ(v2.state(), pb::VOUCHER_STATE_REVOKED);
    EXPECT_EQ(v2.charged_fen(), 2'000);
    EXPECT_EQ(v2.returned_fen(), 20'000'000 - 2'000);
    EXPECT_EQ(v2.available_fen(), 0);
    const pb::Voucher v3 = Voucher("CV-2025-000001");
    EXPECT_EQ(v3.face_value_fen(), 30'000'000);
    EXPECT_EQ(v3.charged_fen(), 5'760);
    EXPECT_EQ(v3.available_fen(), 30'000'000 - 5'760);
    const pb::Voucher v1b = Voucher("CV-2025-000004");
    EXPECT_EQ(v1b.state(), pb::VOUCHER_STATE_EXPIRED);
    EXPECT_EQ(v1b.returned_fen(), 100'000);

    pb::GetProgramRequest get;
    get.set_program_id("P-000001");
    pb::Program program;
    ASSERT_TRUE(
        admin_->GetProgram(As(auditor_token_).get(), get, &program).ok());
    EXPECT_EQ(program.issued_fen(), 150'100'000);
    EXPECT_EQ(program.charged_fen(), 10'640);
    EXPECT_EQ(program.held_fen(), 0);
    EXPECT_EQ(program.returned_fen(), 19'998'000 + 100'000);
    EXPECT_EQ(program.unissued_fen(),
              25'000'000'000 - 150'100'000 + 20'098'000);

    EXPECT_EQ(Provider("PR-000001").payable_fen(), 0);
    EXPECT_EQ(Provider("PR-000001").paid_fen(), 4'880);
    EXPECT_EQ(Provider("PR-000002").payable_fen(), 5'760);

    const pb::Statement e1 = Statement(e1_token_);
    ASSERT_EQ(e1.lines_size(), 1);
    EXPECT_EQ(e1.lines(0).gpu_model(), "910B");
    EXPECT_EQ(e1.lines(0).gpu_ms(), 2 * 4 * 3'600'000);
    EXPECT_EQ(e1.total().cost_fen(), 9'600);
    EXPECT_EQ(e1.total().subsidy_fen(), 2'880);
    EXPECT_EQ(e1.total().self_pay_fen(), 6'720);
    const pb::Statement e2 = Statement(e2_token_);
    EXPECT_EQ(e2.total().cost_fen(), 4'000);
    EXPECT_EQ(e2.total().subsidy_fen(), 2'000);
    EXPECT_EQ(e2.total().self_pay_fen(), 2'000);
    const pb::Statement e3 = Statement(e3_token_);
    EXPECT_EQ(e3.total().cost_fen(), 28'800);
    EXPECT_EQ(e3.total().subsidy_fen(), 5'760);
    EXPECT_EQ(e3.total().self_pay_fen(), 23'040);

    pb::GetSettlementRequest settle;
    *settle.mutable_period_start() =
        ToProto(StartOfDay(absl::CivilDay(2025, 3, 1)));
    *settle.mutable_period_end() =
        ToProto(StartOfDay(absl::CivilDay(2025, 4, 1)));
    pb::Settlement settlement;
    ASSERT_TRUE(
        admin_->GetSettlement(As(auditor_token_).get(), settle, &settlement)
            .ok());
    ASSERT_EQ(settlement.lines_size(), 3);
    EXPECT_EQ(settlement.lines(0).provider_id(), "PR-000001");
    EXPECT_EQ(settlement.lines(0).hardware_class(),
              pb::HARDWARE_CLASS_DOMESTIC);
    EXPECT_EQ(settlement.lines(0).records(), 2);
    EXPECT_EQ(settlement.lines(0).subsidy_fen(), 2'880);
    EXPECT_EQ(settlement.lines(1).hardware_class(), pb::HARDWARE_CLASS_OTHER);
    EXPECT_EQ(settlement.lines(1).subsidy_fen(), 2'000);
    EXPECT_EQ(settlement.lines(2).provider_id(), "PR-000002");
    EXPECT_EQ(settlement.lines(2).gpu_ms(), 2 * 8 * 3'600'000);
    EXPECT_EQ(settlement.lines(2).subsidy_fen(), 5'760);
    EXPECT_EQ(settlement.total_subsidy_fen(), 10'640);
    EXPECT_GT(settlement.journal_sequence(), 0);
    EXPECT_EQ(settlement.journal_hash().size(), 32u);

    pb::VerifyJournalRequest verify;
    pb::VerifyJournalResponse report;
    ASSERT_TRUE(
        admin_->VerifyJournal(As(auditor_token_).get(), verify, &report).ok());
    EXPECT_TRUE(report.ok())
        << (report.violations().empty() ? "" : report.violations(0));
  }

  absl::Time t0_;      // when the scenario starts
  pb::Allocation a1_;  // E1's, 4 × 910B for 10 hours on CV-2025-000002
  pb::Allocation a2_;  // E2's, 2 × H100 for 5 hours
  pb::Allocation a3_;  // E3's, 8 × H100 for 2 hours
};

TEST_F(ScenarioTest, HangzhouProgramToTheFen) {
  BuildWorld();
  t0_ = clock_.Now();
  ASSERT_NO_FATAL_FAILURE(E3AppliesAndIsApprovedInPart());
  ASSERT_NO_FATAL_FAILURE(OfficeIssuesVouchers());
  ASSERT_NO_FATAL_FAILURE(EnterprisesQuoteAndAllocate());
  ASSERT_NO_FATAL_FAILURE(AgentsStartTheAllocations());
  ASSERT_NO_FATAL_FAILURE(AgentsReportTheFirstHour());
  ASSERT_NO_FATAL_FAILURE(OfficeRevokesE2sVoucher());
  ASSERT_NO_FATAL_FAILURE(SecondHourEndsE3sAllocationAndE1Releases());
  ASSERT_NO_FATAL_FAILURE(ShortVoucherExpires());
  ASSERT_NO_FATAL_FAILURE(OfficePaysHangzhouProvider());

  ExpectFinalFigures();
  if (HasFailure()) return;

  // Everything survives a restart from the data directory.
  Restart();
  if (HasFatalFailure()) return;
  ExpectFinalFigures();
}

}  // namespace
}  // namespace computevoucher::testing
