// What agents tell the scheduler about cluster runtimes (issue 12): the
// enterprise in the desired set, how a tenant reaches its GPUs, allocations
// the cluster ended on its own, evidence on usage records, and the limits
// on every text an agent sends.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "tests/scheduler/core/state_machine_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::EnterprisePrincipal;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::NewCommand;
using ::testing::IsEmpty;

// Repeats `unit` `n` times.
std::string Repeat(const std::string& unit, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += unit;
  return out;
}

pb::ObservedAllocation Observed(const std::string& allocation_id,
                                const std::string& access = "") {
  pb::ObservedAllocation o;
  o.set_allocation_id(allocation_id);
  o.set_running(true);
  o.set_access(access);
  return o;
}

class ClusterRuntimeTest : public StateMachineTest {
 protected:
  void SetUp() override {
    StateMachineTest::SetUp();
    ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 10'000 * kYuan), IsOk());
  }

  pb::Command HeartbeatCommand(
      const std::string& cluster_id,
      const std::vector<pb::ObservedAllocation>& observed) {
    pb::Command c =
        NewCommand(AgentPrincipal(cluster_id), absl::StrCat("beat-", ++beats_));
    pb::HeartbeatRequest* r = c.mutable_heartbeat();
    r->set_healthy(true);
    for (const pb::ObservedAllocation& o : observed) *r->add_allocations() = o;
    return c;
  }

  absl::StatusOr<Outcome> Beat(
      const std::string& cluster_id,
      const std::vector<pb::ObservedAllocation>& observed) {
    return driver_.Apply(HeartbeatCommand(cluster_id, observed));
  }

  // Reports one record for `allocation_id` on sz-b with `evidence`.
  pb::UsageAck Report(const std::string& allocation_id, int64_t sequence,
                      absl::Time start, absl::Time end, int64_t gpu_ms,
                      const std::string& evidence) {
    pb::Command c =
        NewCommand(AgentPrincipal("sz-b"), absl::StrCat("usage-", sequence));
    pb::UsageRecord* u = c.mutable_report_usage()->add_records();
    u->set_allocation_id(allocation_id);
    u->set_sequence(sequence);
    *u->mutable_start() = ToProto(start);
    *u->mutable_end() = ToProto(end);
    u->set_gpu_ms(gpu_ms);
    u->set_evidence(evidence);
    absl::StatusOr<pb::ReportUsageResponse> response =
        driver_.Call<pb::ReportUsageResponse>(std::move(c));
    EXPECT_THAT(response, IsOk());
    return response.ok() ? response->acks(0) : pb::UsageAck();
  }

  // Applies the driver's log to `replica`, as a restart does, and expects
  // the same state.
  void ExpectReplayIsExact(StateMachine& replica) {
    for (const pb::Command& c : driver_.log()) {
      ASSERT_OK_AND_ASSIGN(const Outcome outcome, replica.Apply(c));
      EXPECT_TRUE(outcome.changed) << c.ShortDebugString();
    }
    EXPECT_EQ(replica.Digest(), state_.Digest());
  }

  int beats_ = 0;
};

