// The store suite: every StoreTest runs against each implementation of
// Store (SQLite and PostgreSQL); SqliteStoreTest covers what only SQLite has.
#include "scheduler/store/store.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/scheduler/store/store_backend.h"
#include "tests/testing/binaries.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::store {
namespace {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

using ::computevoucher::testing::Driver;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

MATCHER_P(IsOkAndHolds, matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

// A realistic history: the standard world, then a voucher, an allocation,
// a usage report and a release, at times with sub-second parts so that
// nanoseconds have to survive the store.
struct History {
  std::vector<pb::Command> commands;
  std::vector<pb::JournalEntry> entries;
};

void MakeHistory(History* out) {
  core::StateMachine state;
  Driver driver(state);
  ASSERT_THAT(driver.BuildWorld(), IsOk());
  driver.Advance(absl::Seconds(1) + absl::Nanoseconds(123'456'789));
  ASSERT_OK_AND_ASSIGN(const pb::Voucher voucher,
                       driver.Issue("P-000001", "E-000001", 100'000));
  driver.Advance(absl::Milliseconds(250) + absl::Nanoseconds(7));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation allocation,
                       driver.Allocate("E-000001", "H100", 1, 3600, false,
                                       voucher.voucher_id()));
  ASSERT_OK_AND_ASSIGN(const absl::Time assigned,
                       FromProto("assigned_at", allocation.assigned_at()));
  driver.Advance(absl::Minutes(1));
  ASSERT_OK_AND_ASSIGN(
      const pb::UsageAck ack,
      driver.Report(allocation.cluster_id(), allocation.allocation_id(), 1,
                    assigned, assigned + absl::Minutes(1), 60'000));
  ASSERT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED) << ack.ShortDebugString();
  driver.Advance(absl::Seconds(3) + absl::Nanoseconds(999'999'999));
  ASSERT_THAT(driver.Release("E-000001", allocation.allocation_id()), IsOk());
  out->commands = driver.log();
  out->entries = state.TakeJournal();
  ASSERT_GE(out->commands.size(), 10u);
  ASSERT_GE(out->entries.size(), 4u);
}

// The history as one batch per command.
std::vector<Batch> PerCommandBatches(const History& history) {
  std::map<int64_t, Batch> by_command;
  for (const pb::Command& c : history.commands) {
    by_command[c.sequence()].commands.push_back(c);
  }
  for (const pb::JournalEntry& e : history.entries) {
    by_command[e.command_sequence()].entries.push_back(e);
  }
  std::vector<Batch> out;
  for (auto& [sequence, batch] : by_command) out.push_back(std::move(batch));
  return out;
}

Batch WholeBatch(const History& history) {
  return Batch{history.commands, history.entries, {}};
}

template <typename Message>
void ExpectSameMessages(const std::vector<Message>& actual,
                        const std::vector<Message>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    std::string diff;
    google::protobuf::util::MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(expected[i], actual[i]))
        << "element " << i << " differs: " << diff;
  }
}

// Direct access to the database file, to look at and change what the store
// wrote.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    rc_ = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  // The first column of the first row of `sql`, as text ("" if none).
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      if (text != nullptr) out = reinterpret_cast<const char*>(text);
    }
    sqlite3_finalize(stmt);
    return out;
  }
  const char* error() { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("store_test", temp_));
    root_ = temp_.path();
    absl::StatusOr<std::unique_ptr<StoreBackend>> backend =
        MakeStoreBackend(GetParam(), root_);
    if (backend.status().code() == absl::StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << backend.status().message();
    }
    ASSERT_THAT(backend, IsOk());
    backend_ = *std::move(backend);
    ASSERT_NO_FATAL_FAILURE(MakeHistory(&history_));
  }
  void TearDown() override {
    backend_.reset();
  }

  std::unique_ptr<Store> OpenOrDie(OpenMode mode = OpenMode::kReadWrite) {
    absl::StatusOr<std::unique_ptr<Store>> store = backend_->Open(mode);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  TempDir temp_;  // destroyed after the members declared below
  std::string root_;
  std::unique_ptr<StoreBackend> backend_;
  History history_;
};

