// Retired allocations through the API (issue 15, item 2): once an ended
// allocation leaves the scheduler's memory, every reader still answers it
// from the store, as before and after a restart, and late usage for it is
// refused.
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/scheduler/api/api_fixture.h"

namespace computevoucher::testing {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kRetainS = 3600;

class RetirementApiTest : public ApiTest {
 protected:
  void Configure(pb::SchedulerConfig& config) override {
    config.set_retain_ended_s(kRetainS);
    config.set_usage_grace_s(300);
  }
  void SetUp() override {
    ApiTest::SetUp();
    BuildWorld();
    Issue("E-000003", 10'000'00);
  }

  pb::Allocation Allocate(const std::string& model) {
    pb::AllocateRequest r;
    r.set_request_id(NextRequestId());
    r.mutable_resources()->set_gpu_model(model);
    r.mutable_resources()->set_gpu_count(1);
    r.mutable_resources()->set_max_duration_s(24 * 3600);
    pb::Allocation a;
    grpc::Status s = enterprise_->Allocate(As(e3_token_).get(), r, &a);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return a;
  }

  grpc::Status Get(const std::string& token, const std::string& id,
                   pb::Allocation* out) {
    pb::GetAllocationRequest r;
    r.set_allocation_id(id);
    return enterprise_->GetAllocation(As(token).get(), r, out);
  }

  // Every allocation of E-000003 in `state`, a page of one at a time.
  std::vector<std::string> ListAll(pb::AllocationState state) {
    std::vector<std::string> ids;
    pb::ListAllocationsRequest r;
    r.set_state(state);
    r.mutable_page()->set_page_size(1);
    for (int pages = 0; pages < 10; ++pages) {
      pb::ListAllocationsResponse page;
      grpc::Status s =
          enterprise_->ListAllocations(As(e3_token_).get(), r, &page);
      EXPECT_TRUE(s.ok()) << s.error_message();
      for (const pb::Allocation& a : page.allocations())
        ids.push_back(a.allocation_id());
      if (page.next_page_token().empty()) break;
      r.mutable_page()->set_page_token(page.next_page_token());
    }
    return ids;
  }