TEST_F(ClusterRuntimeTest, DesiredAllocationsCarryTheEnterprise) {
  ASSERT_THAT(driver_.Issue("P-000001", "E-000003", 1'000 * kYuan), IsOk());
  ASSERT_OK_AND_ASSIGN(const pb::Allocation on_sz,
                       driver_.Allocate("E-000001", "H100", 2, 3600));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation on_hz,
                       driver_.Allocate("E-000003", "910B", 1, 3600));
  ASSERT_EQ(on_sz.cluster_id(), "sz-b");
  ASSERT_EQ(on_hz.cluster_id(), "hz-a");
  ASSERT_OK_AND_ASSIGN(const Outcome beat, Beat("sz-b", {}));
  const auto& desired =
      static_cast<const pb::HeartbeatResponse&>(*beat.response);
  ASSERT_EQ(desired.allocations_size(), 1);
  EXPECT_EQ(desired.allocations(0).enterprise_id(), "E-000001");
  const pb::HeartbeatResponse hz = state_.DesiredState("hz-a");
  ASSERT_EQ(hz.allocations_size(), 1);
  EXPECT_EQ(hz.allocations(0).enterprise_id(), "E-000003");
}

TEST_F(ClusterRuntimeTest, AccessIsStoredWhenItChangesAndSurvivesReplay) {
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 1, 3600));
  const std::string& id = a.allocation_id();
  const std::string first =
      "ssh login.sz-b\nsrun --jobid=42 --overlap --pty bash";
  ASSERT_OK_AND_ASSIGN(Outcome beat, Beat("sz-b", {Observed(id, first)}));
  EXPECT_TRUE(beat.changed);
  EXPECT_EQ(Allocation(id).access(), first);
  EXPECT_EQ(Allocation(id).state(), pb::ALLOCATION_STATE_RUNNING);

  // The same observation again changes nothing and is not logged.
  const size_t logged = driver_.log().size();
  ASSERT_OK_AND_ASSIGN(beat, Beat("sz-b", {Observed(id, first)}));
  EXPECT_FALSE(beat.changed);
  EXPECT_EQ(driver_.log().size(), logged);

  // A heartbeat that changes only the access is a change of state, logged
  // so that a restart rebuilds it.
  driver_.Advance(absl::Minutes(1));
  const std::string second =
      "ssh login2.sz-b\nsrun --jobid=42 --overlap --pty bash";
  ASSERT_OK_AND_ASSIGN(beat, Beat("sz-b", {Observed(id, second)}));
  EXPECT_TRUE(beat.changed);
  EXPECT_EQ(driver_.log().size(), logged + 1);
  EXPECT_EQ(Allocation(id).access(), second);

  StateMachine replica;
  ExpectReplayIsExact(replica);
  ASSERT_OK_AND_ASSIGN(const pb::Allocation replayed,
                       replica.AllocationView(id));
  EXPECT_EQ(replayed.access(), second);
}

TEST_F(ClusterRuntimeTest, AccessIsIgnoredForAnotherClusterOrAnEndedOne) {
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 1, 3600));
  const std::string& id = a.allocation_id();
  ASSERT_EQ(a.cluster_id(), "sz-b");
  const std::string before = state_.Digest();
  ASSERT_OK_AND_ASSIGN(Outcome beat,
                       Beat("hz-a", {Observed(id, "ssh login.hz-a")}));
  EXPECT_FALSE(beat.changed);
  EXPECT_EQ(state_.Digest(), before);
  EXPECT_EQ(Allocation(id).access(), "");

  ASSERT_THAT(driver_.Release("E-000001", id), IsOk());
  ASSERT_OK_AND_ASSIGN(beat, Beat("sz-b", {Observed(id, "ssh login.sz-b")}));
  EXPECT_FALSE(beat.changed);
  EXPECT_EQ(Allocation(id).access(), "");
}

