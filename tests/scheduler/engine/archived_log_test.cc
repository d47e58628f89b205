#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/deflate.h"
#include "common/journal_hash.h"
#include "common/sha256.h"
#include "computevoucher/v1/archive.pb.h"
#include "gtest/gtest.h"
#include "scheduler/engine/archive.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::engine {
namespace {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

// An archive part's hash fields are what its writer wrote; the entries
// read back carry the hashes of their contents (replay takes a posted
// entry's hash from the entry it reads), so a forged hash cannot stand in.
TEST(ArchivedLogTest, EntriesReadCarryTheHashesOfTheirContents) {
  TempDir temp;
  ASSERT_NO_FATAL_FAILURE(MakeTempDir("archived_log_test", temp));
  pb::ArchivePart part;
  std::string prev(kSha256Bytes, '\0');
  for (int64_t n = 1; n <= 2; ++n) {
    pb::JournalEntry& e = *part.add_entries();
    e.set_sequence(n);
    e.set_kind(pb::ENTRY_KIND_FUND);
    e.set_amount_fen(100 * n);
    e.set_prev_hash(prev);
    e.set_hash(std::string(kSha256Bytes, static_cast<char>('a' + n)));
    prev = e.hash();
  }
  const std::string bytes = Deflate(part.SerializeAsString());
  std::ofstream(temp.path() + "/entries-1.bin") << bytes;
  LoadedArchive archive;
  archive.directory = temp.path();
  archive.manifest.mutable_through()->set_entry(2);
  archive.manifest.mutable_through()->set_entry_hash(prev);
  pb::ArchivePartFile& file = *archive.manifest.add_parts();
  file.set_file("entries-1.bin");
  file.set_bytes(static_cast<int64_t>(bytes.size()));
  file.set_sha256(ToHex(Sha256(bytes)));
  file.set_kind("entries");
  file.set_first(1);
  file.set_last(2);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::Store> store,
                       store::OpenSqliteStore(temp.path() + "/data",
                                              store::OpenMode::kReadWrite));
  std::vector<LoadedArchive> archives;
  archives.push_back(std::move(archive));
  ArchivedLog log(std::move(archives), *store);
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::JournalEntry> read,
                       log.ReadJournal(0, 10));
  ASSERT_EQ(read.size(), 2u);
  for (const pb::JournalEntry& e : read) {
    EXPECT_EQ(e.hash(), EntryHash(e)) << "entry " << e.sequence();
  }
  // What was written stays, to be checked against the chain.
  EXPECT_EQ(read[1].prev_hash(), part.entries(0).hash());
}

}  // namespace
}  // namespace computevoucher::engine
