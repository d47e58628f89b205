// Snapshots through the writer, on every store (SQLite and PostgreSQL):
// the writer stores them as it goes, start-up loads the newest and replays
// only the commands after it, a corrupted or forged one is never used (the
// older one is, and verify names it), and a writer whose snapshots cannot
// be stored goes on serving.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/engine/replay.h"
#include "scheduler/engine/replica.h"
#include "scheduler/engine/snapshots.h"
#include "scheduler/engine/writer.h"
#include "tests/scheduler/engine/forwarding_log.h"
#include "tests/scheduler/engine/writer_fixture.h"
#include "tests/scheduler/store/store_backend.h"

namespace computevoucher::engine {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr int kVouchers = 23;

class SnapshotTest : public WriterTest,
                     public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(WriterTest::SetUp());
    absl::StatusOr<std::unique_ptr<store::StoreBackend>> backend =
        store::MakeStoreBackend(GetParam(), root_);
    if (backend.status().code() == absl::StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << backend.status().message();
    }
    ASSERT_THAT(backend, IsOk());
    backend_ = *std::move(backend);
    options_.snapshots.every = 5;
    options_.snapshots.interval = absl::ZeroDuration();
    options_.snapshots.kept = 2;
    options_.snapshots.pause = 0;
  }
  void TearDown() override { backend_.reset(); }

  // options_, but no snapshot comes due on the way: only a planned stop
  // stores one.
  WriterOptions Rare() const {
    WriterOptions rare = options_;
    rare.snapshots.every = 1'000'000;
    return rare;
  }

  std::unique_ptr<Store> Open(OpenMode mode = OpenMode::kReadWrite) {
    absl::StatusOr<std::unique_ptr<Store>> store = backend_->Open(mode);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  // The world and kVouchers vouchers, through a writer that stores a
  // snapshot every 5 commands, two kept, closed (a planned stop) and
  // started again half way. Each close stores a snapshot at its last
  // command, so the newest is at the head and two are kept, whatever the
  // pace of the snapshotter's thread. Leaves the store closed.
  void Populate() {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    for (int half = 0; half < 2; ++half) {
      std::unique_ptr<Writer> writer = OpenWriter(*store, options_);
      ASSERT_NE(writer, nullptr);
      if (half == 0) {
        ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
      }
      for (int i = half * kVouchers / 2; i < (half + 1) * kVouchers / 2; ++i) {
        ASSERT_THAT(writer->Submit(IssueCommand(absl::StrCat("issue-", i),
                                                "E-000001", 1'000 + i)),
                    IsOk());
      }
      digest_ = Digest(*writer);
      EXPECT_THAT(writer->Close(), IsOk());
      EXPECT_EQ(writer->stats().snapshots.failures, 0);
      EXPECT_GT(writer->stats().snapshots.snapshots, 0);
    }
    head_ = HeadOf(*store).command_sequence;
    ASSERT_OK_AND_ASSIGN(positions_, store->ListSnapshots());
    ASSERT_THAT(positions_, SizeIs(2));
  }

  // The auditor's replay from the first command.
  ReplayReport FullReplay(Store& store, std::string* digest = nullptr) {
    core::StateMachine state;
    absl::StatusOr<ReplayReport> report = Replay(store, store, store, state);
    EXPECT_THAT(report, IsOk());
    if (digest != nullptr) *digest = absl::BytesToHexString(state.Digest());
    return report.ok() ? *report : ReplayReport{};
  }

  std::string RecoveredDigest(Store& store) {
    absl::StatusOr<std::unique_ptr<core::StateMachine>> state = Recover(store);
    EXPECT_THAT(state, IsOk());
    return state.ok() ? absl::BytesToHexString((*state)->Digest()) : "";
  }

  std::unique_ptr<store::StoreBackend> backend_;
  WriterOptions options_;
  std::string digest_;
  int64_t head_ = 0;
  std::vector<int64_t> positions_;  // of the snapshots Populate stored
};

TEST_P(SnapshotTest, StartUpLoadsTheNewestAndReplaysOnlyTheCommandsAfterIt) {
  ASSERT_NO_FATAL_FAILURE(Populate());
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_GT(positions_[0], head_ - 5);

  ReplayReport full = FullReplay(*store);
  EXPECT_THAT(full.violations, IsEmpty())
      << absl::StrJoin(full.violations, "\n");
  EXPECT_EQ(full.snapshots_checked, 2);
  EXPECT_EQ(full.commands, head_);
  EXPECT_EQ(RecoveredDigest(*store), digest_);

  // Start-up never reads the commands before the snapshot: with the first
  // one gone it still starts, while the auditor's replay names the gap.
  store.reset();
  ASSERT_THAT(backend_->ForgeLog([](std::vector<store::Batch>& batches) {
    ASSERT_TRUE(store::EraseCommand(batches, 1));
  }),
              IsOk());
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RecoveredDigest(*store), digest_);
  std::unique_ptr<Writer> writer = OpenWriter(*store, options_);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(Digest(*writer), digest_);
  // And goes on from there.
  ASSERT_THAT(writer->Submit(IssueCommand("after-restart", "E-000001", 7)),
              IsOk());
  writer->Stop();
  full = FullReplay(*store);
  EXPECT_THAT(full.violations, Contains(HasSubstr("command 1 is missing")))
      << absl::StrJoin(full.violations, "\n");
}

// Start-up frees the rows it read for the tail: nothing reads their
// usage records, which would stay in memory for as long as it runs.
TEST_P(SnapshotTest, StartUpDropsTheRowsItReadForTheTail) {
  ASSERT_NO_FATAL_FAILURE(Populate());
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  class Counting final : public ForwardingLog {
   public:
    using ForwardingLog::ForwardingLog;
    void DropReadCache() override {
      ++drops;
      ForwardingLog::DropReadCache();
    }
    int drops = 0;
  };
  Counting counting(*store);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<core::StateMachine> state,
                       Recover(counting));
  EXPECT_EQ(counting.drops, 1);
  EXPECT_EQ(absl::BytesToHexString(state->Digest()), digest_);
}

