// The snapshotter building its copy of the state from the store, and when
// the copy falls far behind the writer: the copy is dropped, built again
// from the store, and snapshots go on.
#include "scheduler/engine/snapshotter.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/scheduler/engine/forwarding_log.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/world.h"

namespace computevoucher::engine {
namespace {

using ::computevoucher::testing::IsOk;
using store::Batch;

// A command log whose first WriteSnapshot waits until Release(), so that
// the test can commit batches while the snapshotter is busy.
class HeldSnapshots final : public ForwardingLog {
 public:
  using ForwardingLog::ForwardingLog;

  void Release() { release_.Notify(); }
  // False after 30 s; then a snapshot that comes later is not held, so
  // that the snapshotter can still be stopped.
  bool AwaitHeld() {
    if (held_.WaitForNotificationWithTimeout(absl::Seconds(30))) return true;
    Release();
    return false;
  }

  absl::Status WriteSnapshot(const store::Snapshot& snapshot,
                             int keep) override {
    if (!held_.HasBeenNotified()) {
      held_.Notify();
      release_.WaitForNotification();
    }
    return ForwardingLog::WriteSnapshot(snapshot, keep);
  }

 private:
  absl::Notification held_;
  absl::Notification release_;
};

// A program's first commands in a store, one batch each, as the writer
// stores them.
class SnapshotterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(testing::MakeTempDir("snapshotter_test", temp_));
    ASSERT_THAT(driver_.BuildWorld(), IsOk());
    driver_.Advance(absl::Seconds(2));
    ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 100'000), IsOk());
    for (const pb::Command& c : driver_.log()) {
      batches_[c.sequence()].commands.push_back(c);
    }
    for (const pb::JournalEntry& e : state_.TakeJournal()) {
      batches_[e.command_sequence()].entries.push_back(e);
    }
    ASSERT_OK_AND_ASSIGN(store_,
                         store::OpenSqliteStore(temp_.path() + "/data",
                                                store::OpenMode::kReadWrite));
    for (const auto& [sequence, batch] : batches_) {
      ASSERT_THAT(store_->Append(batch), IsOk());
    }
    head_ = driver_.log().back().sequence();
    ASSERT_GT(head_, 8);
  }

  // A snapshot due after every command, however long the last one took.
  static SnapshotOptions EveryCommand() {
    SnapshotOptions options;
    options.every = 1;
    options.pause = 0;
    return options;
  }

  testing::TempDir temp_;
  testing::FakeClock clock_{testing::WorldStart()};
  core::StateMachine state_;
  testing::Driver driver_{state_};
  std::map<int64_t, Batch> batches_;
  std::unique_ptr<store::Store> store_;
  int64_t head_ = 0;
};

// The rows the copy is built from are read for their commands alone: their
// entries and usage records, decoded with them, are not kept for the
// serving scheduler's life.
TEST_F(SnapshotterTest, BuildingTheCopyDropsTheRowsItRead) {
  class Counting final : public ForwardingLog {
   public:
    using ForwardingLog::ForwardingLog;
    void DropReadCache() override {
      drops.fetch_add(1);
      ForwardingLog::DropReadCache();
    }
    std::atomic<int> drops{0};
  };
  Counting counting(*store_);
  // Due at once: the copy is built from the store up to the head.
  Snapshotter snapshotter(counting, clock_, EveryCommand(), /*start=*/head_);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (snapshotter.stats().last != head_ && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  snapshotter.Stop();
  EXPECT_EQ(snapshotter.stats().last, head_);
  EXPECT_EQ(counting.drops.load(), 1);
}

TEST_F(SnapshotterTest, ACopyFarBehindIsBuiltAgainFromTheStore) {
  // The writer started after command 2; the first snapshot is due at once
  // and is held while the rest are committed, far more than the copy may
  // fall behind.
  HeldSnapshots held(*store_);
  SnapshotOptions options = EveryCommand();
  options.max_behind = 3;
  Snapshotter snapshotter(held, clock_, options, /*start=*/2);
  ASSERT_TRUE(held.AwaitHeld());
  for (int64_t sequence = 3; sequence <= head_; ++sequence) {
    snapshotter.Committed(batches_[sequence].commands);
  }
  held.Release();

  // The copy is built again from the store and a snapshot taken at its head.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (snapshotter.stats().last != head_ && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const SnapshotStats stats = snapshotter.stats();
  EXPECT_EQ(stats.last, head_);
  EXPECT_EQ(stats.snapshots, 2);
  EXPECT_EQ(stats.failures, 0);
  ASSERT_OK_AND_ASSIGN(const std::vector<int64_t> stored,
                       store_->ListSnapshots());
  EXPECT_THAT(stored, ::testing::ElementsAre(head_, 2));

  // And batches committed after the rebuild reach the copy again.
  ASSERT_THAT(driver_.Issue("P-000001", "E-000002", 500), IsOk());
  Batch next;
  next.commands.push_back(driver_.log().back());
  next.entries = state_.TakeJournal();
  ASSERT_THAT(store_->Append(next), IsOk());
  snapshotter.Committed(next.commands);
  const absl::Time later = absl::Now() + absl::Seconds(30);
  while (snapshotter.stats().last != head_ + 1 && absl::Now() < later) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(snapshotter.stats().last, head_ + 1);
  snapshotter.Stop();
}

// A stop that is not planned (a leader that lost its lease, a writer only
// destroyed) leaves the store as a kill would: what the copy had not
// applied stays in the store for the next start, and no snapshot is stored
// for it, even one that is due.
TEST_F(SnapshotterTest, StopLeavesWhatWaitsAsAKillWould) {
  // The first snapshot, at command 2, is due at once and held while the
  // rest are committed; each command makes another one due.
  HeldSnapshots held(*store_);
  Snapshotter snapshotter(held, clock_, EveryCommand(), /*start=*/2);
  ASSERT_TRUE(held.AwaitHeld());
  for (int64_t sequence = 3; sequence < head_; ++sequence) {
    snapshotter.Committed(batches_[sequence].commands);
  }
  std::thread stopper([&snapshotter] { snapshotter.Stop(); });
  // Committed() takes nothing once Stop() was called: what waits stops
  // growing. (A batch committed twice is applied once.)
  const std::vector<pb::Command>& last = batches_[head_].commands;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  int64_t behind = snapshotter.stats().behind;
  while (absl::Now() < deadline) {
    snapshotter.Committed(last);
    const int64_t now_behind = snapshotter.stats().behind;
    if (now_behind == behind) break;
    behind = now_behind;
  }
  held.Release();
  stopper.join();

  const SnapshotStats stats = snapshotter.stats();
  EXPECT_EQ(stats.snapshots, 1);
  EXPECT_EQ(stats.last, 2);
  ASSERT_OK_AND_ASSIGN(const std::vector<int64_t> stored,
                       store_->ListSnapshots());
  EXPECT_THAT(stored, ::testing::ElementsAre(2));
}

// The first stop decides how the snapshotter stops: a planned stop after
// another one says so.
TEST_F(SnapshotterTest, APlannedStopAfterAStopSaysSo) {
  Snapshotter snapshotter(*store_, clock_, EveryCommand(), /*start=*/head_);
  snapshotter.Stop();
  EXPECT_THAT(snapshotter.StopWithSnapshot(),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition,
                                ::testing::HasSubstr("stopped before")));
}

}  // namespace
}  // namespace computevoucher::engine
