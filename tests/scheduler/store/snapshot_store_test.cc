// The snapshots of every Store implementation (SQLite and PostgreSQL):
// written beside the command log, pruned, read back, refused where the
// log or the store forbids them.
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/store/store.h"
#include "tests/scheduler/store/store_backend.h"
#include "tests/scheduler/store/store_fixture.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::store {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Random bytes (NULs included), different for each seed.
std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(random() & 0xff);
  return out;
}

Snapshot MakeSnapshot(int64_t position, size_t size = 1000) {
  Snapshot snapshot;
  snapshot.position = position;
  snapshot.state = RandomBytes(size, static_cast<uint32_t>(position));
  // A digest is binary too: make sure it holds a NUL.
  snapshot.digest = RandomBytes(32, static_cast<uint32_t>(position) + 1000);
  snapshot.digest[7] = '\0';
  return snapshot;
}

// Compares without printing megabytes on failure.
void ExpectSameSnapshot(const Snapshot& actual, const Snapshot& expected) {
  EXPECT_EQ(actual.position, expected.position);
  EXPECT_EQ(actual.state.size(), expected.state.size());
  EXPECT_TRUE(actual.state == expected.state) << "states differ";
  EXPECT_TRUE(actual.digest == expected.digest) << "digests differ";
}

class SnapshotStoreTest : public StoreTest {
 protected:
  // A store holding the whole history; `last_` is its last command.
  std::unique_ptr<Store> OpenWithHistory() {
    std::unique_ptr<Store> store = OpenOrDie();
    if (store == nullptr) return nullptr;
    EXPECT_THAT(store->Append(WholeBatch(history_)), IsOk());
    last_ = history_.commands.back().sequence();
    return store;
  }

  int64_t last_ = 0;
};

TEST_P(SnapshotStoreTest, WriteListReadRoundTripsALargeState) {
  std::unique_ptr<Store> store = OpenWithHistory();
  ASSERT_NE(store, nullptr);
  const Snapshot written = MakeSnapshot(last_, 5 << 20);
  ASSERT_THAT(store->WriteSnapshot(written, 2), IsOk());
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(ElementsAre(last_)));
  ASSERT_OK_AND_ASSIGN(const Snapshot read, store->ReadSnapshot(last_));
  ExpectSameSnapshot(read, written);
}

TEST_P(SnapshotStoreTest, KeepDropsAllButTheNewest) {
  std::unique_ptr<Store> store = OpenWithHistory();
  ASSERT_NE(store, nullptr);
  ASSERT_GE(last_, 5);
  for (int64_t position = 1; position <= 3; ++position) {
    ASSERT_THAT(store->WriteSnapshot(MakeSnapshot(position), 3), IsOk());
  }
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(ElementsAre(3, 2, 1)));
  ASSERT_THAT(store->WriteSnapshot(MakeSnapshot(4), 3), IsOk());
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(ElementsAre(4, 3, 2)));
  EXPECT_THAT(store->ReadSnapshot(1), StatusIs(absl::StatusCode::kNotFound));
  // keep must be at least 1: nothing is written or dropped.
  EXPECT_THAT(store->WriteSnapshot(MakeSnapshot(5), 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keep")));
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(ElementsAre(4, 3, 2)));
  ASSERT_THAT(store->WriteSnapshot(MakeSnapshot(5), 1), IsOk());
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(ElementsAre(5)));
  ASSERT_OK_AND_ASSIGN(const Snapshot read, store->ReadSnapshot(5));
  ExpectSameSnapshot(read, MakeSnapshot(5));
}

TEST_P(SnapshotStoreTest, PositionOutsideTheStoredCommandsIsRefused) {
  {
    // An empty log has no position to snapshot.
    std::unique_ptr<Store> empty = OpenOrDie();
    ASSERT_NE(empty, nullptr);
    EXPECT_THAT(empty->WriteSnapshot(MakeSnapshot(1), 1),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("after the last stored command 0")));
  }
  std::unique_ptr<Store> store = OpenWithHistory();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->WriteSnapshot(MakeSnapshot(last_ + 1), 1),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat(
                           "snapshot position ", last_ + 1,
                           " is after the last stored command ", last_))));
  EXPECT_THAT(store->WriteSnapshot(MakeSnapshot(0), 1),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("snapshot position 0")));
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store->ReadSnapshot(last_ + 1),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(SnapshotStoreTest, EqualOrOlderPositionIsRefusedAndKeepsTheStoredOne) {
  std::unique_ptr<Store> store = OpenWithHistory();
  ASSERT_NE(store, nullptr);
  ASSERT_GE(last_, 3);
  ASSERT_THAT(store->WriteSnapshot(MakeSnapshot(3), 5), IsOk());
  Snapshot again = MakeSnapshot(3);
  again.state = "another state";
  EXPECT_THAT(store->WriteSnapshot(again, 5),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("snapshot position 3")));
  EXPECT_THAT(store->WriteSnapshot(MakeSnapshot(2), 5),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("older than the newest stored snapshot 3")));
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(ElementsAre(3)));
  ASSERT_OK_AND_ASSIGN(const Snapshot read, store->ReadSnapshot(3));
  ExpectSameSnapshot(read, MakeSnapshot(3));
}

