#include "scheduler/core/registry.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/ledger.h"
#include "scheduler/core/limits.h"
#include "tests/scheduler/core/components_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::computevoucher::testing::WorldClusters;
using ::computevoucher::testing::WorldProgram;
using ::computevoucher::testing::WorldProviders;
using ::testing::HasSubstr;

using RegistryTest = ComponentsTest;

TEST_F(RegistryTest, CreateProgramFundsItsBudget) {
  ASSERT_THAT(registry_.CreateProgram(WorldProgram()), IsOk());
  ASSERT_OK_AND_ASSIGN(const pb::Program program,
                       registry_.ProgramView("P-000001"));
  EXPECT_EQ(program.budget_fen(), WorldProgram().budget_fen());
  EXPECT_EQ(program.unissued_fen(), WorldProgram().budget_fen());
  EXPECT_EQ(books_.Balance(ProgramSourceAccount("P-000001")),
            -WorldProgram().budget_fen());
  EXPECT_EQ(registry_.state().next_program, 1);
}

TEST_F(RegistryTest, CreditCodeIsRegisteredOnce) {
  const pb::RegisterProviderRequest provider = WorldProviders()[0];
  ASSERT_THAT(registry_.RegisterProvider(provider), IsOk());
  EXPECT_THAT(registry_.RegisterProvider(provider),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("already registered as provider PR-000001")));
  EXPECT_EQ(registry_.state().providers.size(), 1u);
}

TEST_F(RegistryTest, AnAgentTokenBindsItsClusterToOneProvider) {
  for (const pb::RegisterProviderRequest& r : WorldProviders())
    ASSERT_THAT(registry_.RegisterProvider(r), IsOk());
  ASSERT_THAT(AgentToken("edge-1", "PR-000001"), IsOk());
  EXPECT_THAT(AgentToken("edge-1", "PR-000002"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("belongs to another provider")));
  EXPECT_THAT(AgentToken("Edge_1", "PR-000001"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(registry_.state().cluster_owner.at("edge-1"), "PR-000001");
}

TEST_F(RegistryTest, ReRegistrationThatSellsMoreWaitsForReview) {
  ASSERT_THAT(BuildWorld(), IsOk());
  pb::RegisterRequest more = WorldClusters()[1].registration;
  more.mutable_inventory(0)->set_gpu_count(16);
  ASSERT_OK_AND_ASSIGN(Registry::ClusterChange change,
                       registry_.RegisterCluster(AgentPrincipal("sz-b"), more));
  EXPECT_TRUE(change.changed);
  EXPECT_FALSE(change.capacity_added);
  ASSERT_OK_AND_ASSIGN(pb::Cluster cluster, registry_.ClusterView("sz-b"));
  EXPECT_EQ(cluster.inventory(0).gpu_count(), 8);
  EXPECT_EQ(cluster.proposed_inventory(0).gpu_count(), 16);
  // The same proposal again changes nothing.
  ASSERT_OK_AND_ASSIGN(change,
                       registry_.RegisterCluster(AgentPrincipal("sz-b"), more));
  EXPECT_FALSE(change.changed);
  // Approving takes the proposal and adds capacity.
  pb::SetClusterStateRequest approve;
  approve.set_cluster_id("sz-b");
  approve.set_state(pb::CLUSTER_STATE_APPROVED);
  ASSERT_OK_AND_ASSIGN(change, registry_.SetClusterState(approve));
  EXPECT_TRUE(change.changed);
  EXPECT_TRUE(change.capacity_added);
  ASSERT_OK_AND_ASSIGN(cluster, registry_.ClusterView("sz-b"));
  EXPECT_EQ(cluster.inventory(0).gpu_count(), 16);
  EXPECT_TRUE(cluster.proposed_inventory().empty());
}

TEST_F(RegistryTest, ReRegistrationThatSellsLessAppliesAtOnce) {
  ASSERT_THAT(BuildWorld(), IsOk());
  pb::RegisterRequest less = WorldClusters()[1].registration;
  less.mutable_inventory(0)->set_gpu_count(4);
  ASSERT_OK_AND_ASSIGN(const Registry::ClusterChange change,
                       registry_.RegisterCluster(AgentPrincipal("sz-b"), less));
  EXPECT_TRUE(change.changed);
  EXPECT_TRUE(change.capacity_added);
  ASSERT_OK_AND_ASSIGN(const pb::Cluster cluster,
                       registry_.ClusterView("sz-b"));
  EXPECT_EQ(cluster.inventory(0).gpu_count(), 4);
}

TEST_F(RegistryTest, RegisterClusterRefusesABadInventory) {
  ASSERT_THAT(BuildWorld(), IsOk());
  pb::RegisterRequest r = WorldClusters()[1].registration;
  *r.add_inventory() = r.inventory(0);
  EXPECT_THAT(
      registry_.RegisterCluster(AgentPrincipal("sz-b"), r),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listed twice")));
  r = WorldClusters()[1].registration;
  for (int i = 0; i < kMaxModels; ++i) *r.add_inventory() = r.inventory(0);
  EXPECT_THAT(
      registry_.RegisterCluster(AgentPrincipal("sz-b"), r),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("inventory")));
  EXPECT_THAT(registry_.RegisterCluster(
                  ::computevoucher::testing::EnterprisePrincipal("E-000001"),
                  WorldClusters()[1].registration),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(RegistryTest, UsedGpusShowAsFewerFree) {
  ASSERT_THAT(BuildWorld(), IsOk());
  registry_.AddUsedGpus("hz-a", "910B", 5);
  ASSERT_OK_AND_ASSIGN(const pb::Cluster cluster,
                       registry_.ClusterView("hz-a"));
  EXPECT_EQ(cluster.inventory(0).free_gpus(), 8);   // H100
  EXPECT_EQ(cluster.inventory(1).free_gpus(), 11);  // 910B
  registry_.AddUsedGpus("hz-a", "910B", -5);
  EXPECT_EQ(registry_.ClusterView("hz-a")->inventory(1).free_gpus(), 16);
}

TEST_F(RegistryTest, SettlementPaysOutOfThePayable) {
  ASSERT_THAT(BuildWorld(), IsOk());
  pb::SettleProviderRequest r;
  r.set_provider_id("PR-000001");
  r.set_reference("bank transfer 1");
  r.set_amount_fen(1);
  EXPECT_THAT(
      registry_.SettleProvider(r),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be 1..0")));
  EXPECT_EQ(registry_.state().next_settlement, 0);
}

}  // namespace
}  // namespace computevoucher::core
