// Allocation lifecycles driven through the API: heartbeats, a workload that
// exits, access instructions and an end on the cluster across restarts, a
// silent cluster, extension, and cancelling a queued allocation.
#include <string>

#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/api/api_fixture.h"
#include "tests/testing/world.h"

namespace computevoucher::testing {
namespace {

class LifecycleTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    BuildWorld();
    Issue("E-000003", 10'000'00);
  }

  pb::Allocation Allocate(const std::string& model, int gpus,
                          bool queue = false) {
    pb::AllocateRequest r;
    r.set_request_id(NextRequestId());
    r.mutable_resources()->set_gpu_model(model);
    r.mutable_resources()->set_gpu_count(gpus);
    r.mutable_resources()->set_max_duration_s(3600);
    r.set_queue_if_busy(queue);
    pb::Allocation a;
    grpc::Status s = enterprise_->Allocate(As(e3_token_).get(), r, &a);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return a;
  }

  pb::Allocation Get(const std::string& id) {
    pb::GetAllocationRequest r;
    r.set_allocation_id(id);
    pb::Allocation a;
    EXPECT_TRUE(enterprise_->GetAllocation(As(e3_token_).get(), r, &a).ok());
    return a;
  }

  pb::HeartbeatResponse Beat(const std::string& token,
                             const pb::ObservedAllocation& o) {
    pb::HeartbeatRequest r;
    r.set_request_id(NextRequestId());
    *r.add_allocations() = o;
    pb::HeartbeatResponse out;
    grpc::Status s = agent_->Heartbeat(As(token).get(), r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }
};

TEST_F(LifecycleTest, HeartbeatsStartAndEndWorkloads) {
  const pb::Allocation a = Allocate("910B", 2);
  pb::ObservedAllocation o;
  o.set_allocation_id(a.allocation_id());
  o.set_running(true);
  pb::HeartbeatResponse desired = Beat(hz_token_, o);
  ASSERT_EQ(desired.allocations_size(), 1);
  EXPECT_EQ(desired.allocations(0).gpu_count(), 2);
  EXPECT_EQ(desired.allocations(0).next_sequence(), 1);
  EXPECT_EQ(Get(a.allocation_id()).state(), pb::ALLOCATION_STATE_RUNNING);

  o.set_running(false);
  o.set_exited(true);
  o.set_exit_code(3);
  desired = Beat(hz_token_, o);
  EXPECT_EQ(desired.allocations_size(), 0);
  const pb::Allocation ended = Get(a.allocation_id());
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_WORKLOAD_EXITED);
  EXPECT_EQ(ended.exit_code(), 3);
}

TEST_F(LifecycleTest, AccessAndAnEndOnTheClusterReachTheTenantAndSurvive) {
  const pb::Allocation a = Allocate("910B", 2);
  const std::string access =
      "ssh login.hz-a\nsrun --jobid=42 --overlap --pty bash";
  pb::ObservedAllocation o;
  o.set_allocation_id(a.allocation_id());
  o.set_running(true);
  const pb::HeartbeatResponse desired = Beat(hz_token_, o);
  ASSERT_EQ(desired.allocations_size(), 1);
  EXPECT_EQ(desired.allocations(0).enterprise_id(), "E-000003");
  // A heartbeat that changes only the access is logged like any change.
  o.set_access(access);
  Beat(hz_token_, o);
  EXPECT_EQ(Get(a.allocation_id()).access(), access);
  Restart();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(Get(a.allocation_id()).access(), access);

  // A text over its limit refuses the whole heartbeat and changes nothing.
  pb::HeartbeatRequest bad;
  bad.set_request_id(NextRequestId());
  pb::ObservedAllocation* too_long = bad.add_allocations();
  *too_long = o;
  too_long->set_access(std::string(1025, 'x'));
  too_long->set_ended_on_cluster(true);
  pb::HeartbeatResponse ignored;
  const grpc::Status refused =
      agent_->Heartbeat(As(hz_token_).get(), bad, &ignored);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refused.error_message(),
            "allocations[0].access: must be 0..1024 characters, got 1025: \"" +
                std::string(64, 'x') + "...\" (1025 bytes)");
  EXPECT_EQ(Get(a.allocation_id()).state(), pb::ALLOCATION_STATE_RUNNING);
  EXPECT_EQ(Get(a.allocation_id()).access(), access);

  o.set_running(false);
  o.set_ended_on_cluster(true);
  o.set_end_detail("slurm job 42 NODE_FAIL");
  EXPECT_EQ(Beat(hz_token_, o).allocations_size(), 0);
  Restart();
  ASSERT_FALSE(HasFatalFailure());
  const pb::Allocation ended = Get(a.allocation_id());
  EXPECT_EQ(ended.state(), pb::ALLOCATION_STATE_ENDED);
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_ENDED_ON_CLUSTER);
  EXPECT_EQ(ended.end_detail(), "slurm job 42 NODE_FAIL");
  EXPECT_EQ(ended.access(), access);
}