  // Ticks after hz-a's agent beat, so that its cluster stays connected.
  void BeatAndTick() {
    pb::HeartbeatRequest r;
    r.set_request_id(NextRequestId());
    pb::HeartbeatResponse out;
    grpc::Status s = agent_->Heartbeat(As(hz_token_).get(), r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    server_->TickNow();
  }

  pb::UsageAck ReportOne(const std::string& id, int64_t sequence,
                         absl::Time start, absl::Time end) {
    pb::ReportUsageRequest report;
    report.set_request_id(NextRequestId());
    pb::UsageRecord* u = report.add_records();
    u->set_allocation_id(id);
    u->set_sequence(sequence);
    *u->mutable_start() = ToProto(start);
    *u->mutable_end() = ToProto(end);
    u->set_gpu_ms(absl::ToInt64Milliseconds(end - start));
    pb::ReportUsageResponse acks;
    grpc::Status s = agent_->ReportUsage(As(hz_token_).get(), report, &acks);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return acks.acks_size() == 1 ? acks.acks(0) : pb::UsageAck();
  }

  pb::Statement Statement(absl::Time from, absl::Time until) {
    pb::GetStatementRequest r;
    *r.mutable_period_start() = ToProto(from);
    *r.mutable_period_end() = ToProto(until);
    pb::Statement out;
    grpc::Status s = enterprise_->GetStatement(As(e3_token_).get(), r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  pb::Settlement Settlement(absl::Time from, absl::Time until) {
    pb::GetSettlementRequest r;
    r.set_provider_id("PR-000001");
    *r.mutable_period_start() = ToProto(from);
    *r.mutable_period_end() = ToProto(until);
    pb::Settlement out;
    grpc::Status s = admin_->GetSettlement(As(admin_token_).get(), r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    out.clear_journal_sequence();
    out.clear_journal_hash();
    return out;
  }
  // The auditor lists `id` first among hz-a's two allocations, and its one
  // usage record is listed with who used it.
  void ExpectListedWithItsUsage(const std::string& id) {
    pb::AdminListAllocationsRequest admin_list;
    admin_list.set_cluster_id("hz-a");
    pb::AdminListAllocationsResponse listed;
    ASSERT_TRUE(
        admin_->ListAllocations(As(auditor_token_).get(), admin_list, &listed)
            .ok());
    ASSERT_EQ(listed.allocations_size(), 2);
    EXPECT_EQ(listed.allocations(0).allocation_id(), id);
    pb::ListUsageRequest usage;
    usage.set_allocation_id(id);
    pb::ListUsageResponse page;
    ASSERT_TRUE(enterprise_->ListUsage(As(e3_token_).get(), usage, &page).ok());
    ASSERT_EQ(page.usage_size(), 1);
    EXPECT_EQ(page.usage(0).enterprise_id(), "E-000003");
    EXPECT_EQ(page.usage(0).provider_id(), "PR-000001");
  }
};

TEST_F(RetirementApiTest, ARetiredAllocationIsStillReadEverywhere) {
  const absl::Time from = clock_.Now();
  const pb::Allocation retiring = Allocate("910B");  // on hz-a
  const pb::Allocation staying = Allocate("910B");
  const std::string id = retiring.allocation_id();
  const absl::Time t0 = *FromProto("assigned_at", retiring.assigned_at());
  clock_.Advance(absl::Minutes(10));
  ASSERT_EQ(ReportOne(id, 1, t0, t0 + absl::Minutes(10)).result(),
            pb::USAGE_RESULT_ACCEPTED);
  pb::ReleaseAllocationRequest release;
  release.set_request_id(NextRequestId());
  release.set_allocation_id(id);
  pb::Allocation released;
  ASSERT_TRUE(
      enterprise_->ReleaseAllocation(As(e3_token_).get(), release, &released)
          .ok());
  clock_.Advance(absl::Seconds(301));
  BeatAndTick();  // the hold goes back after the grace period
  pb::Allocation ended;
  ASSERT_TRUE(Get(e3_token_, id, &ended).ok());
  ASSERT_EQ(ended.held_fen(), 0);
  ASSERT_GT(ended.charged_fen(), 0);
  const absl::Time until = clock_.Now() + absl::Hours(24);
  const pb::Statement statement = Statement(from, until);
  ASSERT_EQ(statement.lines_size(), 1);
  const pb::Settlement settlement = Settlement(from, until);
  ASSERT_GT(settlement.total_subsidy_fen(), 0);

  clock_.Advance(absl::Seconds(kRetainS));
  const absl::Time retired_at = clock_.Now();
  BeatAndTick();
  // Retired: late usage is refused, naming why.
  const pb::UsageAck late =
      ReportOne(id, 2, t0 + absl::Minutes(10), t0 + absl::Minutes(11));
  EXPECT_EQ(late.result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(late.reason(), HasSubstr("retired"));

  for (int restart = 0; restart < 2; ++restart) {
    SCOPED_TRACE(restart == 0 ? "retired" : "retired, then restarted");
    pb::Allocation got;
    grpc::Status s = Get(e3_token_, id, &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
    // As it was, and when it was retired.
    EXPECT_EQ(got.retired_at().seconds(), absl::ToUnixSeconds(retired_at));
    got.clear_retired_at();
    EXPECT_TRUE(MessageDifferencer::Equals(got, ended))
        << got.ShortDebugString() << "\nvs\n"
        << ended.ShortDebugString();
    // Another enterprise's is missing, as before.
    EXPECT_EQ(Get(e1_token_, id, &got).error_code(),
              grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(ListAll(pb::ALLOCATION_STATE_UNSPECIFIED),
                ElementsAre(id, staying.allocation_id()));
    EXPECT_THAT(ListAll(pb::ALLOCATION_STATE_ENDED), ElementsAre(id));
    EXPECT_THAT(ListAll(pb::ALLOCATION_STATE_ASSIGNED),
                ElementsAre(staying.allocation_id()));
    ExpectListedWithItsUsage(id);
    EXPECT_TRUE(MessageDifferencer::Equals(Statement(from, until), statement));
    EXPECT_TRUE(
        MessageDifferencer::Equals(Settlement(from, until), settlement));

    pb::VerifyJournalResponse verified;
    ASSERT_TRUE(admin_
                    ->VerifyJournal(As(admin_token_).get(),
                                    pb::VerifyJournalRequest(), &verified)
                    .ok());
    EXPECT_TRUE(verified.ok()) << verified.violations(0);
    Restart();
  }
}

}  // namespace
}  // namespace computevoucher::testing
