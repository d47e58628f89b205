#include "scheduler/store/internal/batch_rows.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/charged_usage.h"
#include "common/deflate.h"
#include "common/journal_hash.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "computevoucher/v1/storage.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "scheduler/store/internal/store_util.h"

namespace computevoucher::store::internal {
namespace {

// Larger than any batch the writer forms (at most 8,192 commands, and a
// usage report's 10,000 records past its max_batch_records).
constexpr uint64_t kMaxRowBytes = uint64_t{1} << 30;

// Decoded rows kept for the reads that follow: replay reads the commands of
// a stretch of rows, then their entries and usage records, a few thousand
// at a time, and `verify` reads each kind up to two chunks ahead
// (engine::ReadAhead), so the kinds can be some 90 rows apart.
constexpr size_t kDecodedRows = 128;

// A row larger than this (inflated) is not parsed into a DecodeScratch, and
// at most this many entries handed back are kept to decode into (a replay
// reads 4,096 at a time): a few megabytes in all.
constexpr size_t kScratchBytes = size_t{1} << 20;
constexpr size_t kSpareEntries = 10'000;

// The hash a chain starts from.
const std::string& ChainStart(const std::string& entry_hash) {
  static const std::string* const kZero = new std::string(kSha256Bytes, '\0');
  return entry_hash.empty() ? *kZero : entry_hash;
}

absl::Status RowError(const BatchRow& row, absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("batches: row ", row.end.id, " (commands ",
                   row.start.command + 1, "..", row.end.command, ", entries ",
                   row.start.entry + 1, "..", row.end.entry, "): ", what));
}

// The index of the first item numbered above `after` in a row whose items
// start after `row_start`: entries and usage records are numbered by their
// place.
size_t FirstAfter(int64_t after, int64_t row_start) {
  return static_cast<size_t>(std::max<int64_t>(0, after - row_start));
}

// A read's `take` that moves items into `out`.
template <typename Item>
auto AppendTo(std::vector<Item>& out) {
  return [&out](const BatchRow&, const auto&, size_t, Item& item) {
    out.push_back(std::move(item));
    return true;
  };
}

// Finds `record` among the usage reports of `commands` at or after the
// position (`command`, `record_index`), which it moves past the record.
bool FindRecord(const std::vector<pb::Command>& commands,
                const pb::UsageRecord& record, int& command,
                int& record_index) {
  for (; command < static_cast<int>(commands.size());
       ++command, record_index = 0) {
    const pb::Command& c = commands[command];
    if (!c.has_report_usage()) continue;
    const auto& records = c.report_usage().records();
    for (; record_index < records.size(); ++record_index) {
      const pb::UsageRecord& r = records[record_index];
      // A report may repeat a sequence with other contents (the repeat is
      // refused): only the very record will do.
      if (SameRecord(r, record)) return true;
    }
  }
  return false;
}

// The record `ref` points at among `batch`'s commands.
const pb::UsageRecord& RecordAt(const Batch& batch, RecordRef ref) {
  return batch.commands[static_cast<size_t>(ref.command)]
      .report_usage()
      .records(ref.record);
}

// The usage records `stored` holds, into `out`, whose commands are
// decoded: those it keeps in their usage reports without their records,
// which `refs` points at (see DecodeRow).
absl::Status DecodeUsage(const BatchRow& row, const pb::StoredBatch& stored,
                         Batch& out, std::vector<RecordRef>& refs) {
  out.usage.reserve(stored.usage_size());
  refs.clear();
  refs.reserve(stored.usage_size());
  for (const pb::StoredUsage& s : stored.usage()) {
    pb::ChargedUsage& u = out.usage.emplace_back();
    RecordRef& ref = refs.emplace_back();
    if (s.has_record()) {
      *u.mutable_record() = s.record();
      *u.mutable_accepted_at() = s.accepted_at();
    } else {
      const int c = s.command_index(), r = s.record_index();
      if (c < 0 || c >= static_cast<int>(out.commands.size()) ||
          !out.commands[c].has_report_usage() || r < 0 ||
          r >= out.commands[c].report_usage().records_size()) {
        return RowError(row, absl::StrCat("a usage record refers to record ", r,
                                          " of command ", c,
                                          " of the row, which is not one"));
      }
      ref = {c, r};
      *u.mutable_accepted_at() =
          s.has_accepted_at() ? s.accepted_at() : out.commands[c].time();
    }
    u.set_cost_fen(s.cost_fen());
    u.set_subsidy_fen(s.subsidy_fen());
    u.set_unsubsidised_gpu_ms(s.unsubsidised_gpu_ms());
  }
  return absl::OkStatus();
}

}  // namespace

