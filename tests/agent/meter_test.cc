#include "agent/meter.h"

#include <vector>

#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace computevoucher::agent {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

GpuReading Reading(int32_t util_bp, uint64_t energy_mj) {
  GpuReading g;
  g.utilization_bp = util_bp;
  g.energy_mj = energy_mj;
  g.energy_supported = true;
  return g;
}

TEST(UsageMeter, ARecordIsGpusTimesItsIntervalWithMeanUtilisationAndEnergy) {
  UsageMeter meter(kT0);
  // GPUs 0 and 1 are the allocation's; 2 is someone else's.
  EXPECT_EQ(meter.AddReadings({0, 1}, {{0, Reading(8000, 1000)},
                                       {1, Reading(6000, 5000)},
                                       {2, Reading(0, 0)}}),
            7000);
  EXPECT_EQ(meter.AddReadings({0, 1}, {{0, Reading(4000, 1300)},
                                       {1, Reading(2000, 5200)}}),
            3000);
  std::optional<pb::UsageRecord> u =
      meter.Record("AL-1", 7, 2, kT0 + absl::Milliseconds(1500), "ev");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->allocation_id(), "AL-1");
  EXPECT_EQ(u->sequence(), 7);
  EXPECT_EQ(*FromProto("start", u->start()), kT0);
  EXPECT_EQ(*FromProto("end", u->end()), kT0 + absl::Milliseconds(1500));
  EXPECT_EQ(u->gpu_ms(), 3000);
  EXPECT_EQ(u->mean_utilization_bp(), 5000);
  EXPECT_EQ(u->energy_mj(), 300 + 200);  // growth since the first reading
  EXPECT_EQ(u->evidence(), "ev");
}

TEST(UsageMeter, AdvanceStartsTheNextIntervalAfresh) {
  UsageMeter meter(kT0);
  meter.AddReadings({0}, {{0, Reading(9000, 100)}});
  meter.AddReadings({0}, {{0, Reading(9000, 400)}});
  meter.Advance(kT0 + absl::Seconds(1));
  EXPECT_EQ(meter.interval_start(), kT0 + absl::Seconds(1));
  // No sample in the new interval yet: the last one's utilisation, no
  // energy.
  std::optional<pb::UsageRecord> u =
      meter.Record("AL-1", 2, 1, kT0 + absl::Seconds(2), "");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->mean_utilization_bp(), 9000);
  EXPECT_EQ(u->energy_mj(), 0);
  EXPECT_EQ(u->gpu_ms(), 1000);
  // Energy keeps counting from the last reading, not from zero.
  meter.AddReadings({0}, {{0, Reading(9000, 450)}});
  EXPECT_EQ(meter.Record("AL-1", 2, 1, kT0 + absl::Seconds(2), "")->energy_mj(),
            50);
}

TEST(UsageMeter, AnEmptyIntervalHasNoRecord) {
  UsageMeter meter(kT0);
  EXPECT_FALSE(meter.Record("AL-1", 1, 1, kT0, "").has_value());
  EXPECT_FALSE(meter.Record("AL-1", 1, 1, kT0 - absl::Seconds(1), "").has_value());
}

TEST(UsageMeter, ACounterThatWentBackAddsNothing) {
  UsageMeter meter(kT0);
  meter.AddReadings({0}, {{0, Reading(1, 10'000)}});
  meter.AddReadings({0}, {{0, Reading(1, 50)}});   // driver reloaded
  meter.AddReadings({0}, {{0, Reading(1, 80)}});
  EXPECT_EQ(meter.Record("AL-1", 1, 1, kT0 + absl::Seconds(1), "")->energy_mj(),
            30);
}

TEST(UsageMeter, NoGpuReadIsNoSample) {
  UsageMeter meter(kT0);
  EXPECT_EQ(meter.AddReadings({3}, {{0, Reading(5000, 0)}}), std::nullopt);
}

TEST(UsageMeter, StartsNoEarlierThanTheRuntimeGaveTheGpus) {
  UsageMeter meter(kT0);
  meter.StartNoEarlierThan(kT0 + absl::Seconds(5));
  EXPECT_EQ(meter.interval_start(), kT0 + absl::Seconds(5));
  // Never back before what was already spooled.
  meter.StartNoEarlierThan(kT0);
  EXPECT_EQ(meter.interval_start(), kT0 + absl::Seconds(5));
}

TEST(IdleTracker, IdleOnlyAfterTheWholeSpan) {
  IdleTracker idle(absl::Seconds(10));
  using Change = IdleTracker::Change;
  EXPECT_EQ(idle.Observe(true, kT0), Change::kNone);
  EXPECT_EQ(idle.Observe(true, kT0 + absl::Seconds(9)), Change::kNone);
  EXPECT_FALSE(idle.idle());
  EXPECT_EQ(idle.Observe(true, kT0 + absl::Seconds(10)), Change::kBecameIdle);
  EXPECT_TRUE(idle.idle());
  EXPECT_EQ(idle.Observe(true, kT0 + absl::Seconds(11)), Change::kNone);
  EXPECT_EQ(idle.Observe(false, kT0 + absl::Seconds(12)), Change::kBusyAgain);
  EXPECT_FALSE(idle.idle());
  // A busy sample restarts the span.
  EXPECT_EQ(idle.Observe(true, kT0 + absl::Seconds(13)), Change::kNone);
  EXPECT_EQ(idle.Observe(false, kT0 + absl::Seconds(14)), Change::kNone);
  EXPECT_EQ(idle.Observe(true, kT0 + absl::Seconds(15)), Change::kNone);
  EXPECT_EQ(idle.Observe(true, kT0 + absl::Seconds(24)), Change::kNone);
  EXPECT_EQ(idle.Observe(true, kT0 + absl::Seconds(25)), Change::kBecameIdle);
}

}  // namespace
}  // namespace computevoucher::agent