TEST_F(ClusterRuntimeTest, EndedOnClusterEndsAdvancesTheQueueAndCharges) {
  // sz-b (18.00 per GPU-hour) and hz-a full; a third allocation queues.
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 8, 3600));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation b,
                       driver_.Allocate("E-000001", "H100", 8, 3600));
  ASSERT_OK_AND_ASSIGN(
      const pb::Allocation queued,
      driver_.Allocate("E-000001", "H100", 4, 3600, /*queue_if_busy=*/true));
  ASSERT_EQ(a.cluster_id(), "sz-b");
  ASSERT_EQ(b.cluster_id(), "hz-a");
  ASSERT_EQ(queued.state(), pb::ALLOCATION_STATE_PENDING);
  const std::string& id = a.allocation_id();
  const absl::Time t0 = driver_.now();
  EXPECT_EQ(Allocation(id).held_fen(), 8 * 1800 * 2 / 10);

  driver_.Advance(absl::Minutes(30));
  pb::ObservedAllocation ended = Observed(id, "ssh login.sz-b");
  ended.set_running(false);
  ended.set_ended_on_cluster(true);
  ended.set_end_detail("slurm job 42 CANCELLED by root");
  ASSERT_OK_AND_ASSIGN(const Outcome beat, Beat("sz-b", {ended}));
  EXPECT_TRUE(beat.changed);
  const pb::Allocation done = Allocation(id);
  EXPECT_EQ(done.state(), pb::ALLOCATION_STATE_ENDED);
  EXPECT_EQ(done.end_reason(), pb::END_REASON_ENDED_ON_CLUSTER);
  EXPECT_EQ(done.end_detail(), "slurm job 42 CANCELLED by root");
  ASSERT_OK_AND_ASSIGN(const absl::Time ended_at,
                       FromProto("ended_at", done.ended_at()));
  EXPECT_EQ(ended_at, driver_.now());
  // The queue moved into the GPUs it freed, and the agent is told to run
  // that one instead.
  EXPECT_EQ(Allocation(queued.allocation_id()).state(),
            pb::ALLOCATION_STATE_ASSIGNED);
  EXPECT_EQ(Allocation(queued.allocation_id()).cluster_id(), "sz-b");
  const auto& desired =
      static_cast<const pb::HeartbeatResponse&>(*beat.response);
  ASSERT_EQ(desired.allocations_size(), 1);
  EXPECT_EQ(desired.allocations(0).allocation_id(), queued.allocation_id());

  // Usage the agent sends afterwards for the time before the end is
  // charged as for any other end: 8 GPUs × 30 min × 18.00 × 20%.
  const pb::UsageAck ack =
      Report(id, 1, t0, t0 + absl::Minutes(30), 8 * 1'800'000, "");
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED) << ack.reason();
  EXPECT_EQ(ack.subsidy_fen(), 1440);
  EXPECT_TRUE(ack.stop());

  // The rest of the hold goes back after the grace period for late usage.
  const int64_t available = Voucher(a.voucher_id()).available_fen();
  ASSERT_THAT(driver_.Tick(300), IsOk());
  EXPECT_EQ(Allocation(id).held_fen(), 1440);
  driver_.Advance(absl::Seconds(300));
  ASSERT_THAT(driver_.Tick(300), IsOk());
  EXPECT_EQ(Allocation(id).held_fen(), 0);
  EXPECT_EQ(Allocation(id).charged_fen(), 1440);
  EXPECT_EQ(Voucher(a.voucher_id()).available_fen(), available + 1440);
  StateMachine replica;
  ExpectReplayIsExact(replica);
}

TEST_F(ClusterRuntimeTest, BadHeartbeatTextsAreRefusedNamingTheField) {
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 1, 3600));
  const struct {
    std::string access;
    std::string end_detail;
    std::string message;
  } cases[] = {
      {std::string(1025, 'a'), "",
       "allocations[1].access: must be 0..1024 characters, got 1025: \"" +
           std::string(64, 'a') + "...\" (1025 bytes)"},
      // Cut before a character, never inside it.
      {Repeat("算", 1025), "",
       "allocations[1].access: must be 0..1024 characters, got 1025: \"" +
           Repeat("算", 21) + "...\" (3075 bytes)"},
      {"ssh \x1b[2Jhost", "",
       "allocations[1].access: must be printable text (line feeds allowed), "
       "got U+001B at character offset 4"},
      {"ssh login\r\nsrun", "",
       "allocations[1].access: must be printable text (line feeds allowed), "
       "got U+000D at character offset 9"},
      {"ssh \xC3", "",
       "allocations[1].access: must be valid UTF-8, got a malformed sequence "
       "at byte offset 4"},
      {"", std::string(257, 'd'),
       "allocations[1].end_detail: must be 0..256 characters, got 257: \"" +
           std::string(64, 'd') + "...\" (257 bytes)"},
      {"", "job 42\nCANCELLED",
       "allocations[1].end_detail: must be one line of printable text, got "
       "U+000A at character offset 6"},
  };
  for (const auto& c : cases) {
    // The first observation alone would change the state; the bad second
    // one refuses the whole heartbeat.
    pb::ObservedAllocation bad = Observed(a.allocation_id(), c.access);
    bad.set_ended_on_cluster(true);
    bad.set_end_detail(c.end_detail);
    ExpectRejected(
        HeartbeatCommand("sz-b", {Observed(a.allocation_id(), "ssh x"), bad}),
        kInvalid, c.message);
  }
  EXPECT_EQ(Allocation(a.allocation_id()).state(),
            pb::ALLOCATION_STATE_ASSIGNED);
  // At the limits, and with line feeds in the access, it is accepted.
  pb::ObservedAllocation fine =
      Observed(a.allocation_id(), Repeat("算", 1023) + "\n");
  fine.set_ended_on_cluster(true);
  fine.set_end_detail(Repeat("é", 256));
  ASSERT_THAT(Beat("sz-b", {fine}), IsOk());
  EXPECT_EQ(Allocation(a.allocation_id()).end_detail(), Repeat("é", 256));
}