BatchRow MakeRow(const RowEnds& last, const Batch& batch) {
  // The commands are written as StoredBatch's field `commands` straight
  // from the batch (a usage report carries thousands of records: copying
  // them into a StoredBatch first would cost as much again); the rest
  // follows as a StoredBatch of its own, which parses as one with them.
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    for (const pb::Command& c : batch.commands) {
      out.WriteTag(google::protobuf::internal::WireFormatLite::MakeTag(
          pb::StoredBatch::kCommandsFieldNumber,
          google::protobuf::internal::WireFormatLite::
              WIRETYPE_LENGTH_DELIMITED));
      out.WriteVarint32(static_cast<uint32_t>(c.ByteSizeLong()));
      c.SerializeWithCachedSizes(&out);
    }
  }
  pb::StoredBatch stored;
  for (const pb::JournalEntry& e : batch.entries) {
    pb::JournalEntry& copy = *stored.add_entries();
    copy = e;
    copy.clear_sequence();
    copy.clear_prev_hash();
    copy.clear_hash();
  }
  int command = 0, record = 0;
  for (const pb::ChargedUsage& u : batch.usage) {
    pb::StoredUsage& s = *stored.add_usage();
    const int from_command = command, from_record = record;
    if (FindRecord(batch.commands, u.record(), command, record)) {
      s.set_command_index(command);
      s.set_record_index(record);
      if (NanosOf(u.accepted_at()) != NanosOf(batch.commands[command].time()))
        *s.mutable_accepted_at() = u.accepted_at();
      ++record;
    } else {
      command = from_command;
      record = from_record;
      *s.mutable_record() = u.record();
      *s.mutable_accepted_at() = u.accepted_at();
    }
    s.set_cost_fen(u.cost_fen());
    s.set_subsidy_fen(u.subsidy_fen());
    s.set_unsubsidised_gpu_ms(u.unsubsidised_gpu_ms());
  }
  BatchRow row;
  row.start = last;
  row.end = last;
  row.end.id = last.id + 1;
  if (!batch.commands.empty())
    row.end.command = batch.commands.back().sequence();
  row.end.entry += static_cast<int64_t>(batch.entries.size());
  if (!batch.entries.empty()) row.end.entry_hash = batch.entries.back().hash();
  row.end.usage += static_cast<int64_t>(batch.usage.size());
  if (!batch.usage.empty())
    row.end.accepted_ns = NanosOf(batch.usage.back().accepted_at());
  stored.AppendToString(&bytes);
  row.body = Deflate(bytes);
  return row;
}

absl::StatusOr<Batch> DecodeRow(const BatchRow& row, DecodeScratch* scratch,
                                std::vector<RecordRef>* refs) {
  absl::StatusOr<std::string> bytes = Inflate(row.body, kMaxRowBytes);
  if (!bytes.ok()) return RowError(row, bytes.status().message());
  // A large row is parsed apart: what scratch keeps stays small.
  DecodeScratch local;
  if (scratch == nullptr) scratch = &local;
  pb::StoredBatch& stored =
      bytes->size() <= kScratchBytes ? scratch->stored : local.stored;
  if (!stored.ParseFromString(*bytes)) {
    return RowError(row, "its body does not parse");
  }
  // Commands keep their sequences, so that one taken out of the log leaves
  // a gap replay names; entries and usage records are numbered by place.
  const int64_t last_command = stored.commands().empty()
                                   ? row.start.command
                                   : stored.commands().rbegin()->sequence();
  if (last_command != row.end.command ||
      stored.entries_size() != row.end.entry - row.start.entry ||
      stored.usage_size() != row.end.usage - row.start.usage) {
    return RowError(
        row, absl::StrCat("it holds commands up to ", last_command, ", ",
                          stored.entries_size(), " entries and ",
                          stored.usage_size(),
                          " usage records, which its positions do not say"));
  }
  Batch out;
  out.commands.assign(
      std::make_move_iterator(stored.mutable_commands()->begin()),
      std::make_move_iterator(stored.mutable_commands()->end()));
  // Each entry is swapped out for a spare one, if any, which the next
  // parse fills again.
  std::vector<pb::JournalEntry>& spare = scratch->spare_entries;
  out.entries.resize(static_cast<size_t>(stored.entries_size()));
  for (int i = 0; i < stored.entries_size(); ++i) {
    pb::JournalEntry& e = out.entries[static_cast<size_t>(i)];
    if (!spare.empty()) {
      e.Swap(&spare.back());
      spare.pop_back();
    }
    e.Swap(stored.mutable_entries(i));
  }
  const std::string* prev = &ChainStart(row.start.entry_hash);
  for (size_t i = 0; i < out.entries.size(); ++i) {
    pb::JournalEntry& e = out.entries[i];
    e.set_sequence(row.start.entry + 1 + static_cast<int64_t>(i));
    e.set_prev_hash(*prev);
    e.set_hash(EntryHash(e));
    prev = &e.hash();
  }
  if (*prev != ChainStart(row.end.entry_hash)) {
    return RowError(row,
                    "its journal entries do not chain to the hash stored with "
                    "them: they were changed after they were written");
  }
  RETURN_IF_ERROR(DecodeUsage(row, stored, out, *refs));
  return out;
}