// A planned stop (Close) stores a snapshot of the last command, so that the
// next start replays nothing; Stop alone, as a leader that lost its lease
// stops, leaves the tail to the next start.
TEST_P(SnapshotTest, APlannedStopLeavesASnapshotAtTheLastCommand) {
  ASSERT_NO_FATAL_FAILURE(Populate());
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  auto submit_and_end = [&](bool planned) {
    std::unique_ptr<Writer> writer = OpenWriter(*store, Rare());
    ASSERT_NE(writer, nullptr);
    for (int i = 0; i < 3; ++i) {
      ASSERT_THAT(
          writer->Submit(IssueCommand(absl::StrCat("planned-", planned, "-", i),
                                      "E-000001", 5)),
          IsOk());
    }
    digest_ = Digest(*writer);
    if (planned) {
      // A tick with nothing to do: answered, not logged, yet it moves the
      // writer's clock. The snapshot is of the commands logged.
      clock_.Advance(absl::Minutes(5));
      pb::Command tick;
      tick.mutable_tick();
      ASSERT_OK_AND_ASSIGN(const core::Outcome ticked,
                           writer->Submit(std::move(tick)));
      EXPECT_FALSE(ticked.changed);
      EXPECT_THAT(writer->Close(), IsOk());
    } else {
      writer->Stop();
    }
    EXPECT_EQ(writer->stats().snapshots.snapshots, planned ? 1 : 0);
  };
  ASSERT_NO_FATAL_FAILURE(submit_and_end(false));
  ASSERT_OK_AND_ASSIGN(std::vector<int64_t> stored, store->ListSnapshots());
  EXPECT_EQ(stored, positions_);
  EXPECT_LT(stored.front(), HeadOf(*store).command_sequence);

  ASSERT_NO_FATAL_FAILURE(submit_and_end(true));
  const int64_t head = HeadOf(*store).command_sequence;
  ASSERT_OK_AND_ASSIGN(stored, store->ListSnapshots());
  EXPECT_THAT(stored, ElementsAre(head, positions_.front()));  // two kept
  EXPECT_EQ(RecoveredDigest(*store), digest_);
  // Its clock is the last logged command's, as replaying gives it: a later
  // one would refuse a command another replica logs next, at a time
  // between the two.
  ASSERT_OK_AND_ASSIGN(const store::Snapshot at_head,
                       store->ReadSnapshot(head));
  ASSERT_OK_AND_ASSIGN(const pb::StateSnapshot saved, DecodeSnapshot(at_head));
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Command> last,
                       store->ReadCommands(head - 1, 1));
  ASSERT_THAT(last, SizeIs(1));
  EXPECT_EQ(saved.books().now().DebugString(), last[0].time().DebugString());

  // Nothing committed since: a second planned stop stores nothing more.
  std::unique_ptr<Writer> writer = OpenWriter(*store, Rare());
  ASSERT_NE(writer, nullptr);
  EXPECT_THAT(writer->Close(), IsOk());
  ASSERT_OK_AND_ASSIGN(stored, store->ListSnapshots());
  EXPECT_THAT(stored, ElementsAre(head, positions_.front()));

  // The auditor's replay checks the new one like the others.
  writer.reset();
  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  const ReplayReport full = FullReplay(*store);
  EXPECT_THAT(full.violations, IsEmpty())
      << absl::StrJoin(full.violations, "\n");
  EXPECT_EQ(full.snapshots_checked, 2);
}

