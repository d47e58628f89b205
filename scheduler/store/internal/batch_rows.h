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
#include "computevoucher/v1/storage.pb.h"
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

// What decoding keeps from one row to the next to allocate less: the
// parsed row, whose items the next parse fills again (a parse clears them
// but keeps their memory), and journal entries a reader handed back
// (RowReader::Recycle), which take the place of the entries moved out of
// it.
struct DecodeScratch {
  pb::StoredBatch stored;
  std::vector<pb::JournalEntry> spare_entries;
};

// What `row` holds, with the sequences, usage positions and hashes its
// place implies. DataLoss naming the row when its body does not decode, does
// not hold what its ends say, or its entries do not chain from its start's
// hash to its end's. With `scratch`, decodes through it (a row of more
// than a megabyte inflated parses apart, taking only its spare entries).
absl::StatusOr<Batch> DecodeRow(const BatchRow& row,
                                DecodeScratch* scratch = nullptr);

// Where a decoded usage record is when the row stored it as a record of the
// usage report that carried it: record `record` of the row's command at
// index `command`. -1 when the row stored the record itself.
struct RecordRef {
  int command = -1;
  int record = -1;
};

// DecodeRow, but each usage record the row stored as a record of its usage
// report is left out of its ChargedUsage: `refs` (one per usage record)
// says where it is. Saves copying the records for a reader that needs the
// commands, which hold them, anyway. `refs` must not be null.
absl::StatusOr<Batch> DecodeRow(const BatchRow& row, DecodeScratch* scratch,
                                std::vector<RecordRef>* refs);

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
// that a row is decoded once for a sequential reader (a read that goes
// back, or one that wants usage records with their records after the
// commands that carry them were moved out, decodes the row again). Not
// thread-safe: the store serialises its reads.
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
  // Takes back entries ReadJournal returned, to decode later rows into.
  void Recycle(std::vector<pb::JournalEntry> entries);
  // Frees the rows kept decoded, the scratch and the spare entries.
  void DropDecoded();

 private:
  struct Decoded {
    int64_t id = 0;
    Batch batch;
    // The sequences of batch.commands, which keep them when moved out.
    std::vector<int64_t> command_sequences;
    // Where each of batch.usage's records is (see DecodeRow).
    std::vector<RecordRef> refs;
    // How many of batch.commands, batch.entries and batch.usage were moved
    // out (with the items a scan skipped before the last one it moved).
    size_t commands_taken = 0;
    size_t entries_taken = 0;
    size_t usage_taken = 0;
  };
  // One kind of item of a decoded row: where they are, how many were moved
  // out, the first a read needs, whether a kept row will do besides not
  // having moved those out (it will when unset), and which items by index
  // the read skips (none when unset).
  template <typename Item>
  struct Items {
    std::vector<Item> Batch::*of;
    size_t Decoded::*taken;
    std::function<size_t(const BatchRow&, const Decoded&)> first;
    std::function<bool(const Decoded&)> usable;
    std::function<bool(const Decoded&, size_t)> skip;
  };
  // Called with each item a read takes: its row, the row decoded, its index
  // in the row and the item, to be moved out; returns whether to go on.
  template <typename Item>
  using TakeFn = std::function<bool(const BatchRow& row, const Decoded& d,
                                    size_t index, Item& item)>;

  // The record of usage record `index` of `d`, which must be in it still,
  // and in its command when there.
  static const pb::UsageRecord& RecordOf(const Decoded& d, size_t index);

  // `row` decoded, from the rows kept when it is there and `reusable`
  // says its remains will do, decoded again otherwise.
  absl::StatusOr<Decoded*> Decode(
      const BatchRow& row, const std::function<bool(const Decoded&)>& reusable);
  // Hands `take` up to `limit` items of the rows from `from`, in order,
  // while it returns true; a kept row is reused when the items it needs
  // were not moved out.
  template <typename Item>
  absl::Status Take(const RowsFrom& from, Items<Item> items, size_t limit,
                    const TakeFn<Item>& take);

  ScanRows scan_;
  std::deque<Decoded> decoded_;
  DecodeScratch scratch_;
};

// Up to this many commands, entries or usage records go into one row when a
// store converts the separate tables of the previous schema.
inline constexpr int kRowsConvertedAtOnce = 1000;

// Gathers the items a store converts from the previous schema, in order,
// into rows of up to kRowsConvertedAtOnce items, each written by `insert`
// after the one before.
class ConvertedRows {
 public:
  explicit ConvertedRows(std::function<absl::Status(const BatchRow&)> insert)
      : insert_(std::move(insert)) {}

  // Where the next item goes; call Added() once it is there.
  Batch& batch() { return batch_; }
  // Writes the row when it is full.
  absl::Status Added();
  // Writes what was gathered since the last row.
  absl::Status Flush();

 private:
  std::function<absl::Status(const BatchRow&)> insert_;
  Batch batch_;
  RowEnds ends_;
};

// The DDL of the `batches` table, the same on both stores but for the types
// of its key (SQLite's INTEGER, so that the key is the row id, or bigint)
// and blob columns (BLOB or bytea).
std::string BatchesTableSql(absl::string_view key_type,
                            absl::string_view blob_type);

// The rows of `batches` with their predecessors' ends: the columns id,
// command_end, entry_end, usage_end, accepted_end_ns, entry_hash and body,
// then the predecessor's five columns from command_end on (from the archive
// horizon when the predecessor was archived; NULL before the first row), as
// both stores' RowAt read them. Without a condition or order.
inline constexpr char kSelectRows[] =
    "SELECT b.id, b.command_end, b.entry_end, b.usage_end, "
    "b.accepted_end_ns, b.entry_hash, b.body, "
    "COALESCE(p.command_end, h.command_end), "
    "COALESCE(p.entry_end, h.entry_end), COALESCE(p.usage_end, h.usage_end), "
    "COALESCE(p.accepted_end_ns, h.accepted_end_ns), "
    "COALESCE(p.entry_hash, h.entry_hash) FROM batches b LEFT JOIN batches p "
    "ON p.id = b.id - 1 LEFT JOIN archive_horizon h ON h.row_id = b.id - 1";

// The SELECT of ScanRows for both stores: the rows from `from` with their
// predecessors' ends, in id order, each holding at least one item of
// `from.column`. Parameters 1, 2 and 3 are `from.after`,
// `from.accepted_from` and the id the rows start after; the columns are
// kSelectRows'. At most `limit` rows.
std::string ScanRowsSql(const RowsFrom& from, absl::string_view param_prefix,
                        int limit);

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_BATCH_ROWS_H_
