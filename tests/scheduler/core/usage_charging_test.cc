#include "scheduler/core/usage_charging.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/ledger.h"
#include "tests/scheduler/core/components_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::EnterprisePrincipal;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;

// E-000001 runs 2 × H100 on sz-b (18.00/GPU-hour, 20% subsidised) for up
// to an hour from t0.
class UsageChargingTest : public ComponentsTest {
 protected:
  void SetUp() override {
    ComponentsTest::SetUp();
    ASSERT_THAT(BuildWorld(), IsOk());
    ASSERT_THAT(Issue("E-000001", 10'000), IsOk());
    ASSERT_OK_AND_ASSIGN(allocation_, Allocate("E-000001", "H100", 2));
    ASSERT_EQ(allocation_.cluster_id(), "sz-b");
    t0_ = books_.now();
  }

  // Reports one record from `cluster_id`'s agent; the ack and whether the
  // report changed anything.
  absl::StatusOr<std::pair<pb::UsageAck, bool>> Report(
      const std::string& cluster_id, int64_t sequence, absl::Time start,
      absl::Time end, int64_t gpu_ms) {
    pb::ReportUsageRequest r;
    pb::UsageRecord* u = r.add_records();
    u->set_allocation_id(allocation_.allocation_id());
    u->set_sequence(sequence);
    *u->mutable_start() = ToProto(start);
    *u->mutable_end() = ToProto(end);
    u->set_gpu_ms(gpu_ms);
    ASSIGN_OR_RETURN(const Reply reply,
                     usage_.ReportUsage(AgentPrincipal(cluster_id), r));
    const auto& response =
        static_cast<const pb::ReportUsageResponse&>(*reply.response);
    return std::make_pair(response.acks(0), reply.changed);
  }

  const pb::Allocation& Allocation() {
    return placement_.Find(allocation_.allocation_id())->allocation;
  }

  pb::Allocation allocation_;
  absl::Time t0_;
};

TEST_F(UsageChargingTest, AcceptedUsageIsChargedToTheHold) {
  Advance(absl::Minutes(30));
  // 1 GPU-hour: 18.00 cost, 3.60 subsidy.
  ASSERT_OK_AND_ASSIGN(
      const auto result,
      Report("sz-b", 1, t0_, t0_ + absl::Minutes(30), 3'600'000));
  const auto& [ack, changed] = result;
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED);
  EXPECT_EQ(ack.subsidy_fen(), 360);
  EXPECT_FALSE(ack.stop());
  EXPECT_TRUE(changed);
  EXPECT_EQ(Allocation().charged_fen(), 360);
  EXPECT_EQ(Allocation().held_fen(), 720 - 360);
  EXPECT_EQ(books_.Balance(PayableAccount("PR-000002")), 360);
  const std::vector<pb::ChargedUsage> rows = usage_.TakeUsage();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].cost_fen(), 1800);
  EXPECT_EQ(rows[0].subsidy_fen(), 360);
  EXPECT_TRUE(usage_.TakeUsage().empty());
  EXPECT_THAT(usage_.MaxChargeFen(allocation_.allocation_id()), IsOk());
  EXPECT_EQ(*usage_.MaxChargeFen(allocation_.allocation_id()), 360);
}

TEST_F(UsageChargingTest, DuplicatesGapsAndOthersChangeNothing) {
  Advance(absl::Minutes(30));
  const absl::Time t30 = t0_ + absl::Minutes(30);
  ASSERT_THAT(Report("sz-b", 1, t0_, t30, 1000), IsOk());
  const struct {
    const char* cluster;
    int64_t sequence;
    absl::Duration length;
    pb::UsageResult result;
  } cases[] = {
      {"sz-b", 1, absl::Minutes(1), pb::USAGE_RESULT_DUPLICATE},
      {"sz-b", 3, absl::Minutes(1), pb::USAGE_RESULT_RETRY},     // a gap
      {"sz-b", 2, absl::Minutes(6), pb::USAGE_RESULT_RETRY},     // future
      {"hz-a", 2, absl::Minutes(1), pb::USAGE_RESULT_REJECTED},  // not its own
  };
  for (const auto& c : cases) {
    ASSERT_OK_AND_ASSIGN(const auto result, Report(c.cluster, c.sequence, t30,
                                                   t30 + c.length, 1000));
    EXPECT_EQ(result.first.result(), c.result) << c.cluster << c.sequence;
    EXPECT_FALSE(result.second) << c.cluster << c.sequence;
  }
  EXPECT_EQ(Allocation().last_sequence(), 1);
  EXPECT_EQ(usage_.TakeUsage().size(), 1u);
}

TEST_F(UsageChargingTest, ARefusedRecordUsesUpItsSequence) {
  Advance(absl::Minutes(30));
  const absl::Time t30 = t0_ + absl::Minutes(30);
  ASSERT_OK_AND_ASSIGN(auto result,
                       Report("sz-b", 1, t0_ - absl::Seconds(1), t30, 1000));
  EXPECT_EQ(result.first.result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(result.first.reason(), HasSubstr("before the allocation"));
  EXPECT_TRUE(result.second);
  EXPECT_EQ(Allocation().last_sequence(), 1);
  ASSERT_OK_AND_ASSIGN(result, Report("sz-b", 2, t0_, t30, 2 * 1'800'000 + 1));
  EXPECT_EQ(result.first.result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(result.first.reason(), HasSubstr("gpu_ms: must be 0..3600000"));
  ASSERT_OK_AND_ASSIGN(result, Report("sz-b", 3, t0_, t30, 3'600'000));
  EXPECT_EQ(result.first.result(), pb::USAGE_RESULT_ACCEPTED);
  EXPECT_EQ(Allocation().charged_fen(), 360);
}

TEST_F(UsageChargingTest, TheHoldRunningOutEndsTheAllocation) {
  Advance(absl::Hours(1));
  ASSERT_OK_AND_ASSIGN(
      const auto result,
      Report("sz-b", 1, t0_, t0_ + absl::Hours(1), 2 * 3'600'000));
  EXPECT_EQ(result.first.subsidy_fen(), 720);
  EXPECT_TRUE(result.first.stop());
  EXPECT_EQ(Allocation().state(), pb::ALLOCATION_STATE_ENDED);
  EXPECT_EQ(Allocation().end_reason(), pb::END_REASON_DURATION_REACHED);
  EXPECT_EQ(Allocation().held_fen(), 0);
}

TEST_F(UsageChargingTest, OnlyAnAgentMayReport) {
  pb::ReportUsageRequest r;
  r.add_records()->set_allocation_id(allocation_.allocation_id());
  EXPECT_THAT(usage_.ReportUsage(EnterprisePrincipal("E-000001"), r),
              StatusIs(absl::StatusCode::kPermissionDenied));
  r.clear_records();
  EXPECT_THAT(
      usage_.ReportUsage(AgentPrincipal("sz-b"), r),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("records")));
}

}  // namespace
}  // namespace computevoucher::core