// The server's path: a replica stopped on purpose leaves a snapshot at its
// last command; one that lost its lease only stops.
TEST_P(SnapshotTest, AStoppedLeaderLeavesASnapshotAndOneThatLostItsLeaseNot) {
  ASSERT_NO_FATAL_FAILURE(Populate());
  ReplicaOptions options;
  options.lease = absl::Milliseconds(200);
  options.writer = Rare();
  for (const bool lose : {true, false}) {
    SCOPED_TRACE(lose ? "lost its lease" : "stopped");
    FaultyStore store(Open(OpenMode::kReplica));
    const int64_t newest = [&] {
      absl::StatusOr<std::vector<int64_t>> stored = store.ListSnapshots();
      return stored.ok() && !stored->empty() ? stored->front() : -1;
    }();
    Replica replica(store, clock_, options);
    ASSERT_THAT(replica.Start("127.0.0.1:1"), IsOk());
    ASSERT_TRUE(replica.leading());
    ASSERT_OK_AND_ASSIGN(std::shared_ptr<Writer> writer, replica.writer());
    for (int i = 0; i < 3; ++i) {
      ASSERT_THAT(writer->Submit(IssueCommand(
                      absl::StrCat("replica-", lose, "-", i), "E-000001", 5)),
                  IsOk());
    }
    writer.reset();
    if (lose) {
      store.set_lose_campaigns(true);
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (replica.leading() && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(5));
      }
      ASSERT_FALSE(replica.leading());
    }
    replica.Stop();
    const int64_t head = HeadOf(store).command_sequence;
    ASSERT_OK_AND_ASSIGN(const std::vector<int64_t> stored,
                         store.ListSnapshots());
    ASSERT_FALSE(stored.empty());
    if (lose) {
      EXPECT_EQ(stored.front(), newest);
      EXPECT_LT(stored.front(), head);
    } else {
      EXPECT_EQ(stored.front(), head);
    }
  }
}

TEST_P(SnapshotTest, APlannedStopThatCannotStoreItsSnapshotSaysSo) {
  auto faulty = std::make_unique<FaultyStore>(Open());
  FaultyStore& store = *faulty;
  store.set_fail_snapshot_writes(true);
  std::unique_ptr<Writer> writer = OpenWriter(store, Rare());
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
  EXPECT_THAT(writer->Close(), Not(IsOk()));
  ASSERT_OK_AND_ASSIGN(std::vector<int64_t> positions, store.ListSnapshots());
  EXPECT_THAT(positions, IsEmpty());
  // The commands are durable all the same.
  EXPECT_EQ(RecoveredDigest(store), Digest(*writer));
}