TEST_P(SnapshotStoreTest, ReadOfAnAbsentSnapshotIsNotFound) {
  std::unique_ptr<Store> store = OpenWithHistory();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store->ReadSnapshot(1),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("1")));
  ASSERT_THAT(store->WriteSnapshot(MakeSnapshot(2), 1), IsOk());
  EXPECT_THAT(store->ReadSnapshot(1), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(SnapshotStoreTest, SnapshotsSurviveCloseAndReopen) {
  {
    std::unique_ptr<Store> store = OpenWithHistory();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->WriteSnapshot(MakeSnapshot(1), 2), IsOk());
    ASSERT_THAT(store->WriteSnapshot(MakeSnapshot(2), 2), IsOk());
  }
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(ElementsAre(2, 1)));
  ASSERT_OK_AND_ASSIGN(const Snapshot read, store->ReadSnapshot(1));
  ExpectSameSnapshot(read, MakeSnapshot(1));
  // The reopened store still refuses what is not newer.
  EXPECT_THAT(store->WriteSnapshot(MakeSnapshot(2), 2),
              StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_THAT(store->WriteSnapshot(MakeSnapshot(3), 2), IsOk());
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(ElementsAre(3, 2)));
}

TEST_P(SnapshotStoreTest, AReadOnlyStoreListsAndReadsButDoesNotWrite) {
  std::unique_ptr<Store> writer = OpenWithHistory();
  ASSERT_NE(writer, nullptr);
  ASSERT_THAT(writer->WriteSnapshot(MakeSnapshot(1), 2), IsOk());
  std::unique_ptr<Store> reader = OpenOrDie(OpenMode::kReadOnly);
  ASSERT_NE(reader, nullptr);
  EXPECT_THAT(reader->ListSnapshots(), IsOkAndHolds(ElementsAre(1)));
  ASSERT_OK_AND_ASSIGN(const Snapshot read, reader->ReadSnapshot(1));
  ExpectSameSnapshot(read, MakeSnapshot(1));
  EXPECT_THAT(
      reader->WriteSnapshot(MakeSnapshot(2), 2),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("read-only")));
  // The reader sees what the writer writes next.
  ASSERT_THAT(writer->WriteSnapshot(MakeSnapshot(2), 2), IsOk());
  EXPECT_THAT(reader->ListSnapshots(), IsOkAndHolds(ElementsAre(2, 1)));
}

TEST_P(SnapshotStoreTest, AStoreThatDoesNotLeadDoesNotWrite) {
  std::unique_ptr<Store> store = OpenWithHistory();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Resign(), IsOk());
  EXPECT_THAT(store->WriteSnapshot(MakeSnapshot(1), 1),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(store->ListSnapshots(), IsOkAndHolds(IsEmpty()));
  if (GetParam() == "sqlite") return;  // one process opens an embedded store
  // A replica that never campaigned, beside the leader.
  ASSERT_OK_AND_ASSIGN(
      const Leadership won,
      store->Campaign({"leader", "127.0.0.1:7001"}, absl::Seconds(30)));
  ASSERT_TRUE(won.leading);
  std::unique_ptr<Store> replica = OpenOrDie(OpenMode::kReplica);
  ASSERT_NE(replica, nullptr);
  EXPECT_THAT(replica->WriteSnapshot(MakeSnapshot(1), 1),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("not the leader")));
  EXPECT_THAT(replica->ListSnapshots(), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store->WriteSnapshot(MakeSnapshot(1), 1), IsOk());
}

INSTANTIATE_TEST_SUITE_P(Stores, SnapshotStoreTest,
                         ::testing::ValuesIn(StoreBackendNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace computevoucher::store