absl::StatusOr<Batch> DecodeRow(const BatchRow& row, DecodeScratch* scratch) {
  std::vector<RecordRef> refs;
  ASSIGN_OR_RETURN(Batch out, DecodeRow(row, scratch, &refs));
  for (size_t i = 0; i < refs.size(); ++i) {
    if (refs[i].command >= 0)
      *out.usage[i].mutable_record() = RecordAt(out, refs[i]);
  }
  return out;
}

absl::StatusOr<RowReader::Decoded*> RowReader::Decode(
    const BatchRow& row, const std::function<bool(const Decoded&)>& reusable) {
  auto kept =
      std::find_if(decoded_.begin(), decoded_.end(),
                   [&](const Decoded& d) { return d.id == row.end.id; });
  if (kept != decoded_.end() && reusable(*kept)) return &*kept;
  std::vector<RecordRef> refs;
  ASSIGN_OR_RETURN(Batch batch, DecodeRow(row, &scratch_, &refs));
  if (kept == decoded_.end()) {
    if (decoded_.size() == kDecodedRows) decoded_.pop_front();
    kept = decoded_.emplace(decoded_.end());
  }
  *kept = Decoded{};
  kept->id = row.end.id;
  kept->batch = std::move(batch);
  kept->refs = std::move(refs);
  for (const pb::Command& c : kept->batch.commands)
    kept->command_sequences.push_back(c.sequence());
  return &*kept;
}

const pb::UsageRecord& RowReader::RecordOf(const Decoded& d, size_t index) {
  const RecordRef ref = d.refs[index];
  return ref.command >= 0 ? RecordAt(d.batch, ref)
                          : d.batch.usage[index].record();
}

void RowReader::Recycle(std::vector<pb::JournalEntry> entries) {
  std::vector<pb::JournalEntry>& spare = scratch_.spare_entries;
  for (pb::JournalEntry& e : entries) {
    if (spare.size() == kSpareEntries) break;
    spare.push_back(std::move(e));
  }
}

void RowReader::DropDecoded() {
  decoded_.clear();
  scratch_ = DecodeScratch();
}

template <typename Item>
absl::Status RowReader::Take(const RowsFrom& from, Items<Item> items,
                             size_t limit, const TakeFn<Item>& take) {
  absl::Status error;
  size_t handed = 0;
  RETURN_IF_ERROR(scan_(from, [&](BatchRow row) {
    absl::StatusOr<Decoded*> d = Decode(row, [&](const Decoded& d) {
      return items.first(row, d) >= d.*items.taken &&
             (!items.usable || items.usable(d));
    });
    if (!d.ok()) {
      error = d.status();
      return false;
    }
    std::vector<Item>& all = (*d)->batch.*items.of;
    for (size_t i = items.first(row, **d); i < all.size(); ++i) {
      if (items.skip && items.skip(**d, i)) continue;
      if (handed == limit) return false;
      ++handed;
      (*d)->*items.taken = i + 1;
      if (!take(row, **d, i, all[i])) return false;
    }
    return true;
  }));
  return error;
}

absl::StatusOr<std::vector<pb::Command>> RowReader::ReadCommands(int64_t after,
                                                                 int limit) {
  std::vector<pb::Command> out;
  Items<pb::Command> items{
      &Batch::commands, &Decoded::commands_taken,
      [after](const BatchRow&, const Decoded& d) {
        // Commands keep their sequences, gaps and all.
        const auto& s = d.command_sequences;
        return static_cast<size_t>(std::upper_bound(s.begin(), s.end(), after) -
                                   s.begin());
      },
      nullptr, nullptr};
  RETURN_IF_ERROR(
      Take<pb::Command>({"command_end", after}, items, limit, AppendTo(out)));
  return out;
}

absl::StatusOr<std::vector<pb::JournalEntry>> RowReader::ReadJournal(
    int64_t after, int limit) {
  std::vector<pb::JournalEntry> out;
  Items<pb::JournalEntry> items{&Batch::entries, &Decoded::entries_taken,
                                [after](const BatchRow& row, const Decoded&) {
                                  return FirstAfter(after, row.start.entry);
                                },
                                nullptr, nullptr};
  RETURN_IF_ERROR(Take<pb::JournalEntry>({"entry_end", after}, items, limit,
                                         AppendTo(out)));
  return out;
}