TEST_F(LifecycleTest, RegisterRefusesAMeterOverItsLimit) {
  pb::RegisterRequest r = WorldClusters()[0].registration;
  r.set_request_id(NextRequestId());
  r.set_meter("slurm+" + std::string(60, 'n'));
  pb::RegisterResponse out;
  const grpc::Status s = agent_->Register(As(hz_token_).get(), r, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "meter: must be 0..64 characters, got 66: \"slurm+" +
                std::string(58, 'n') + "...\" (66 bytes)");
  r.set_request_id(NextRequestId());
  r.set_meter("slurm+simulated");
  EXPECT_TRUE(agent_->Register(As(hz_token_).get(), r, &out).ok());
}

TEST_F(LifecycleTest, OversizedAgentAndBatchInputIsRefusedAndNeverStored) {
  const std::string huge(2 << 20, 'x');  // 2 MiB
  const int64_t before = StoredCommands();
  ASSERT_GT(before, 0);
  auto expect_refused = [&](const grpc::Status& s, const std::string& field,
                            const std::string& what) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
    EXPECT_THAT(s.error_message(), ::testing::StartsWith(field)) << what;
    // Named and shortened, never echoed whole.
    EXPECT_LT(s.error_message().size(), 300u) << what;
  };
  {
    pb::ReportUsageRequest r;
    r.set_request_id(huge);
    pb::UsageRecord* u = r.add_records();
    u->set_allocation_id("AL-00000001");
    u->set_sequence(1);
    pb::ReportUsageResponse out;
    expect_refused(agent_->ReportUsage(As(hz_token_).get(), r, &out),
                   "request_id", "ReportUsage request_id");
    r.set_request_id(NextRequestId());
    u->set_allocation_id(huge);
    expect_refused(agent_->ReportUsage(As(hz_token_).get(), r, &out),
                   "records[0].allocation_id", "ReportUsage allocation_id");
    u->set_allocation_id("AL-00000001");
    u->set_evidence(huge);
    expect_refused(agent_->ReportUsage(As(hz_token_).get(), r, &out),
                   "records[0].evidence", "ReportUsage evidence");
  }
  {
    pb::HeartbeatRequest r;
    r.set_request_id(huge);
    pb::HeartbeatResponse out;
    expect_refused(agent_->Heartbeat(As(hz_token_).get(), r, &out),
                   "request_id", "Heartbeat request_id");
    r.set_request_id(NextRequestId());
    r.add_allocations()->set_allocation_id(huge);
    expect_refused(agent_->Heartbeat(As(hz_token_).get(), r, &out),
                   "allocations[0].allocation_id", "Heartbeat allocation_id");
    r.clear_allocations();
    (*r.mutable_free_gpus())[huge] = 1;
    expect_refused(agent_->Heartbeat(As(hz_token_).get(), r, &out),
                   "free_gpus model", "Heartbeat free_gpus");
  }
  {
    pb::BatchIssueVouchersRequest r;
    r.set_request_id(NextRequestId());
    pb::IssueVoucherRequest* row = r.add_rows();
    row->set_program_id("P-000001");
    row->set_enterprise_id("E-000001");
    row->set_face_value_fen(100);
    row->set_request_id(huge);
    pb::BatchIssueVouchersResponse out;
    expect_refused(admin_->BatchIssueVouchers(As(admin_token_).get(), r, &out),
                   "rows[0].request_id", "BatchIssueVouchers row");
  }
  {
    pb::GetSettlementRequest r;
    r.set_provider_id(huge);
    *r.mutable_period_start() = ToProto(clock_.Now() - absl::Hours(24));
    *r.mutable_period_end() = ToProto(clock_.Now());
    pb::Settlement out;
    expect_refused(admin_->GetSettlement(As(admin_token_).get(), r, &out),
                   "provider_id", "GetSettlement provider_id");
  }
  EXPECT_EQ(StoredCommands(), before) << "a refused request was stored";
}

TEST_F(LifecycleTest, SilentClusterLosesItsAllocations) {
  const pb::Allocation on_hz = Allocate("910B", 1);
  const pb::Allocation on_sz = Allocate("H100", 1);  // sz-b is cheaper
  ASSERT_EQ(on_sz.cluster_id(), "sz-b");
  // sz-b keeps beating; hz-a falls silent past the 60 s grace.
  clock_.Advance(absl::Seconds(40));
  Beat(sz_token_, pb::ObservedAllocation());
  server_->TickNow();
  EXPECT_EQ(Get(on_hz.allocation_id()).state(), pb::ALLOCATION_STATE_ASSIGNED);
  clock_.Advance(absl::Seconds(40));
  Beat(sz_token_, pb::ObservedAllocation());
  server_->TickNow();
  EXPECT_EQ(Get(on_hz.allocation_id()).end_reason(),
            pb::END_REASON_CLUSTER_LOST);
  EXPECT_EQ(Get(on_sz.allocation_id()).state(), pb::ALLOCATION_STATE_ASSIGNED);

  pb::ListClustersRequest list;
  pb::ListClustersResponse clusters;
  ASSERT_TRUE(
      admin_->ListClusters(As(admin_token_).get(), list, &clusters).ok());
  ASSERT_EQ(clusters.clusters_size(), 2);
  EXPECT_FALSE(clusters.clusters(0).connected());  // hz-a
  EXPECT_TRUE(clusters.clusters(1).connected());   // sz-b
}