TEST_F(ClusterRuntimeTest, MeterIsAnyShortLineOfText) {
  pb::RegisterRequest registration =
      ::computevoucher::testing::WorldClusters()[0].registration;
  const struct {
    std::string meter;
    std::string message;
  } cases[] = {
      {std::string(65, 'm'), "meter: must be 0..64 characters, got 65: \"" +
                                 std::string(64, 'm') + "...\" (65 bytes)"},
      {"slurm\tsimulated",
       "meter: must be one line of printable text, got U+0009 at character "
       "offset 5"},
  };
  for (const auto& c : cases) {
    registration.set_meter(c.meter);
    pb::Command command = NewCommand(AgentPrincipal("hz-a"), "register-bad");
    *command.mutable_register_cluster() = registration;
    ExpectRejected(command, kInvalid, c.message);
  }
  const std::string fine[] = {"slurm+simulated", "process+nvml", "",
                              std::string(64, 'm')};
  for (const std::string& meter : fine) {
    registration.set_meter(meter);
    pb::Command command = NewCommand(AgentPrincipal("hz-a"),
                                     absl::StrCat("register-", meter.size()));
    *command.mutable_register_cluster() = registration;
    EXPECT_THAT(driver_.Apply(command), IsOk()) << meter;
  }
}

TEST_F(ClusterRuntimeTest, EvidenceIsCheckedAndKeptWithTheUsage) {
  ASSERT_OK_AND_ASSIGN(const pb::Allocation a,
                       driver_.Allocate("E-000001", "H100", 1, 3600));
  const std::string& id = a.allocation_id();
  const absl::Time t0 = driver_.now();
  driver_.Advance(absl::Minutes(10));
  state_.TakeUsage();
  const struct {
    std::string evidence;
    std::string reason;
  } cases[] = {
      {std::string(513, 'e'),
       "evidence: must be 0..512 characters, got 513: \"" +
           std::string(64, 'e') + "...\" (513 bytes)"},
      {"slurm job 42 \xFF",
       "evidence: must be valid UTF-8, got a malformed "
       "sequence at byte offset 13"},
      {"slurm job 42\x07",
       "evidence: must be printable text (line feeds "
       "allowed), got U+0007 at character offset 12"},
  };
  int64_t sequence = 0;
  for (const auto& c : cases) {
    // Refused like any record with a bad field: its sequence number is
    // used up, nothing is charged or recorded.
    const pb::UsageAck ack =
        Report(id, ++sequence, t0, t0 + absl::Minutes(1), 60'000, c.evidence);
    EXPECT_EQ(ack.result(), pb::USAGE_RESULT_REJECTED);
    EXPECT_EQ(ack.reason(), c.reason);
  }
  EXPECT_EQ(Allocation(id).used_gpu_ms(), 0);
  EXPECT_EQ(Allocation(id).charged_fen(), 0);
  EXPECT_TRUE(state_.TakeUsage().empty());

  const std::string evidence =
      "slurm job 42 RUNNING; steps 2 (1 running)\n" + Repeat("步", 470);
  const pb::UsageAck ack =
      Report(id, ++sequence, t0, t0 + absl::Minutes(1), 60'000, evidence);
  EXPECT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED) << ack.reason();
  const std::vector<pb::ChargedUsage> rows = state_.TakeUsage();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].record().evidence(), evidence);
  EXPECT_THAT(ack.reason(), IsEmpty());
}