TEST_P(StoreTest, AppendThenReadRoundTrips) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Append(WholeBatch(history_)), IsOk());

  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Command> commands,
                       store->ReadCommands(0, 10'000));
  ExpectSameMessages(commands, history_.commands);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::JournalEntry> entries,
                       store->ReadJournal(0, 10'000));
  ExpectSameMessages(entries, history_.entries);

  // Spelled out for the fields most easily lost in a column mapping.
  bool saw_nanos = false;
  ASSERT_EQ(entries.size(), history_.entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const pb::JournalEntry& got = entries[i];
    const pb::JournalEntry& want = history_.entries[i];
    SCOPED_TRACE(want.ShortDebugString());
    EXPECT_EQ(got.sequence(), want.sequence());
    EXPECT_EQ(got.command_sequence(), want.command_sequence());
    EXPECT_EQ(got.kind(), want.kind());
    EXPECT_EQ(got.amount_fen(), want.amount_fen());
    EXPECT_EQ(got.usage_sequence(), want.usage_sequence());
    EXPECT_EQ(got.time().seconds(), want.time().seconds());
    EXPECT_EQ(got.time().nanos(), want.time().nanos());
    EXPECT_EQ(got.prev_hash(), want.prev_hash());
    EXPECT_EQ(got.hash(), want.hash());
    EXPECT_EQ(got.hash().size(), 32u);
    saw_nanos = saw_nanos || want.time().nanos() != 0;
  }
  EXPECT_TRUE(saw_nanos) << "the history should have sub-second times";
  bool command_nanos = false;
  for (const pb::Command& c : commands) {
    command_nanos = command_nanos || c.time().nanos() != 0;
  }
  EXPECT_TRUE(command_nanos);
}

TEST_P(StoreTest, ReadHead) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(Head head, store->ReadHead());
  EXPECT_EQ(head.command_sequence, 0);
  EXPECT_EQ(head.journal_sequence, 0);

  const std::vector<Batch> batches = PerCommandBatches(history_);
  ASSERT_THAT(store->Append(batches[0]), IsOk());
  ASSERT_OK_AND_ASSIGN(head, store->ReadHead());
  EXPECT_EQ(head.command_sequence, 1);
  EXPECT_EQ(head.journal_sequence,
            static_cast<int64_t>(batches[0].entries.size()));

  for (size_t i = 1; i < batches.size(); ++i) {
    ASSERT_THAT(store->Append(batches[i]), IsOk()) << "batch " << i;
  }
  ASSERT_OK_AND_ASSIGN(head, store->ReadHead());
  EXPECT_EQ(head.command_sequence, history_.commands.back().sequence());
  EXPECT_EQ(head.journal_sequence, history_.entries.back().sequence());
}

TEST_P(StoreTest, ChunkedReadsWithAfterAndLimit) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const Batch& batch : PerCommandBatches(history_)) {
    ASSERT_THAT(store->Append(batch), IsOk());
  }
  const int64_t last_command = history_.commands.back().sequence();
  const int64_t last_entry = history_.entries.back().sequence();

  for (const int limit : {1, 2, 3, 5, 1000}) {
    SCOPED_TRACE(absl::StrCat("limit ", limit));
    std::vector<pb::Command> commands;
    int64_t after = 0;
    int reads = 0;
    while (true) {
      ASSERT_OK_AND_ASSIGN(std::vector<pb::Command> chunk,
                           store->ReadCommands(after, limit));
      ASSERT_LE(chunk.size(), static_cast<size_t>(limit));
      ASSERT_LT(++reads, 1000);
      if (chunk.empty()) break;
      EXPECT_EQ(chunk.front().sequence(), after + 1);
      after = chunk.back().sequence();
      for (pb::Command& c : chunk) commands.push_back(std::move(c));
    }
    ExpectSameMessages(commands, history_.commands);

    std::vector<pb::JournalEntry> entries;
    after = 0;
    reads = 0;
    while (true) {
      ASSERT_OK_AND_ASSIGN(std::vector<pb::JournalEntry> chunk,
                           store->ReadJournal(after, limit));
      ASSERT_LE(chunk.size(), static_cast<size_t>(limit));
      ASSERT_LT(++reads, 1000);
      if (chunk.empty()) break;
      EXPECT_EQ(chunk.front().sequence(), after + 1);
      after = chunk.back().sequence();
      for (pb::JournalEntry& e : chunk) entries.push_back(std::move(e));
    }
    ExpectSameMessages(entries, history_.entries);
  }

  // A window in the middle.
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Command> middle,
                       store->ReadCommands(2, 3));
  ASSERT_EQ(middle.size(), 3u);
  EXPECT_EQ(middle[0].sequence(), 3);
  EXPECT_EQ(middle[2].sequence(), 5);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::JournalEntry> entry_window,
                       store->ReadJournal(1, 2));
  ASSERT_EQ(entry_window.size(), 2u);
  EXPECT_EQ(entry_window[0].sequence(), 2);
  EXPECT_EQ(entry_window[1].sequence(), 3);

  // Past the end.
  EXPECT_THAT(store->ReadCommands(last_command, 10), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store->ReadJournal(last_entry, 10), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store->ReadCommands(last_command + 100, 10),
              IsOkAndHolds(IsEmpty()));
}