TEST_F(LifecycleTest, ExtendHoldsMoreAndQueuedAllocationsCanBeCancelled) {
  const pb::Allocation a = Allocate("H100", 8);  // fills sz-b
  pb::ExtendAllocationRequest extend;
  extend.set_request_id(NextRequestId());
  extend.set_allocation_id(a.allocation_id());
  extend.set_extra_duration_s(1800);
  pb::Allocation extended;
  ASSERT_TRUE(
      enterprise_->ExtendAllocation(As(e3_token_).get(), extend, &extended)
          .ok());
  EXPECT_EQ(extended.max_duration_s(), 5400);
  EXPECT_EQ(extended.held_fen(),
            8 * 1800 * 3 / 2 * 2 / 10);  // 8 GPUs, 1.5 h, 20%

  Allocate("H100", 8);  // fills hz-a
  const pb::Allocation queued = Allocate("H100", 4, /*queue=*/true);
  EXPECT_EQ(queued.state(), pb::ALLOCATION_STATE_PENDING);
  pb::ReleaseAllocationRequest cancel;
  cancel.set_request_id(NextRequestId());
  cancel.set_allocation_id(queued.allocation_id());
  pb::Allocation cancelled;
  ASSERT_TRUE(
      enterprise_->ReleaseAllocation(As(e3_token_).get(), cancel, &cancelled)
          .ok());
  EXPECT_EQ(cancelled.state(), pb::ALLOCATION_STATE_ENDED);
  EXPECT_EQ(cancelled.held_fen(), 0);  // nothing ran, so nothing waits
}

}  // namespace
}  // namespace computevoucher::testing

namespace computevoucher::testing {
namespace {

TEST_F(LifecycleTest, UsageIsListedInPagesAndByPeriod) {
  const pb::Allocation a = Allocate("910B", 1);
  const absl::Time t0 = *FromProto("assigned_at", a.assigned_at());
  clock_.Advance(absl::Minutes(3));
  pb::ReportUsageRequest report;
  report.set_request_id(NextRequestId());
  for (int i = 0; i < 3; ++i) {
    pb::UsageRecord* u = report.add_records();
    u->set_allocation_id(a.allocation_id());
    u->set_sequence(i + 1);
    *u->mutable_start() = ToProto(t0 + absl::Minutes(i));
    *u->mutable_end() = ToProto(t0 + absl::Minutes(i + 1));
    u->set_gpu_ms(60'000);
  }
  pb::ReportUsageResponse acks;
  ASSERT_TRUE(agent_->ReportUsage(As(hz_token_).get(), report, &acks).ok());

  pb::ListUsageRequest list;
  list.set_allocation_id(a.allocation_id());
  list.mutable_page()->set_page_size(2);
  pb::ListUsageResponse page;
  ASSERT_TRUE(enterprise_->ListUsage(As(e3_token_).get(), list, &page).ok());
  ASSERT_EQ(page.usage_size(), 2);
  EXPECT_EQ(page.usage(0).record().sequence(), 1);
  EXPECT_EQ(page.usage(0).cost_fen(), 20);  // 1 min at 12.00 per GPU-hour
  EXPECT_EQ(page.usage(0).provider_id(), "PR-000001");
  ASSERT_FALSE(page.next_page_token().empty());
  list.mutable_page()->set_page_token(page.next_page_token());
  ASSERT_TRUE(enterprise_->ListUsage(As(e3_token_).get(), list, &page).ok());
  ASSERT_EQ(page.usage_size(), 1);
  EXPECT_EQ(page.usage(0).record().sequence(), 3);
  EXPECT_TRUE(page.next_page_token().empty());

  // A record belongs to the period its interval ends in.
  pb::ListUsageRequest period;
  *period.mutable_period_start() = ToProto(t0 + absl::Minutes(2));
  *period.mutable_period_end() = ToProto(t0 + absl::Minutes(3));
  ASSERT_TRUE(enterprise_->ListUsage(As(e3_token_).get(), period, &page).ok());
  ASSERT_EQ(page.usage_size(), 1);
  EXPECT_EQ(page.usage(0).record().sequence(), 2);

  list.mutable_page()->set_page_token("not-a-token");
  const grpc::Status bad =
      enterprise_->ListUsage(As(e3_token_).get(), list, &page);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad.error_message(),
            "page.page_token: not a token this server issued");
}

}  // namespace
}  // namespace computevoucher::testing
