// The store suite: every StoreTest runs against each implementation of
// Store (SQLite and PostgreSQL); SqliteStoreTest covers what only SQLite has.
// Here the command log, the lease, opening and the schema version; the usage
// index in usage_index_test.cc.
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
#include "gtest/gtest.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/scheduler/store/store_backend.h"
#include "tests/scheduler/store/store_fixture.h"
#include "tests/testing/binaries.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/world.h"

namespace computevoucher::store {
namespace {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

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

// Entries handed back (changed, as a caller may leave them) are decoded
// into again, and a dropped read cache is read again: the reads after
// either return what was appended.
TEST_P(StoreTest, EntriesHandedBackAndADroppedCacheChangeNothingRead) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const Batch& batch : PerCommandBatches(history_)) {
    ASSERT_THAT(store->Append(batch), IsOk());
  }
  for (const bool drop : {false, true, false}) {
    SCOPED_TRACE(drop ? "cache dropped" : "entries handed back");
    ASSERT_OK_AND_ASSIGN(std::vector<pb::Command> commands,
                         store->ReadCommands(0, 10'000));
    ExpectSameMessages(commands, history_.commands);
    ASSERT_OK_AND_ASSIGN(std::vector<pb::JournalEntry> entries,
                         store->ReadJournal(0, 10'000));
    ExpectSameMessages(entries, history_.entries);
    for (pb::JournalEntry& e : entries) {
      e.set_memo("handed back");
      e.set_usage_sequence(e.usage_sequence() + 7);
    }
    store->Recycle(std::move(entries));
    if (drop) store->DropReadCache();
  }
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

// Stores written before `batches` keep every command, entry and usage
// record, in order, with their hashes, and go on from where they were.
TEST_P(StoreTest, MigrationMovesTheSeparateTablesIntoBatches) {
  const absl::Time base = absl::FromUnixSeconds(1'780'000'000);
  const std::vector<Batch> batches = UsageBatches(history_, base);
  Batch log;
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    for (const Batch& batch : batches) {
      ASSERT_THAT(store->Append(batch), IsOk());
      log.commands.insert(log.commands.end(), batch.commands.begin(),
                          batch.commands.end());
      log.entries.insert(log.entries.end(), batch.entries.begin(),
                         batch.entries.end());
      log.usage.insert(log.usage.end(), batch.usage.begin(),
                       batch.usage.end());
    }
  }
  ASSERT_THAT(backend_->RewriteAsPreviousSchema(log), IsOk());
  EXPECT_THAT(backend_->Open(OpenMode::kReadOnly),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("schema version")));

  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(backend_->SchemaVersion(),
              IsOkAndHolds(backend_->known_schema_version()));
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Command> commands,
                       store->ReadCommands(0, 10'000));
  ExpectSameMessages(commands, log.commands);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::JournalEntry> entries,
                       store->ReadJournal(0, 10'000));
  ExpectSameMessages(entries, log.entries);
  // From the middle too: the chain is picked up where the read starts.
  ASSERT_GE(log.entries.size(), 3u);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::JournalEntry> middle,
                       store->ReadJournal(1, 1));
  ExpectSameMessages(middle, std::vector<pb::JournalEntry>(
                                 log.entries.begin() + 1,
                                 log.entries.begin() + 2));
  UsageQuery all;
  all.limit = 10'000;
  ASSERT_OK_AND_ASSIGN(const std::vector<UsageRow> rows, store->ReadUsage(all));
  std::vector<pb::ChargedUsage> usage;
  for (const UsageRow& row : rows) usage.push_back(row.usage);
  ExpectSameMessages(usage, log.usage);
  ASSERT_OK_AND_ASSIGN(const Head head, store->ReadHead());
  EXPECT_EQ(head.command_sequence, log.commands.back().sequence());
  EXPECT_EQ(head.journal_sequence, log.entries.back().sequence());
  EXPECT_EQ(head.journal_hash, log.entries.back().hash());

  // And the log goes on.
  Batch next;
  pb::Command& tick = next.commands.emplace_back(log.commands.back());
  tick.set_sequence(head.command_sequence + 1);
  tick.set_request_id("after-migration");
  ASSERT_THAT(store->Append(next), IsOk());
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Command> last,
                       store->ReadCommands(head.command_sequence, 10));
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].request_id(), "after-migration");
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