class ClusterTermsTest : public StateMachineTest {
 protected:
  // sz-b's agent registers again with `inventory`.
  absl::StatusOr<pb::RegisterResponse> Reregister(
      std::vector<pb::GpuModel> inventory) {
    pb::Command c = NewCommand(AgentPrincipal("sz-b"),
                               absl::StrCat("rereg-", ++registrations_));
    *c.mutable_register_cluster() =
        ::computevoucher::testing::WorldClusters()[1].registration;
    c.mutable_register_cluster()->clear_inventory();
    for (pb::GpuModel& m : inventory) {
      *c.mutable_register_cluster()->add_inventory() = std::move(m);
    }
    return driver_.Call<pb::RegisterResponse>(std::move(c));
  }
  static pb::GpuModel Model(const std::string& model, pb::HardwareClass hc,
                            int32_t count, int64_t price_fen) {
    pb::GpuModel m;
    m.set_model(model);
    m.set_hardware_class(hc);
    m.set_gpu_count(count);
    m.set_price_fen_per_gpu_hour(price_fen);
    return m;
  }
  pb::Cluster SzB() {
    return *driver_.state().ClusterView("sz-b");
  }
  absl::Status Approve() {
    pb::Command c = NewCommand(::computevoucher::testing::AdminPrincipal(),
                               absl::StrCat("approve-", ++registrations_));
    c.mutable_set_cluster_state()->set_cluster_id("sz-b");
    c.mutable_set_cluster_state()->set_state(pb::CLUSTER_STATE_APPROVED);
    return driver_.Apply(std::move(c)).status();
  }
  int registrations_ = 0;
};

