// How both stores keep the command log: one row of the `batches` table per
// committed batch, its commands, journal entries and accepted usage records
// deflated together (a computevoucher.v1.StoredBatch). A usage record is
// stored once, inside the usage report that carried it; the row keeps only
// what it was charged. Entries are stored without their hashes: a read
// chains them again and checks that the chain reaches the hash stored
// beside the row. Not for use outside scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_BATCH_ROWS_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_BATCH_ROWS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduler/store/store.h"

namespace computevoucher::store::internal {

// Where a row ends: its id and the sequence of the last command, the
// sequence of the last entry and the position of the last usage record
// stored up to and including it, with that entry's hash and the time that
// record was accepted. A row holding none of one carries its predecessor's
// value, so that every column grows with the id.
struct RowEnds {
  int64_t id = 0;  // 0: before the first row
  int64_t command = 0;
  int64_t entry = 0;
  int64_t usage = 0;
  int64_t accepted_ns = std::numeric_limits<int64_t>::min();
  std::string entry_hash;  // empty before the first entry

  Head head() const { return {command, entry, entry_hash}; }
};

// A row as stored: its ends and its predecessor's (where it starts).
struct BatchRow {
  RowEnds start;
  RowEnds end;
  std::string body;  // deflated computevoucher.v1.StoredBatch
};

// The row storing `batch` after the row that ends at `last`.
BatchRow MakeRow(const RowEnds& last, const Batch& batch);

// What `row` holds, with the sequences, usage positions and hashes its
// place implies. DataLoss naming the row when its body does not decode, does
// not hold what its ends say, or its entries do not chain from its start's
// hash to its end's.
absl::StatusOr<Batch> DecodeRow(const BatchRow& row);

// The rows a read needs: from the first whose `column` ("command_end",
// "entry_end" or "usage_end") is above `after` and whose accepted_end_ns is
// at or above `accepted_from`, in id order, while `fn` returns true.
struct RowsFrom {
  const char* column;  // one of the three literals above
  int64_t after = 0;
  int64_t accepted_from = std::numeric_limits<int64_t>::min();
};
using ScanRows = std::function<absl::Status(
    const RowsFrom& from, const std::function<bool(BatchRow)>& fn)>;

// The reads of the command log and usage index over a store's rows. Keeps
// the last few rows decoded, since replay reads the commands of a stretch of
// rows and then their entries; each is handed out by moving it, once, so
// that a row is decoded once for a sequential reader (a read that goes back
// decodes the row again). Not thread-safe: the store serialises its reads.
class RowReader {
 public:
  explicit RowReader(ScanRows scan) : scan_(std::move(scan)) {}

  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                        int limit);
  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(int64_t after,
                                                            int limit);
  // Calls `fn` for each record matching `q` (but its `limit`) in position
  // order while it returns true. `fn` may keep the row: a record handed to
  // it is moved out, and a later scan that needs it again decodes its row
  // again.
  absl::Status ScanUsage(const UsageQuery& q,
                         const std::function<bool(UsageRow)>& fn);

 private:
  struct Decoded {
    int64_t id = 0;
    Batch batch;
    // How many of batch.commands, batch.entries and batch.usage were moved
    // out (the items before the last one moved out, for usage, which a
    // scan may skip), and the sequence of the last command moved out.
    size_t commands_taken = 0;
    int64_t last_command_taken = 0;
    size_t entries_taken = 0;
    size_t usage_taken = 0;
  };
  // `row` decoded, from the rows kept when it is there and `reusable`
  // says its remains will do, decoded again otherwise.
  absl::StatusOr<Decoded*> Decode(
      const BatchRow& row, const std::function<bool(const Decoded&)>& reusable);

  ScanRows scan_;
  std::deque<Decoded> decoded_;
};

// Up to this many commands, entries or usage records go into one row when a
// store converts the separate tables of the previous schema.
inline constexpr int kRowsConvertedAtOnce = 1000;

// The DDL of the `batches` table, the same on both stores but for the types
// of its key (SQLite's INTEGER, so that the key is the row id, or bigint)
// and blob columns (BLOB or bytea).
std::string BatchesTableSql(absl::string_view key_type,
                            absl::string_view blob_type);

// The SELECT of ScanRows for both stores: the rows from `from` with their
// predecessors' ends, in id order, each holding at least one item of
// `from.column`. Parameters 1, 2 and 3 are `from.after`,
// `from.accepted_from` and the id the rows start after; each row has the
// columns id, command_end, entry_end, usage_end, accepted_end_ns,
// entry_hash and body, then the predecessor's five columns from
// command_end on (NULL before the first row). At most `limit` rows.
std::string ScanRowsSql(const RowsFrom& from, absl::string_view param_prefix,
                        int limit);

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_BATCH_ROWS_H_