absl::Status RowReader::ScanUsage(const UsageQuery& q,
                                  const std::function<bool(UsageRow)>& fn) {
  const int64_t start = ClampNanos(q.period_start);
  const int64_t end = ClampNanos(q.period_end);
  RowsFrom from{"usage_end", q.after};
  // A record ends before it is accepted, give or take the clock skew the
  // caller tolerates, so none accepted earlier can end in the period.
  if (q.period_start != absl::InfinitePast())
    from.accepted_from = ClampNanos(q.period_start - q.end_after_accept);
  // The records a row keeps in its commands are read from there: a kept
  // row whose commands were moved out is decoded again.
  const bool records = q.records || q.filtered();
  Items<pb::ChargedUsage> items{
      &Batch::usage, &Decoded::usage_taken,
      [&q](const BatchRow& row, const Decoded&) {
        return FirstAfter(q.after, row.start.usage);
      },
      [records](const Decoded& d) { return !records || d.commands_taken == 0; },
      nullptr};
  if (q.filtered()) {
    items.skip = [&](const Decoded& d, size_t i) {
      const pb::UsageRecord& r = RecordOf(d, i);
      const int64_t end_ns = NanosOf(r.end());
      return end_ns < start || end_ns >= end ||
             (q.allocation_ids &&
              !q.allocation_ids->contains(r.allocation_id()));
    };
  }
  return Take<pb::ChargedUsage>(
      from, items, std::numeric_limits<size_t>::max(),
      [&](const BatchRow& row, const Decoded& d, size_t i,
          pb::ChargedUsage& u) {
        UsageRow out{row.start.usage + 1 + static_cast<int64_t>(i),
                     std::move(u)};
        const RecordRef ref = d.refs[i];
        if (ref.command >= 0 && records) {
          *out.usage.mutable_record() = RecordAt(d.batch, ref);
        } else if (ref.command >= 0) {
          out.command = d.command_sequences[static_cast<size_t>(ref.command)];
          out.record_index = ref.record;
        }
        return fn(std::move(out));
      });
}

absl::Status ConvertedRows::Added() {
  if (batch_.commands.size() + batch_.entries.size() + batch_.usage.size() <
      static_cast<size_t>(kRowsConvertedAtOnce)) {
    return absl::OkStatus();
  }
  return Flush();
}

absl::Status ConvertedRows::Flush() {
  if (batch_.commands.empty() && batch_.entries.empty() &&
      batch_.usage.empty()) {
    return absl::OkStatus();
  }
  const BatchRow row = MakeRow(ends_, batch_);
  RETURN_IF_ERROR(insert_(row));
  ends_ = row.end;
  batch_ = Batch();
  return absl::OkStatus();
}

std::string BatchesTableSql(absl::string_view key_type,
                            absl::string_view blob_type) {
  return absl::StrCat(R"sql(
-- The command log, one row per committed batch (see
-- scheduler/store/internal/batch_rows.h). The *_end columns say where the
-- row ends: the sequence of its last command and journal entry and the
-- position of its last usage record, or its predecessor's when it holds
-- none; they grow with the id, so each finds the row holding an item.
CREATE TABLE batches (
  id              )sql",
                      key_type, R"sql( PRIMARY KEY,  -- from 1, without gaps
  command_end     bigint NOT NULL,
  entry_end       bigint NOT NULL,
  usage_end       bigint NOT NULL,
  accepted_end_ns bigint NOT NULL,  -- when record usage_end was accepted
  entry_hash      )sql",
                      blob_type, R"sql( NOT NULL,  -- hash of entry entry_end
  body            )sql",
                      blob_type, R"sql( NOT NULL   -- deflated StoredBatch
);
CREATE INDEX batches_command_end ON batches (command_end, id);
CREATE INDEX batches_entry_end ON batches (entry_end, id);
CREATE INDEX batches_usage_end ON batches (usage_end, id);
CREATE INDEX batches_accepted_end_ns ON batches (accepted_end_ns, id);
)sql");
}

std::string ScanRowsSql(const RowsFrom& from, absl::string_view param_prefix,
                        int limit) {
  const absl::string_view c = from.column;
  const absl::string_view p = param_prefix;
  return absl::StrCat(
      kSelectRows, " WHERE b.id >= (SELECT id FROM batches WHERE ", c, " > ", p,
      "1 ORDER BY ", c,
      ", id LIMIT 1) AND b.id >= (SELECT id FROM batches WHERE "
      "accepted_end_ns >= ",
      p, "2 ORDER BY accepted_end_ns, id LIMIT 1) AND b.id > ", p, "3 AND b.",
      c, " > COALESCE(p.", c, ", h.", c, ", 0) ORDER BY b.id LIMIT ", limit);
}

}  // namespace computevoucher::store::internal