TEST_F(ClusterTermsTest, AProviderCannotRaiseItsOwnSubsidy) {
  ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 100'000 * kYuan), IsOk());
  // sz-b sells 8 × H100 "other" at 18.00 CNY; a running allocation on it.
  absl::StatusOr<pb::Allocation> before =
      driver_.Allocate("E-000001", "H100", 1, 3600);
  ASSERT_THAT(before, IsOk());
  ASSERT_EQ(before->cluster_id(), "sz-b");
  // Its agent registers again as "domestic" at 900.00 CNY, and more GPUs.
  ASSERT_THAT(Reregister({Model("H100", pb::HARDWARE_CLASS_DOMESTIC, 16,
                                90'000)}),
              IsOk());
  const pb::Cluster pending = SzB();
  EXPECT_EQ(pending.state(), pb::CLUSTER_STATE_APPROVED);
  ASSERT_EQ(pending.inventory_size(), 1);
  EXPECT_EQ(pending.inventory(0).hardware_class(), pb::HARDWARE_CLASS_OTHER);
  EXPECT_EQ(pending.inventory(0).price_fen_per_gpu_hour(), 1800);
  EXPECT_EQ(pending.inventory(0).gpu_count(), 8);
  ASSERT_EQ(pending.proposed_inventory_size(), 1);
  EXPECT_EQ(pending.proposed_inventory(0).price_fen_per_gpu_hour(), 90'000);
  // New allocations are still sold on the approved terms.
  absl::StatusOr<pb::Allocation> meanwhile =
      driver_.Allocate("E-000001", "H100", 1, 3600);
  ASSERT_THAT(meanwhile, IsOk());
  EXPECT_EQ(meanwhile->price_fen_per_gpu_hour(), 1800);
  EXPECT_EQ(meanwhile->hardware_class(), pb::HARDWARE_CLASS_OTHER);
  // The same proposal again changes nothing.
  const size_t logged = driver_.log().size();
  ASSERT_THAT(Reregister({Model("H100", pb::HARDWARE_CLASS_DOMESTIC, 16,
                                90'000)}),
              IsOk());
  EXPECT_EQ(driver_.log().size(), logged);

  // The program office approves: the new terms apply to new allocations;
  // the running ones keep theirs.
  ASSERT_THAT(Approve(), IsOk());
  const pb::Cluster approved = SzB();
  EXPECT_THAT(approved.proposed_inventory(), IsEmpty());
  EXPECT_EQ(approved.inventory(0).price_fen_per_gpu_hour(), 90'000);
  EXPECT_EQ(driver_.state().AllocationView(before->allocation_id())
                ->price_fen_per_gpu_hour(),
            1800);
}

TEST_F(ClusterTermsTest, SellingLessAppliesAtOnce) {
  // Fewer GPUs of an approved model, same class and price: no review.
  ASSERT_THAT(Reregister({Model("H100", pb::HARDWARE_CLASS_OTHER, 4, 1800)}),
              IsOk());
  EXPECT_EQ(SzB().inventory(0).gpu_count(), 4);
  EXPECT_THAT(SzB().proposed_inventory(), IsEmpty());
  // A cheaper price is a change of terms all the same: reviewed.
  ASSERT_THAT(Reregister({Model("H100", pb::HARDWARE_CLASS_OTHER, 4, 1000)}),
              IsOk());
  EXPECT_EQ(SzB().inventory(0).price_fen_per_gpu_hour(), 1800);
  EXPECT_EQ(SzB().proposed_inventory_size(), 1);
  // Going back to the approved terms withdraws the proposal.
  ASSERT_THAT(Reregister({Model("H100", pb::HARDWARE_CLASS_OTHER, 4, 1800)}),
              IsOk());
  EXPECT_THAT(SzB().proposed_inventory(), IsEmpty());
}

TEST_F(StateMachineTest, ModelsMatchInAnyCaseOnlyWhenTheCommandSaysSo) {
  ASSERT_THAT(driver_.Issue("P-000001", "E-000003", 10'000 * kYuan).status(),
              IsOk());
  auto allocate = [](const std::string& request_id, int32_t gpus,
                     bool any_case) {
    pb::Command c = NewCommand(EnterprisePrincipal("E-000003"), request_id);
    pb::ResourceRequest* r = c.mutable_allocate()->mutable_resources();
    r->set_gpu_model("h100");
    r->set_gpu_count(gpus);
    r->set_max_duration_s(3600);
    r->set_model_any_case(any_case);
    c.mutable_allocate()->set_queue_if_busy(true);
    return c;
  };
  // A command logged before the flag matches the exact spelling, as it
  // did, and the error names the models there are.
  ExpectRejected(allocate("old", 8, false),
                 absl::StatusCode::kFailedPrecondition,
                 "offers 8 × h100; models on offer: 910B, H100");
  ASSERT_OK_AND_ASSIGN(const pb::Allocation first,
                       driver_.Call<pb::Allocation>(allocate("a", 8, true)));
  EXPECT_EQ(first.gpu_model(), "H100");
  ASSERT_OK_AND_ASSIGN(const pb::Allocation second,
                       driver_.Call<pb::Allocation>(allocate("b", 8, true)));
  // A retry from before the flag existed is the same request.
  ASSERT_OK_AND_ASSIGN(const pb::Allocation retried,
                       driver_.Call<pb::Allocation>(allocate("b", 8, false)));
  EXPECT_EQ(retried.allocation_id(), second.allocation_id());
  // Queued, it is placed later on "H100" too.
  ASSERT_OK_AND_ASSIGN(const pb::Allocation queued,
                       driver_.Call<pb::Allocation>(allocate("c", 1, true)));
  EXPECT_EQ(queued.state(), pb::ALLOCATION_STATE_PENDING);
  ASSERT_THAT(driver_.Release("E-000003", first.allocation_id()), IsOk());
  const pb::Allocation placed = Allocation(queued.allocation_id());
  EXPECT_EQ(placed.state(), pb::ALLOCATION_STATE_ASSIGNED);
  EXPECT_EQ(placed.gpu_model(), "H100");
}

}  // namespace
}  // namespace computevoucher::core