TEST_P(StoreTest, AppendRefusesGapsAndStoresNothing) {
  const std::vector<Batch> batches = PerCommandBatches(history_);
  // The first batch with entries, to damage its entry sequences.
  size_t with_entries = 0;
  while (batches[with_entries].entries.empty()) ++with_entries;
  ASSERT_LT(with_entries, batches.size());

  struct Case {
    std::string name;
    Batch batch;
  };
  std::vector<Case> cases;
  {
    Batch b = batches[0];
    b.commands[0].set_sequence(2);
    cases.push_back({"first command sequence 2", b});
  }
  {
    Batch b;
    b.commands = {batches[0].commands[0], batches[2].commands[0]};
    cases.push_back({"commands 1 and 3", b});
  }
  {
    Batch b;
    b.commands = {batches[0].commands[0], batches[0].commands[0]};
    b.commands[1].set_sequence(1);
    cases.push_back({"command 1 twice", b});
  }
  {
    // Commands 1..with_entries are fine; the entries start at 2.
    Batch b;
    for (size_t i = 0; i <= with_entries; ++i) {
      b.commands.push_back(batches[i].commands[0]);
    }
    b.entries = batches[with_entries].entries;
    for (pb::JournalEntry& e : b.entries) e.set_sequence(e.sequence() + 1);
    cases.push_back({"journal starting at 2", b});
  }
  {
    Batch b;
    b.commands = history_.commands;
    b.entries = history_.entries;
    b.entries.erase(b.entries.begin() + 1);
    cases.push_back({"journal entry 2 missing", b});
  }

  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(store->Append(c.batch),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    ASSERT_OK_AND_ASSIGN(const Head head, store->ReadHead());
    EXPECT_EQ(head.command_sequence, 0);
    EXPECT_EQ(head.journal_sequence, 0);
    EXPECT_THAT(store->ReadCommands(0, 100), IsOkAndHolds(IsEmpty()));
    EXPECT_THAT(store->ReadJournal(0, 100), IsOkAndHolds(IsEmpty()));
  }

  // After refusals the store still takes the right batch, and then refuses
  // the same batch again (it would not continue the sequences).
  ASSERT_THAT(store->Append(batches[0]), IsOk());
  EXPECT_THAT(store->Append(batches[0]),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_THAT(store->Append(batches[1]), IsOk());
  ASSERT_OK_AND_ASSIGN(const Head head, store->ReadHead());
  EXPECT_EQ(head.command_sequence, 2);
}

TEST_P(StoreTest, ReopenKeepsData) {
  const std::vector<Batch> batches = PerCommandBatches(history_);
  const size_t half = batches.size() / 2;
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    for (size_t i = 0; i < half; ++i) {
      ASSERT_THAT(store->Append(batches[i]), IsOk());
    }
  }
  {
    // The reopened store knows its head: the next batch continues it.
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_OK_AND_ASSIGN(const Head head, store->ReadHead());
    EXPECT_EQ(head.command_sequence, static_cast<int64_t>(half));
    EXPECT_THAT(store->Append(batches[half + 1]),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    for (size_t i = half; i < batches.size(); ++i) {
      ASSERT_THAT(store->Append(batches[i]), IsOk()) << "batch " << i;
    }
  }
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Command> commands,
                       store->ReadCommands(0, 10'000));
  ExpectSameMessages(commands, history_.commands);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::JournalEntry> entries,
                       store->ReadJournal(0, 10'000));
  ExpectSameMessages(entries, history_.entries);
}

TEST_P(StoreTest, SecondReadWriteOpenIsRefusedWhileInUse) {
  std::unique_ptr<Store> first = OpenOrDie();
  ASSERT_NE(first, nullptr);
  EXPECT_THAT(
      backend_->Open(OpenMode::kReadWrite),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
  // The refused open did not disturb the first store.
  EXPECT_THAT(first->Append(WholeBatch(history_)), IsOk());
  first.reset();
  // Closing releases the directory.
  std::unique_ptr<Store> second = OpenOrDie();
  ASSERT_NE(second, nullptr);
  ASSERT_OK_AND_ASSIGN(const Head head, second->ReadHead());
  EXPECT_EQ(head.command_sequence, history_.commands.back().sequence());
}

TEST_P(StoreTest, AReplicaAppendsWhileItHoldsTheLeaseAndNotAfterResigning) {
  const std::vector<Batch> batches = PerCommandBatches(history_);
  ASSERT_GE(batches.size(), 3u);
  std::unique_ptr<Store> store = OpenOrDie(OpenMode::kReplica);
  ASSERT_NE(store, nullptr);
  const Candidate me{"replica-a", "127.0.0.1:7001"};
  ASSERT_OK_AND_ASSIGN(const Leadership won,
                       store->Campaign(me, absl::Seconds(30)));
  EXPECT_TRUE(won.leading);
  EXPECT_GT(won.fencing_token, 0);
  EXPECT_EQ(won.leader_id, me.id);
  EXPECT_EQ(won.leader_address, me.address);
  EXPECT_GE(won.valid_for, absl::Seconds(30));
  ASSERT_THAT(store->Append(batches[0]), IsOk());
  // Renewing keeps the token.
  ASSERT_OK_AND_ASSIGN(const Leadership renewed,
                       store->Campaign(me, absl::Seconds(30)));
  EXPECT_TRUE(renewed.leading);
  EXPECT_EQ(renewed.fencing_token, won.fencing_token);
  ASSERT_THAT(store->Append(batches[1]), IsOk());

  ASSERT_THAT(store->Resign(), IsOk());
  EXPECT_THAT(store->Append(batches[2]),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(const Head head, store->ReadHead());
  EXPECT_EQ(head.command_sequence, batches[1].commands.back().sequence());
  // Leading again, it continues where it stopped.
  ASSERT_OK_AND_ASSIGN(const Leadership again,
                       store->Campaign(me, absl::Seconds(30)));
  EXPECT_TRUE(again.leading);
  EXPECT_THAT(store->Append(batches[2]), IsOk());
}

// Two replicas on one database (only PostgreSQL: one process opens an
// embedded store, see SecondReadWriteOpenIsRefusedWhileInUse).
TEST_P(StoreTest, ATakeoverFencesTheFormerLeaderSoThatOnlyOneCommits) {
  if (GetParam() == "sqlite") {
    GTEST_SKIP() << "one process opens an embedded store";
  }
  const std::vector<Batch> batches = PerCommandBatches(history_);
  ASSERT_GE(batches.size(), 3u);
  std::unique_ptr<Store> a = OpenOrDie(OpenMode::kReplica);
  std::unique_ptr<Store> b = OpenOrDie(OpenMode::kReplica);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const Candidate replica_a{"replica-a", "127.0.0.1:7001"};
  const Candidate replica_b{"replica-b", "127.0.0.1:7002"};
  // Without the lease nothing is written.
  EXPECT_THAT(a->Append(batches[0]),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("not the leader")));

  const absl::Duration lease = absl::Milliseconds(500);
  ASSERT_OK_AND_ASSIGN(const Leadership a_won, a->Campaign(replica_a, lease));
  ASSERT_TRUE(a_won.leading);
  EXPECT_EQ(a_won.valid_for, lease);
  // While A's lease runs, B follows and learns who leads.
  ASSERT_OK_AND_ASSIGN(const Leadership b_lost, b->Campaign(replica_b, lease));
  EXPECT_FALSE(b_lost.leading);
  EXPECT_EQ(b_lost.leader_id, replica_a.id);
  EXPECT_EQ(b_lost.leader_address, replica_a.address);
  EXPECT_EQ(b_lost.fencing_token, a_won.fencing_token);
  EXPECT_THAT(b->Append(batches[0]),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_THAT(a->Append(batches[0]), IsOk());

  // A stops renewing (paused, say); once its lease expired B takes over
  // with the next token.
  Leadership b_won;
  ASSERT_TRUE(computevoucher::testing::PollUntil(
      [&] {
        absl::StatusOr<Leadership> l = b->Campaign(replica_b, lease);
        if (l.ok()) b_won = *l;
        return l.ok() && l->leading;
      },
      absl::Seconds(10)));
  EXPECT_EQ(b_won.fencing_token, a_won.fencing_token + 1);

  // A wakes up and appends what it had applied meanwhile: refused, and
  // nothing of it stored.
  EXPECT_THAT(
      a->Append(batches[1]),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               ::testing::AllOf(HasSubstr("fenced"), HasSubstr(replica_b.id))));
  ASSERT_OK_AND_ASSIGN(Head head, b->ReadHead());
  EXPECT_EQ(head.command_sequence, batches[0].commands.back().sequence());
  // And its next campaign tells it who leads now.
  ASSERT_OK_AND_ASSIGN(const Leadership a_lost, a->Campaign(replica_a, lease));
  EXPECT_FALSE(a_lost.leading);
  EXPECT_EQ(a_lost.leader_id, replica_b.id);
  EXPECT_EQ(a_lost.leader_address, replica_b.address);

  // B continues from what A committed (it reread the head when it won).
  ASSERT_THAT(b->Append(batches[1]), IsOk());
  // A graceful stop gives the lease up at once.
  ASSERT_THAT(b->Resign(), IsOk());
  ASSERT_OK_AND_ASSIGN(const Leadership a_again, a->Campaign(replica_a, lease));
  EXPECT_TRUE(a_again.leading);
  EXPECT_EQ(a_again.fencing_token, b_won.fencing_token + 1);
  ASSERT_THAT(a->Append(batches[2]), IsOk());
  ASSERT_OK_AND_ASSIGN(head, a->ReadHead());
  EXPECT_EQ(head.command_sequence, batches[2].commands.back().sequence());
}

// What the lease check in every append does to a takeover: the append's
// shared row lock (played here by a transaction of the test's own that
// takes it the same way) keeps the expired lease from being taken until the
// append commits, so the new leader never loads a journal that is still
// growing.
TEST_P(StoreTest, ATakeoverWaitsForAnAppendInFlight) {
  if (GetParam() == "sqlite") {
    GTEST_SKIP() << "one process opens an embedded store";
  }
  std::unique_ptr<Store> a = OpenOrDie(OpenMode::kReplica);
  std::unique_ptr<Store> b = OpenOrDie(OpenMode::kReplica);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const absl::Duration lease = absl::Milliseconds(300);
  ASSERT_OK_AND_ASSIGN(const Leadership a_won,
                       a->Campaign({"replica-a", "127.0.0.1:7001"}, lease));
  ASSERT_TRUE(a_won.leading);

  PGconn* append = PQconnectdb(backend_->store_url().c_str());
  ASSERT_EQ(PQstatus(append), CONNECTION_OK) << PQerrorMessage(append);
  PQclear(PQexec(append,
                 "BEGIN; SELECT fencing_token FROM leader_lease FOR SHARE"));
  // Long past A's lease, B still cannot take it: each campaign gives up
  // waiting for the row and decides nothing.
  const Candidate replica_b{"replica-b", "127.0.0.1:7002"};
  const absl::Time until = absl::Now() + 4 * lease;
  int busy = 0;
  while (absl::Now() < until) {
    absl::StatusOr<Leadership> l = b->Campaign(replica_b, lease);
    ASSERT_FALSE(l.ok() && l->leading) << "took the lease from an append";
    if (!l.ok()) {
      EXPECT_THAT(l.status(),
                  StatusIs(absl::StatusCode::kUnavailable, HasSubstr("busy")));
      ++busy;
    }
  }
  EXPECT_GT(busy, 0);
  // Once the append commits, the takeover goes through.
  PQclear(PQexec(append, "COMMIT"));
  PQfinish(append);
  ASSERT_OK_AND_ASSIGN(const Leadership b_won, b->Campaign(replica_b, lease));
  EXPECT_TRUE(b_won.leading);
  EXPECT_EQ(b_won.fencing_token, a_won.fencing_token + 1);
}

TEST_P(StoreTest, ReadOnlyOpenWorksBesideTheWriterAndSeesCommits) {
  const std::vector<Batch> batches = PerCommandBatches(history_);
  std::unique_ptr<Store> writer = OpenOrDie();
  ASSERT_NE(writer, nullptr);
  ASSERT_THAT(writer->Append(batches[0]), IsOk());

  std::unique_ptr<Store> reader = OpenOrDie(OpenMode::kReadOnly);
  ASSERT_NE(reader, nullptr);
  ASSERT_OK_AND_ASSIGN(Head head, reader->ReadHead());
  EXPECT_EQ(head.command_sequence, 1);
  ASSERT_OK_AND_ASSIGN(std::vector<pb::Command> commands,
                       reader->ReadCommands(0, 100));
  ExpectSameMessages(commands,
                     std::vector<pb::Command>{batches[0].commands[0]});

  // Later commits by the writer are visible to the reader.
  for (size_t i = 1; i < batches.size(); ++i) {
    ASSERT_THAT(writer->Append(batches[i]), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(head, reader->ReadHead());
  EXPECT_EQ(head.command_sequence, history_.commands.back().sequence());
  EXPECT_EQ(head.journal_sequence, history_.entries.back().sequence());
  ASSERT_OK_AND_ASSIGN(commands, reader->ReadCommands(0, 10'000));
  ExpectSameMessages(commands, history_.commands);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::JournalEntry> entries,
                       reader->ReadJournal(0, 10'000));
  ExpectSameMessages(entries, history_.entries);

  // A reader cannot write.
  Batch next;
  next.commands.push_back(history_.commands.back());
  next.commands.back().set_sequence(history_.commands.back().sequence() + 1);
  EXPECT_THAT(reader->Append(next),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(head, writer->ReadHead());
  EXPECT_EQ(head.command_sequence, history_.commands.back().sequence());
}

TEST_P(StoreTest, ReadOnlyOpenWorksWithoutAWriter) {
  {
    std::unique_ptr<Store> writer = OpenOrDie();
    ASSERT_NE(writer, nullptr);
    ASSERT_THAT(writer->Append(WholeBatch(history_)), IsOk());
  }
  std::unique_ptr<Store> reader = OpenOrDie(OpenMode::kReadOnly);
  ASSERT_NE(reader, nullptr);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::JournalEntry> entries,
                       reader->ReadJournal(0, 10'000));
  ExpectSameMessages(entries, history_.entries);
  // A reader does not lock out a scheduler starting after it.
  std::unique_ptr<Store> writer = OpenOrDie();
  ASSERT_NE(writer, nullptr);
  ASSERT_OK_AND_ASSIGN(const Head head, reader->ReadHead());
  EXPECT_EQ(head.command_sequence, history_.commands.back().sequence());
}

TEST_P(StoreTest, NewerSchemaVersionIsRefused) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->Append(WholeBatch(history_)), IsOk());
  }
  const int newer = backend_->known_schema_version() + 1;
  ASSERT_THAT(backend_->SetSchemaVersion(newer), IsOk());
  EXPECT_THAT(backend_->Open(OpenMode::kReadWrite),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("schema version")));
  EXPECT_THAT(backend_->Open(OpenMode::kReadOnly),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("schema version")));
  // The refusal left the version alone.
  EXPECT_THAT(backend_->SchemaVersion(), IsOkAndHolds(newer));
}

TEST_P(StoreTest, FreshStoreIsAtTheKnownSchemaVersion) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(backend_->SchemaVersion(),
              IsOkAndHolds(backend_->known_schema_version()));
}

TEST_P(StoreTest, ReadOnlyOpenOfMissingStoreIsNotFound) {
  EXPECT_THAT(backend_->Open(OpenMode::kReadOnly),
              StatusIs(absl::StatusCode::kNotFound));
}

// Usage records as the writer stores them: per command, in acceptance
// order, for two allocations, ending every minute from `base`.
std::vector<Batch> UsageBatches(const History& history, absl::Time base) {
  std::vector<Batch> batches = PerCommandBatches(history);
  for (size_t i = 0; i < batches.size(); ++i) {
    for (int j = 0; j < 2; ++j) {
      pb::ChargedUsage& u = batches[i].usage.emplace_back();
      const int64_t n = static_cast<int64_t>(i) * 2 + j;
      pb::UsageRecord& r = *u.mutable_record();
      r.set_allocation_id(j == 0 ? "A-even" : "A-odd");
      r.set_sequence(n + 1);
      *r.mutable_start() = ToProto(base + absl::Minutes(n - 1));
      *r.mutable_end() = ToProto(base + absl::Minutes(n));
      r.set_gpu_ms(60'000 + n);
      // The runtime's evidence is kept with the record (none on some).
      if (j == 0) r.set_evidence(absl::StrCat("slurm job ", n, " RUNNING; 算"));
      u.set_cost_fen(100 + n);
      *u.mutable_accepted_at() =
          ToProto(base + absl::Minutes(n) + absl::Nanoseconds(n));
    }
  }
  return batches;
}

TEST_P(StoreTest, UsageIsReadInAcceptanceOrderByPeriodAllocationAndPage) {
  const absl::Time base = computevoucher::testing::WorldStart() + absl::Hours(1);
  const std::vector<Batch> batches = UsageBatches(history_, base);
  std::vector<pb::ChargedUsage> all;
  for (const Batch& b : batches) {
    for (const pb::ChargedUsage& u : b.usage) all.push_back(u);
  }
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const Batch& b : batches) ASSERT_THAT(store->Append(b), IsOk());

  // Everything, a page at a time; positions continue across pages.
  std::vector<pb::ChargedUsage> paged;
  UsageQuery q;
  q.limit = 3;
  for (int reads = 0; reads < 1000; ++reads) {
    ASSERT_OK_AND_ASSIGN(const std::vector<UsageRow> page, store->ReadUsage(q));
    if (page.empty()) break;
    for (const UsageRow& row : page) {
      EXPECT_EQ(row.position, q.after + 1);
      q.after = row.position;
      paged.push_back(row.usage);
    }
  }
  ExpectSameMessages(paged, all);

  // One allocation, ending in [base + 4 min, base + 9 min).
  UsageQuery period;
  period.allocation_ids = absl::flat_hash_set<std::string>{"A-odd"};
  period.period_start = base + absl::Minutes(4);
  period.period_end = base + absl::Minutes(9);
  std::vector<pb::ChargedUsage> want;
  for (const pb::ChargedUsage& u : all) {
    const int64_t minute =
        (u.record().end().seconds() - absl::ToUnixSeconds(base)) / 60;
    if (u.record().allocation_id() == "A-odd" && minute >= 4 && minute < 9) {
      want.push_back(u);
    }
  }
  ASSERT_EQ(want.size(), 2u);
  ASSERT_OK_AND_ASSIGN(const std::vector<UsageRow> rows,
                       store->ReadUsage(period));
  std::vector<pb::ChargedUsage> got;
  for (const UsageRow& row : rows) got.push_back(row.usage);
  ExpectSameMessages(got, want);

  // The scan sees the same rows and names the head they are as of.
  std::vector<pb::ChargedUsage> scanned;
  ASSERT_OK_AND_ASSIGN(
      const Head head,
      store->ScanUsage(period, [&scanned](const pb::ChargedUsage& u) {
        scanned.push_back(u);
      }));
  ExpectSameMessages(scanned, want);
  EXPECT_EQ(head.command_sequence, history_.commands.back().sequence());
  EXPECT_EQ(head.journal_sequence, history_.entries.back().sequence());
  EXPECT_EQ(head.journal_hash, history_.entries.back().hash());

  // A reopened store numbers new records after the old ones.
  store.reset();
  store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  Batch more;
  more.commands.push_back(history_.commands.back());
  more.commands.back().set_sequence(history_.commands.back().sequence() + 1);
  more.usage.push_back(all.back());
  ASSERT_THAT(store->Append(more), IsOk());
  UsageQuery last;
  last.after = static_cast<int64_t>(all.size());
  ASSERT_OK_AND_ASSIGN(const std::vector<UsageRow> tail,
                       store->ReadUsage(last));
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].position, static_cast<int64_t>(all.size()) + 1);
}

// The caller's clock-skew bound lets the store skip records accepted long
// before the period; without one every record is considered.
TEST_P(StoreTest, AUsageQuerySkipsWhatWasAcceptedBeforeItsSkewBound) {
  const absl::Time base = computevoucher::testing::WorldStart() + absl::Hours(1);
  std::vector<Batch> batches = UsageBatches(history_, base);
  ASSERT_GE(batches.size(), 11u);
  // Accepted at minute 1 (among the first rows) but claiming to end at
  // minute 20: an agent clock 19 minutes fast.
  pb::UsageRecord& fast = *batches[0].usage[1].mutable_record();
  *fast.mutable_start() = ToProto(base + absl::Minutes(19));
  *fast.mutable_end() = ToProto(base + absl::Minutes(20));
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const Batch& b : batches) ASSERT_THAT(store->Append(b), IsOk());

  UsageQuery period;
  period.allocation_ids = absl::flat_hash_set<std::string>{"A-odd"};
  period.period_start = base + absl::Minutes(19);
  period.period_end = base + absl::Minutes(21);
  auto sequences = [&] {
    std::vector<int64_t> out;
    absl::StatusOr<std::vector<UsageRow>> rows = store->ReadUsage(period);
    EXPECT_THAT(rows, IsOk());
    if (rows.ok()) {
      for (const UsageRow& row : *rows) {
        out.push_back(row.usage.record().sequence());
      }
    }
    return out;
  };
  // No bound: the fast record (sequence 2) and the one ending at minute 19.
  EXPECT_THAT(sequences(), ::testing::ElementsAre(2, 20));
  period.end_after_accept = absl::Minutes(5);
  EXPECT_THAT(sequences(), ::testing::ElementsAre(20));
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest,
                         ::testing::ValuesIn(StoreBackendNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// What only the embedded store has: a data directory and a database file.
class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("sqlite_store_test", temp_));
    root_ = temp_.path();
    // A directory that does not exist yet: the read-write open creates it.
    data_dir_ = root_ + "/data";
    ASSERT_NO_FATAL_FAILURE(MakeHistory(&history_));
  }
  std::string db_path() const { return data_dir_ + "/scheduler.db"; }

  std::unique_ptr<Store> OpenOrDie(OpenMode mode = OpenMode::kReadWrite) {
    absl::StatusOr<std::unique_ptr<Store>> store =
        OpenSqliteStore(data_dir_, mode);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  TempDir temp_;  // destroyed after the members declared below
  std::string root_;
  std::string data_dir_;
  History history_;
};

TEST_F(SqliteStoreTest, ReadOnlyOpenOfMissingDirectoryIsNotFound) {
  EXPECT_THAT(OpenSqliteStore(data_dir_, OpenMode::kReadOnly),
              StatusIs(absl::StatusCode::kNotFound));
  // ... and does not create it.
  struct stat st;
  EXPECT_NE(stat(data_dir_.c_str(), &st), 0);
  // An existing directory without a database is just as missing.
  EXPECT_THAT(OpenSqliteStore(root_, OpenMode::kReadOnly),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SqliteStoreTest, FreshDatabaseIsAtSchemaVersionInWalMode) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  RawDb db(db_path());
  ASSERT_TRUE(db.ok()) << db.error();
  EXPECT_EQ(db.QueryText("PRAGMA user_version"),
            absl::StrCat(kSqliteSchemaVersion));
  EXPECT_EQ(db.QueryText("PRAGMA journal_mode"), "wal");
}

}  // namespace
}  // namespace computevoucher::store
