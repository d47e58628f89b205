#include "scheduler/core/placement.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/limits.h"
#include "tests/scheduler/core/components_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::EnterprisePrincipal;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class PlacementTest : public ComponentsTest {
 protected:
  void SetUp() override {
    ComponentsTest::SetUp();
    ASSERT_THAT(BuildWorld(), IsOk());
    for (const char* enterprise : {"E-000001", "E-000002", "E-000003"})
      ASSERT_THAT(Issue(enterprise, 10'000), IsOk());
  }

  pb::ResourceRequest H100(int32_t count) {
    pb::ResourceRequest r;
    r.set_gpu_model("H100");
    r.set_gpu_count(count);
    r.set_max_duration_s(3600);
    return r;
  }

  int32_t FreeH100(const std::string& cluster_id) {
    return registry_.ClusterView(cluster_id)->inventory(0).free_gpus();
  }
};

TEST_F(PlacementTest, QuotePicksTheCheapestUnrelatedCluster) {
  ASSERT_OK_AND_ASSIGN(const pb::QuoteResponse quote,
                       placement_.Quote("E-000001", H100(2)));
  EXPECT_EQ(quote.cluster_id(), "sz-b");
  EXPECT_EQ(quote.price_fen_per_gpu_hour(), 1800);
  EXPECT_EQ(quote.ratio_bp(), 2000);
  EXPECT_EQ(quote.amounts().subsidy_fen(), 2 * 1800 * 2 / 10);
  // E-000002 is related to sz-b's provider, and an SME.
  ASSERT_OK_AND_ASSIGN(const pb::QuoteResponse related,
                       placement_.Quote("E-000002", H100(2)));
  EXPECT_EQ(related.cluster_id(), "hz-a");
  EXPECT_EQ(related.ratio_bp(), 5000);
  EXPECT_THAT(placement_.Quote("E-000001", H100(9)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no approved, unrelated cluster offers")));
  EXPECT_THAT(
      placement_.Quote("E-000001", H100(kMaxGpus + 1)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gpu_count")));
}

TEST_F(PlacementTest, AnEnterpriseIsNeverPlacedWithItsOwnLegalEntity) {
  // sz-b's provider (PR-000002) registered as an enterprise too: related to
  // itself by definition, so it goes to the dearer hz-a.
  pb::RegisterEnterpriseRequest r;
  r.set_name("深圳智算云有限公司");
  r.set_credit_code("9144030071526726xg");
  r.set_category("整机");
  ASSERT_THAT(registry_.RegisterEnterprise(r), IsOk());
  const pb::Enterprise* self =
      registry_.EnterpriseByCreditCode("9144030071526726XG");
  ASSERT_NE(self, nullptr);
  std::vector<std::string> eligible;
  for (const Placement::Option& option : placement_.Eligible(*self)) {
    eligible.emplace_back(option.cluster_id);
  }
  EXPECT_THAT(eligible, ElementsAre("hz-a", "hz-a"));  // H100 and 910B
  const std::string id = self->enterprise_id();
  ASSERT_THAT(Issue(id, 10'000), IsOk());
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a, Allocate(id, "H100", 2));
  EXPECT_EQ(a.cluster_id(), "hz-a");
  EXPECT_EQ(a.provider_id(), "PR-000001");
  EXPECT_EQ(a.price_fen_per_gpu_hour(), 2000);
}

TEST_F(PlacementTest, TheQueueTakesFreedCapacityAndGivesBackExcessHold) {
  ASSERT_OK_AND_ASSIGN(const pb::Allocation first,
                       Allocate("E-000003", "H100", 8));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation second,
                       Allocate("E-000003", "H100", 8));
  EXPECT_EQ(first.cluster_id(), "sz-b");
  EXPECT_EQ(second.cluster_id(), "hz-a");
  EXPECT_THAT(Allocate("E-000003", "H100", 1),
              StatusIs(absl::StatusCode::kResourceExhausted));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation queued,
                       Allocate("E-000003", "H100", 1, /*queue_if_busy=*/true));
  EXPECT_EQ(queued.state(), pb::ALLOCATION_STATE_PENDING);
  EXPECT_EQ(queued.held_fen(), 400);  // at the dearest way, 20.00 × 20%
  EXPECT_EQ(placement_.queued(), 1u);

  pb::ReleaseAllocationRequest release;
  release.set_allocation_id(first.allocation_id());
  ASSERT_THAT(
      placement_.ReleaseAllocation(EnterprisePrincipal("E-000003"), release),
      IsOk());
  ASSERT_OK_AND_ASSIGN(const pb::Allocation placed,
                       placement_.AllocationView(queued.allocation_id()));
  EXPECT_EQ(placed.state(), pb::ALLOCATION_STATE_ASSIGNED);
  EXPECT_EQ(placed.cluster_id(), "sz-b");
  EXPECT_EQ(placed.held_fen(), 360);
  EXPECT_EQ(placement_.queued(), 0u);
  EXPECT_EQ(FreeH100("sz-b"), 7);
  // Another enterprise cannot release it.
  release.set_allocation_id(placed.allocation_id());
  EXPECT_THAT(
      placement_.ReleaseAllocation(EnterprisePrincipal("E-000001"), release),
      StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(PlacementTest, AnAllocationEndsAtItsDeadlineAndItsHoldAfterGrace) {
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a, Allocate("E-000001", "H100", 2));
  const int64_t available_before_hold =
      vouchers_.Available(a.voucher_id()) + a.held_fen();
  EXPECT_EQ(FreeH100("sz-b"), 6);
  Advance(absl::Minutes(59));
  ASSERT_OK_AND_ASSIGN(bool any, placement_.EndDue());
  EXPECT_FALSE(any);
  Advance(absl::Minutes(1));
  ASSERT_OK_AND_ASSIGN(any, placement_.EndDue());
  EXPECT_TRUE(any);
  ASSERT_OK_AND_ASSIGN(pb::Allocation ended,
                       placement_.AllocationView(a.allocation_id()));
  EXPECT_EQ(ended.state(), pb::ALLOCATION_STATE_ENDED);
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_DURATION_REACHED);
  EXPECT_EQ(FreeH100("sz-b"), 8);
  EXPECT_EQ(ended.held_fen(), a.held_fen());  // kept for late usage

  ASSERT_OK_AND_ASSIGN(any, placement_.ReleaseDueHolds(absl::Minutes(5)));
  EXPECT_FALSE(any);
  Advance(absl::Minutes(5));
  ASSERT_OK_AND_ASSIGN(any, placement_.ReleaseDueHolds(absl::Minutes(5)));
  EXPECT_TRUE(any);
  EXPECT_EQ(placement_.AllocationView(a.allocation_id())->held_fen(), 0);
  EXPECT_EQ(vouchers_.Available(a.voucher_id()), available_before_hold);
}

TEST_F(PlacementTest, HeartbeatsTouchOnlyTheAgentsOwnAllocations) {
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a, Allocate("E-000001", "H100", 2));
  pb::HeartbeatRequest beat;
  pb::ObservedAllocation* o = beat.add_allocations();
  o->set_allocation_id(a.allocation_id());
  o->set_running(true);
  ASSERT_OK_AND_ASSIGN(Reply reply,
                       placement_.Heartbeat(AgentPrincipal("hz-a"), beat));
  EXPECT_FALSE(reply.changed);
  EXPECT_EQ(placement_.AllocationView(a.allocation_id())->state(),
            pb::ALLOCATION_STATE_ASSIGNED);
  ASSERT_OK_AND_ASSIGN(reply,
                       placement_.Heartbeat(AgentPrincipal("sz-b"), beat));
  EXPECT_TRUE(reply.changed);
  EXPECT_EQ(placement_.AllocationView(a.allocation_id())->state(),
            pb::ALLOCATION_STATE_RUNNING);
  const auto& desired =
      static_cast<const pb::HeartbeatResponse&>(*reply.response);
  ASSERT_EQ(desired.allocations_size(), 1);
  EXPECT_EQ(desired.allocations(0).allocation_id(), a.allocation_id());
  EXPECT_EQ(desired.allocations(0).next_sequence(), 1);
}

TEST_F(PlacementTest, LosingAClusterEndsWhatRanThere) {
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a, Allocate("E-000001", "H100", 2));
  pb::ClusterLostCommand lost;
  lost.set_cluster_id("hz-a");
  ASSERT_OK_AND_ASSIGN(Reply reply, placement_.ClusterLost(lost));
  EXPECT_FALSE(reply.changed);
  lost.set_cluster_id("sz-b");
  ASSERT_OK_AND_ASSIGN(reply, placement_.ClusterLost(lost));
  EXPECT_TRUE(reply.changed);
  EXPECT_EQ(placement_.AllocationView(a.allocation_id())->end_reason(),
            pb::END_REASON_CLUSTER_LOST);
  EXPECT_TRUE(placement_.ActiveAllocationIds("sz-b").empty());
}

}  // namespace
}  // namespace computevoucher::core