TEST_P(SnapshotTest, ACorruptedSnapshotIsNeverUsedAndVerifyNamesIt) {
  ASSERT_NO_FATAL_FAILURE(Populate());
  const std::vector<int64_t>& positions = positions_;
  // Bytes that no longer hash to their digest.
  ASSERT_THAT(backend_->Execute(absl::StrCat(
                  "UPDATE snapshots SET digest = state WHERE position = ",
                  positions[0])),
              IsOk());
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(const Recovered recovered, LoadNewestSnapshot(*store));
  EXPECT_EQ(recovered.position, positions[1]);
  EXPECT_THAT(recovered.refused,
              ElementsAre(AllOf(HasSubstr(absl::StrCat(
                                    "snapshot at command ", positions[0])),
                                HasSubstr("do not hash to the digest"))));
  // Start-up falls back to the older one and reaches the same state.
  EXPECT_EQ(RecoveredDigest(*store), digest_);
  const ReplayReport full = FullReplay(*store);
  EXPECT_THAT(full.violations,
              ElementsAre(HasSubstr(absl::StrCat("snapshot at command ",
                                                 positions[0]))));
  EXPECT_EQ(full.snapshots_checked, 2);
}

TEST_P(SnapshotTest, AForgedSnapshotFailsItsDigestAndVerifyNamesIt) {
  ASSERT_NO_FATAL_FAILURE(Populate());
  const std::vector<int64_t>& positions = positions_;
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(const store::Snapshot newest,
                       store->ReadSnapshot(positions[0]));
  ASSERT_OK_AND_ASSIGN(pb::StateSnapshot forged, DecodeSnapshot(newest));
  // A voucher worth more, written as a well-formed snapshot: its bytes hash
  // to their digest, the state in them does not.
  pb::VoucherSnapshot& voucher =
      *forged.mutable_voucher_book()->mutable_vouchers(0);
  voucher.mutable_voucher()->set_face_value_fen(
      voucher.voucher().face_value_fen() + 100);
  store.reset();
  ASSERT_THAT(backend_->Execute("DELETE FROM snapshots"), IsOk());
  store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->WriteSnapshot(EncodeSnapshot(forged), 2), IsOk());

  ASSERT_OK_AND_ASSIGN(const Recovered recovered, LoadNewestSnapshot(*store));
  EXPECT_EQ(recovered.position, 0) << "the forged snapshot was loaded";
  EXPECT_THAT(recovered.refused, ElementsAre(HasSubstr("digest")));
  EXPECT_EQ(RecoveredDigest(*store), digest_);
  const ReplayReport full = FullReplay(*store);
  EXPECT_THAT(full.violations,
              ElementsAre(AllOf(
                  HasSubstr(absl::StrCat("snapshot at command ", positions[0])),
                  HasSubstr("differs from the state replayed"))));
}

TEST_P(SnapshotTest, TheWriterGoesOnWhenSnapshotsCannotBeStored) {
  auto faulty = std::make_unique<FaultyStore>(Open());
  FaultyStore& store = *faulty;
  store.set_fail_snapshot_writes(true);
  std::unique_ptr<Writer> writer = OpenWriter(store, options_);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(SubmitWorld(*writer));
  // Stored after the batch's submitters are answered: wait for it.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (writer->stats().snapshots.failures == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_GT(writer->stats().snapshots.failures, 0);
  EXPECT_EQ(writer->stats().snapshots.snapshots, 0);
  ASSERT_OK_AND_ASSIGN(std::vector<int64_t> positions, store.ListSnapshots());
  EXPECT_THAT(positions, IsEmpty());

  // Once the store takes them again, the next one is written.
  store.set_fail_snapshot_writes(false);
  for (int i = 0; i < 6; ++i) {
    ASSERT_THAT(writer->Submit(IssueCommand(absl::StrCat("issue-", i),
                                            "E-000001", 1'000 + i)),
                IsOk());
  }
  // One within the last 5 commands is due: wait for it (a stop leaves
  // what the snapshotter has not done).
  const int64_t head = HeadOf(store).command_sequence;
  const absl::Time later = absl::Now() + absl::Seconds(30);
  while (writer->stats().snapshots.last < head - 5 && absl::Now() < later) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  writer->Stop();
  EXPECT_GT(writer->stats().snapshots.snapshots, 0);
  ASSERT_OK_AND_ASSIGN(positions, store.ListSnapshots());
  ASSERT_THAT(positions, Not(IsEmpty()));
  EXPECT_GE(positions[0], head - 5);
  EXPECT_EQ(RecoveredDigest(store), Digest(*writer));
}

INSTANTIATE_TEST_SUITE_P(Stores, SnapshotTest,
                         ::testing::ValuesIn(store::StoreBackendNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace computevoucher::engine
