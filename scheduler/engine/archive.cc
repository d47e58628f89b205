#include "scheduler/engine/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config.h"
#include "common/deflate.h"
#include "common/journal_hash.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "google/protobuf/util/json_util.h"
#include "scheduler/core/ledger.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/engine/writer.h"

namespace computevoucher::engine {
namespace {

// Larger than any part: one holds up to kPartBytes of items, and the last
// item added may be a usage report of 10,000 records.
constexpr uint64_t kMaxPartBytes = uint64_t{1} << 31;
constexpr int kChunk = 1000;

absl::Status Errno(const std::string& what) {
  return absl::FailedPreconditionError(
      absl::StrCat(what, ": ", std::strerror(errno)));
}

// Writes `bytes` to `path` through a temporary file, synced, then renamed.
absl::Status WriteDurably(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const absl::Status s = Errno(tmp);
      close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    const absl::Status s = Errno(tmp);
    close(fd);
    return s;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) return Errno(path);
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(dir);
  const int rc = fsync(fd);
  close(fd);
  return rc == 0 ? absl::OkStatus() : Errno(dir);
}

pb::LogPosition PositionOf(const store::BatchEnd& end) {
  pb::LogPosition p;
  p.set_command(end.command);
  p.set_entry(end.entry);
  p.set_usage(end.usage);
  p.set_entry_hash(end.entry_hash);
  return p;
}

bool SameEnd(const pb::LogPosition& p, const store::BatchEnd& end) {
  return p.command() == end.command && p.entry() == end.entry &&
         p.usage() == end.usage && p.entry_hash() == end.entry_hash;
}

// The parts of one kind being written: items gather into a part, which is
// written once it holds kItemsPerPart items or kPartBytes bytes.
class PartWriter {
 public:
  PartWriter(std::string dir, std::string kind, pb::ArchiveManifest& manifest,
             ArchiveReport& report)
      : dir_(std::move(dir)),
        kind_(std::move(kind)),
        manifest_(manifest),
        report_(report) {}

  pb::ArchivePart& part() { return part_; }
  // Call after adding item `number`, of `bytes` serialized, to part().
  absl::Status Added(int64_t number, size_t bytes) {
    if (count_ == 0) first_ = number;
    last_ = number;
    bytes_ += bytes;
    return ++count_ == kItemsPerPart || bytes_ >= kPartBytes ? Flush()
                                                             : absl::OkStatus();
  }
  absl::Status Flush() {
    if (count_ == 0) return absl::OkStatus();
    pb::ArchivePartFile& file = *manifest_.add_parts();
    file.set_file(absl::StrFormat("%s-%06d.pb.deflate", kind_, ++files_));
    // Deterministic (map entries in key order): a run resumed after a crash
    // writes the same bytes, which must hash to the anchored manifest.
    const std::string bytes = Deflate(core::Deterministic(part_));
    RETURN_IF_ERROR(WriteDurably(absl::StrCat(dir_, "/", file.file()), bytes));
    file.set_bytes(static_cast<int64_t>(bytes.size()));
    file.set_sha256(ToHex(Sha256(bytes)));
    file.set_kind(kind_);
    file.set_first(first_);
    file.set_last(last_);
    report_.bytes += file.bytes();
    part_.Clear();
    count_ = 0;
    bytes_ = 0;
    return absl::OkStatus();
  }

 private:
  const std::string dir_;
  const std::string kind_;
  pb::ArchiveManifest& manifest_;
  ArchiveReport& report_;
  pb::ArchivePart part_;
  int64_t count_ = 0, first_ = 0, last_ = 0;
  size_t bytes_ = 0;
  int files_ = 0;
};

using DayKey = std::pair<std::string, absl::Time>;

// Adds `u` to the sums of its allocation and Asia/Shanghai day.
void AddToDay(const pb::ChargedUsage& u,
              std::map<DayKey, store::UsageDay>& days) {
  const absl::Time end = absl::FromUnixSeconds(u.record().end().seconds()) +
                         absl::Nanoseconds(u.record().end().nanos());
  const absl::Time day = StartOfDay(absl::ToCivilDay(end, ShanghaiZone()));
  store::UsageDay& d = days[{u.record().allocation_id(), day}];
  d.allocation_id = u.record().allocation_id();
  d.day = day;
  d.records += 1;
  d.gpu_ms += u.record().gpu_ms();
  d.unsubsidised_gpu_ms += u.unsubsidised_gpu_ms();
  d.cost_fen += u.cost_fen();
  d.subsidy_fen += u.subsidy_fen();
}

// Writes the report's manifest into `archive_dir` as JSON, with its hash
// in the report, and syncs the directory.
absl::Status WriteManifest(const std::string& archive_dir,
                           ArchiveReport& report) {
  const pb::ArchiveManifest& manifest = report.manifest;
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(manifest, &json, options)
           .ok()) {
    return absl::InternalError("archive: the manifest does not print as JSON");
  }
  report.manifest_sha256 = Sha256(json);
  RETURN_IF_ERROR(
      WriteDurably(absl::StrCat(archive_dir, "/", kManifestFile), json));
  return SyncDirectory(archive_dir);
}

// Writes the items numbered (after, through] of one kind into `parts`, in
// order: `read(after)` reads the next chunk, `number(item)` says an item's
// number, and `add(item, part)` moves it into the part and returns its size
// serialized. Returns how many it wrote.
template <typename Item, typename Read, typename Number, typename Add>
absl::StatusOr<int64_t> ExportItems(PartWriter& parts, int64_t after,
                                    int64_t through, Read read, Number number,
                                    Add add) {
  int64_t written = 0;
  while (after < through) {
    ASSIGN_OR_RETURN(std::vector<Item> chunk, read(after));
    if (chunk.empty()) break;
    for (Item& item : chunk) {
      const int64_t n = number(item);
      if (n > through) break;
      after = n;
      ++written;
      const size_t bytes = add(std::move(item), parts.part());
      RETURN_IF_ERROR(parts.Added(n, bytes));
    }
  }
  RETURN_IF_ERROR(parts.Flush());
  return written;
}

// Writes the range (from, through] of `store` under `archive_dir`, with its
// manifest; fills the report and the usage days.
absl::Status Export(store::Store& store, const store::BatchEnd& from,
                    const store::BatchEnd& through, absl::Time before,
                    const std::string& archive_dir, ArchiveReport& report,
                    std::map<DayKey, store::UsageDay>& days) {
  if (mkdir(archive_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Errno(archive_dir);
  }
  pb::ArchiveManifest& manifest = report.manifest;
  manifest.set_format(kArchiveFormat);
  *manifest.mutable_before() = ToProto(before);
  *manifest.mutable_from() = PositionOf(from);
  *manifest.mutable_through() = PositionOf(through);

  PartWriter commands(archive_dir, "commands", manifest, report);
  ASSIGN_OR_RETURN(
      report.commands,
      ExportItems<pb::Command>(
          commands, from.command, through.command,
          [&store](int64_t after) { return store.ReadCommands(after, kChunk); },
          [](const pb::Command& c) { return c.sequence(); },
          [&manifest](pb::Command c, pb::ArchivePart& part) {
            if (!manifest.has_first_command_time())
              *manifest.mutable_first_command_time() = c.time();
            *manifest.mutable_last_command_time() = c.time();
            const size_t bytes = c.ByteSizeLong();
            *part.add_commands() = std::move(c);
            return bytes;
          }));
  PartWriter entries(archive_dir, "entries", manifest, report);
  ASSIGN_OR_RETURN(
      report.entries,
      ExportItems<pb::JournalEntry>(
          entries, from.entry, through.entry,
          [&store](int64_t after) { return store.ReadJournal(after, kChunk); },
          [](const pb::JournalEntry& e) { return e.sequence(); },
          [](pb::JournalEntry e, pb::ArchivePart& part) {
            const size_t bytes = e.ByteSizeLong();
            *part.add_entries() = std::move(e);
            return bytes;
          }));
  PartWriter usage(archive_dir, "usage", manifest, report);
  ASSIGN_OR_RETURN(report.usage_records,
                   ExportItems<store::UsageRow>(
                       usage, from.usage, through.usage,
                       [&store](int64_t after) {
                         store::UsageQuery query;
                         query.after = after;
                         query.limit = kChunk;
                         return store.ReadUsage(query);
                       },
                       [](const store::UsageRow& row) { return row.position; },
                       [&days](store::UsageRow row, pb::ArchivePart& part) {
                         AddToDay(row.usage, days);
                         const size_t bytes = row.usage.ByteSizeLong();
                         *part.add_usage() = std::move(row.usage);
                         return bytes;
                       }));

  if (report.commands != through.command - from.command ||
      report.entries != through.entry - from.entry ||
      report.usage_records != through.usage - from.usage) {
    return absl::DataLossError(absl::StrCat(
        "archive: the store returned ", report.commands, " commands, ",
        report.entries, " entries and ", report.usage_records,
        " usage records for a range that holds ",
        through.command - from.command, ", ", through.entry - from.entry,
        " and ", through.usage - from.usage));
  }
  return WriteManifest(archive_dir, report);
}

// The last command after `after` applied before `before`; `after` when
// there is none. Command times never go back, so it is found by bisection,
// reading one command a step rather than the whole range.
absl::StatusOr<int64_t> LastCommandBefore(store::CommandLog& log, int64_t after,
                                          absl::Time before) {
  ASSIGN_OR_RETURN(const store::Head head, log.ReadHead());
  int64_t low = after;  // before `before`, or the start
  int64_t high = std::max(after, head.command_sequence);
  while (low < high) {
    const int64_t mid = low + (high - low + 1) / 2;
    ASSIGN_OR_RETURN(const std::vector<pb::Command> one,
                     log.ReadCommands(mid - 1, 1));
    if (one.empty() || one[0].sequence() != mid) {
      return absl::DataLossError(
          absl::StrCat("archive: command ", mid, " is not stored"));
    }
    ASSIGN_OR_RETURN(const absl::Time t,
                     FromProto("command.time", one[0].time()));
    if (t < before) {
      low = mid;
    } else {
      high = mid - 1;
    }
  }
  return low;
}

absl::Status RemoveAll(const std::string& path) {
  std::error_code error;
  std::filesystem::remove_all(path, error);
  if (error)
    return absl::FailedPreconditionError(path + ": " + error.message());
  return absl::OkStatus();
}

// Puts the files written in `writing` in place as report.directory. For a
// new range they replace what an interrupted run that anchored nothing
// left there. For a range an earlier run anchored (`pending`) they must
// hash to the anchor; if they do not (another build writes other bytes),
// a copy already in place that does is kept; otherwise DataLoss, with both
// left as they are.
absl::Status PlaceFiles(const std::string& writing, ArchiveReport& report,
                        const pb::ArchiveCommand& pending) {
  const std::string& place = report.directory;
  if (!report.resumed || report.manifest_sha256 == pending.manifest_sha256()) {
    RETURN_IF_ERROR(RemoveAll(place));
    if (rename(writing.c_str(), place.c_str()) != 0) return Errno(place);
    return absl::OkStatus();
  }
  const absl::StatusOr<std::string> kept =
      ReadFile(absl::StrCat(place, "/", kManifestFile));
  if (kept.ok() && Sha256(*kept) == pending.manifest_sha256()) {
    report.manifest_sha256 = pending.manifest_sha256();
    return RemoveAll(writing);
  }
  return absl::DataLossError(absl::StrCat(
      "archive: the files written again for the range an earlier run "
      "anchored differ from it (manifest SHA-256 ",
      ToHex(report.manifest_sha256), ", anchored ",
      ToHex(pending.manifest_sha256()), ") and ", place,
      " holds no copy that matches; nothing was dropped, and the new files "
      "are left in ",
      writing));
}

// Where the range to archive ends: the range an earlier run anchored but
// did not drop (`pending`, which must have been asked with the same
// `before`), or the last whole batch after `from` applied before `before`;
// nullopt when there is nothing to archive.
absl::StatusOr<std::optional<store::BatchEnd>> RangeToArchive(
    store::Store& store, const store::BatchEnd& from,
    const pb::ArchiveCommand& pending, absl::Time before) {
  if (pending.has_through() && pending.through().command() > from.command) {
    ASSIGN_OR_RETURN(const absl::Time asked,
                     FromProto("before", pending.before()));
    if (asked != before) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--before: an earlier run anchored the archive of the commands "
          "through ",
          pending.through().command(), " applied before ", FormatInstant(asked),
          " and stopped before dropping them; run again with that date to "
          "finish it"));
    }
    ASSIGN_OR_RETURN(const store::BatchEnd end,
                     store.BatchEndAtOrBefore(pending.through().command()));
    if (!SameEnd(pending.through(), end)) {
      return absl::DataLossError(
          absl::StrCat("archive: the anchored range ends at command ",
                       pending.through().command(),
                       ", which is not the end of a stored batch"));
    }
    return end;
  }
  ASSIGN_OR_RETURN(const int64_t last_before,
                   LastCommandBefore(store, from.command, before));
  if (last_before == from.command) return std::nullopt;
  absl::StatusOr<store::BatchEnd> end = store.BatchEndAtOrBefore(last_before);
  if (absl::IsNotFound(end.status()) ||
      (end.ok() && end->command <= from.command)) {
    return std::nullopt;  // the first batch after the horizon runs past it
  }
  RETURN_IF_ERROR(end.status());
  return *end;
}

}  // namespace

absl::StatusOr<ArchiveReport> ArchiveBefore(store::Store& store, Clock& clock,
                                            absl::Time before,
                                            const std::string& dir) {
  const absl::Time now = clock.Now();
  if (before > now - kArchiveClosedFor) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--before: ", FormatInstant(before),
        " is less than 31 days ago; only closed periods are archived (at "
        "most ",
        FormatInstant(now - kArchiveClosedFor), ")"));
  }
  ASSIGN_OR_RETURN(const std::optional<store::Horizon> horizon,
                   store.ReadHorizon());
  const store::BatchEnd from = horizon ? horizon->end : store::BatchEnd{};
  WriterOptions options;
  options.snapshots.every = 0;
  options.snapshots.interval = absl::ZeroDuration();
  ASSIGN_OR_RETURN(std::unique_ptr<Writer> writer,
                   Writer::Open(store, clock, options));
  const pb::ArchiveCommand pending = writer->Read(
      [](const core::StateMachine& s) { return s.last_archive(); });
  ArchiveReport report;
  ASSIGN_OR_RETURN(const std::optional<store::BatchEnd> through,
                   RangeToArchive(store, from, pending, before));
  if (!through) return report;
  report.resumed =
      pending.has_through() && pending.through().command() == through->command;

  // Written under a hidden name, which verify skips, then put in place
  // before the anchor: an anchored copy is never overwritten by a copy
  // that does not match it.
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno(dir);
  const std::string name =
      absl::StrFormat("log-%012d-%012d", from.command + 1, through->command);
  const std::string writing = absl::StrCat(dir, "/.", name, ".writing");
  report.directory = absl::StrCat(dir, "/", name);
  RETURN_IF_ERROR(RemoveAll(writing));
  std::map<DayKey, store::UsageDay> days;
  RETURN_IF_ERROR(Export(store, from, *through, before, writing, report, days));
  RETURN_IF_ERROR(PlaceFiles(writing, report, pending));
  RETURN_IF_ERROR(SyncDirectory(dir));
  if (!report.resumed) {
    pb::Command command;
    pb::ArchiveCommand& a = *command.mutable_archive();
    *a.mutable_through() = PositionOf(*through);
    *a.mutable_before() = ToProto(before);
    a.set_manifest_sha256(report.manifest_sha256);
    RETURN_IF_ERROR(writer->Submit(std::move(command)).status());
  }
  // A snapshot after the anchor, so that start-up never needs what is
  // dropped.
  RETURN_IF_ERROR(writer->Close());
  std::vector<store::UsageDay> day_list;
  day_list.reserve(days.size());
  for (auto& [key, day] : days) day_list.push_back(std::move(day));
  RETURN_IF_ERROR(store.DropArchived(
      store::Horizon{*through, before, report.manifest_sha256}, day_list));
  report.archived = true;
  return report;
}

absl::StatusOr<std::vector<LoadedArchive>> LoadArchives(
    const std::string& dir, const store::Horizon& horizon) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return Errno(absl::StrCat("--archive ", dir));
  std::vector<std::string> names;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;  // hidden: being written
    if (access(absl::StrCat(dir, "/", name, "/", kManifestFile).c_str(),
               R_OK) == 0) {
      names.push_back(name);
    }
  }
  closedir(d);
  std::vector<LoadedArchive> out;
  for (const std::string& name : names) {
    LoadedArchive a;
    a.directory = absl::StrCat(dir, "/", name);
    const std::string path = absl::StrCat(a.directory, "/", kManifestFile);
    ASSIGN_OR_RETURN(const std::string json, ReadFile(path));
    google::protobuf::util::JsonParseOptions options;
    if (!google::protobuf::util::JsonStringToMessage(json, &a.manifest, options)
             .ok() ||
        a.manifest.format() != kArchiveFormat) {
      return absl::DataLossError(
          absl::StrCat(path, ": not a ", kArchiveFormat, " manifest"));
    }
    a.manifest_sha256 = Sha256(json);
    out.push_back(std::move(a));
  }
  std::sort(out.begin(), out.end(),
            [](const LoadedArchive& a, const LoadedArchive& b) {
              return a.manifest.from().command() < b.manifest.from().command();
            });
  store::BatchEnd next;  // the log's start
  for (size_t i = 0; i < out.size(); ++i) {
    const LoadedArchive& a = out[i];
    if (i > 0 &&
        a.manifest.from().command() == out[i - 1].manifest.from().command()) {
      return absl::FailedPreconditionError(absl::StrCat(
          out[i - 1].directory, " and ", a.directory,
          " both start after command ", a.manifest.from().command(),
          ": keep the one the journal anchored (verify names it) and move "
          "the other away"));
    }
    if (!SameEnd(a.manifest.from(), next)) {
      return absl::FailedPreconditionError(absl::StrCat(
          a.directory, " starts after command ", a.manifest.from().command(),
          ", entry ", a.manifest.from().entry(), " and usage record ",
          a.manifest.from().usage(), "; the archive before it ends after ",
          next.command, ", ", next.entry, " and ", next.usage,
          ": an archive is missing"));
    }
    next.command = a.manifest.through().command();
    next.entry = a.manifest.through().entry();
    next.usage = a.manifest.through().usage();
    next.entry_hash = a.manifest.through().entry_hash();
  }
  if (next.command != horizon.end.command || next.entry != horizon.end.entry ||
      next.usage != horizon.end.usage ||
      next.entry_hash != horizon.end.entry_hash) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the archives in ", dir, " end after command ", next.command,
        ", but the store's history starts after command ", horizon.end.command,
        ": an archive is missing"));
  }
  return out;
}

struct ArchivedLog::Part {
  int64_t first = 0, last = 0;
  pb::ArchivePart items;
};

ArchivedLog::ArchivedLog(std::vector<LoadedArchive> archives,
                         store::Store& store)
    : archives_(std::move(archives)), store_(store) {
  if (!archives_.empty()) {
    const pb::LogPosition& t = archives_.back().manifest.through();
    through_ = {t.command(), t.entry(), t.usage(), t.entry_hash(), 0};
  }
}

ArchivedLog::~ArchivedLog() = default;

absl::StatusOr<const pb::ArchivePart*> ArchivedLog::PartFor(
    const std::string& kind, int64_t next) {
  std::unique_ptr<Part>& part = loaded_[kind];
  if (part != nullptr && part->first <= next && next <= part->last) {
    return &part->items;
  }
  for (const LoadedArchive& a : archives_) {
    for (const pb::ArchivePartFile& f : a.manifest.parts()) {
      if (f.kind() != kind || next < f.first() || next > f.last()) continue;
      const std::string path = absl::StrCat(a.directory, "/", f.file());
      ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path));
      if (ToHex(Sha256(bytes)) != f.sha256() ||
          static_cast<int64_t>(bytes.size()) != f.bytes()) {
        return absl::DataLossError(
            absl::StrCat(path, ": its SHA-256 is ", ToHex(Sha256(bytes)),
                         ", the manifest says ", f.sha256(),
                         ": the archive was changed after it was written"));
      }
      ASSIGN_OR_RETURN(const std::string raw, Inflate(bytes, kMaxPartBytes));
      part = std::make_unique<Part>();
      part->first = f.first();
      part->last = f.last();
      if (!part->items.ParseFromString(raw)) {
        return absl::DataLossError(absl::StrCat(path, ": does not parse"));
      }
      return &part->items;
    }
  }
  return absl::DataLossError(absl::StrCat("the archives list no part of ", kind,
                                          " holding number ", next));
}

// Fills up to `limit` items after `after` by calling `read(after, room)`,
// which reads from one part or from the store, until it returns none:
// readers take a short read for the end of the log.
template <typename Item, typename Read, typename Number>
absl::StatusOr<std::vector<Item>> ReadAcross(int64_t after, int limit,
                                             Read read, Number number) {
  std::vector<Item> out;
  while (static_cast<int>(out.size()) < limit) {
    ASSIGN_OR_RETURN(std::vector<Item> more,
                     read(after, limit - static_cast<int>(out.size())));
    if (more.empty()) break;
    after = number(more.back());
    for (Item& item : more) out.push_back(std::move(item));
  }
  return out;
}

// Up to `room` of `items` (commands or entries, in sequence order) with a
// sequence above `after`.
template <typename Item>
std::vector<Item> SequencedAfter(
    const google::protobuf::RepeatedPtrField<Item>& items, int64_t after,
    int room) {
  std::vector<Item> out;
  for (const Item& item : items) {
    if (item.sequence() <= after) continue;
    if (static_cast<int>(out.size()) == room) break;
    out.push_back(item);
  }
  return out;
}

absl::StatusOr<std::vector<pb::Command>> ArchivedLog::ReadCommands(
    int64_t after, int limit) {
  ASSIGN_OR_RETURN(
      std::vector<pb::Command> out,
      ReadAcross<pb::Command>(
          after, limit,
          [this](int64_t after,
                 int room) -> absl::StatusOr<std::vector<pb::Command>> {
            if (after >= through_.command)
              return store_.ReadCommands(after, room);
            ASSIGN_OR_RETURN(const pb::ArchivePart* part,
                             PartFor("commands", after + 1));
            return SequencedAfter(part->commands(), after, room);
          },
          [](const pb::Command& c) { return c.sequence(); }));
  for (const pb::Command& c : out) {
    if (c.has_archive()) {
      anchors_[c.archive().through().command()] = c.archive().manifest_sha256();
    }
  }
  return out;
}

absl::StatusOr<std::vector<pb::JournalEntry>> ArchivedLog::ReadJournal(
    int64_t after, int limit) {
  return ReadAcross<pb::JournalEntry>(
      after, limit,
      [this](int64_t after,
             int room) -> absl::StatusOr<std::vector<pb::JournalEntry>> {
        if (after >= through_.entry) return store_.ReadJournal(after, room);
        ASSIGN_OR_RETURN(const pb::ArchivePart* part,
                         PartFor("entries", after + 1));
        // A part holds the hashes its writer wrote. Replay takes the hash of
        // an entry it posts again from the entry it reads (core::
        // KnownHashes), so each is computed from its contents here, as a
        // store's rows are; the chain is checked through prev_hash.
        std::vector<pb::JournalEntry> entries =
            SequencedAfter(part->entries(), after, room);
        for (pb::JournalEntry& e : entries) e.set_hash(EntryHash(e));
        return entries;
      },
      [](const pb::JournalEntry& e) { return e.sequence(); });
}

absl::StatusOr<std::vector<store::UsageRow>> ArchivedLog::ReadUsage(
    const store::UsageQuery& query) {
  if (query.filtered()) {
    return absl::UnimplementedError("archived usage is read in order only");
  }
  return ReadAcross<store::UsageRow>(
      query.after, query.limit,
      [this, records = query.records](int64_t after, int room)
          -> absl::StatusOr<std::vector<store::UsageRow>> {
        store::UsageQuery q;
        q.after = after;
        q.limit = room;
        q.records = records;
        if (after >= through_.usage) return store_.ReadUsage(q);
        ASSIGN_OR_RETURN(const pb::ArchivePart* part,
                         PartFor("usage", after + 1));
        const int64_t first = loaded_["usage"]->first;
        std::vector<store::UsageRow> got;
        for (int64_t i = after + 1 - first;
             i < part->usage_size() && static_cast<int>(got.size()) < room;
             ++i) {
          got.push_back(
              store::UsageRow{first + i, part->usage(static_cast<int>(i))});
          if (first + i > summed_through_) {
            AddToDay(got.back().usage, days_);
            summed_through_ = first + i;
            const google::protobuf::Timestamp& t =
                got.back().usage.accepted_at();
            last_accepted_ns_ = t.seconds() * 1'000'000'000 + t.nanos();
          }
        }
        return got;
      },
      [](const store::UsageRow& row) { return row.position; });
}

absl::StatusOr<store::Head> ArchivedLog::ScanUsage(
    const store::UsageQuery&,
    const std::function<void(const pb::ChargedUsage&)>&) {
  return absl::UnimplementedError("archived usage is read in order only");
}

absl::Status ArchivedLog::Append(const store::Batch&) {
  return absl::FailedPreconditionError("an archived log is read-only");
}

absl::Status ArchivedLog::WriteSnapshot(const store::Snapshot&, int) {
  return absl::FailedPreconditionError("an archived log is read-only");
}

absl::Status ArchivedLog::CheckDays(std::vector<std::string>& out) {
  std::map<DayKey, store::UsageDay> stored;
  RETURN_IF_ERROR(store_.ScanUsageDays(store::UsageQuery(),
                                       [&stored](const store::UsageDay& d) {
                                         stored[{d.allocation_id, d.day}] = d;
                                       }));
  auto same = [](const store::UsageDay& a, const store::UsageDay& b) {
    return a.records == b.records && a.gpu_ms == b.gpu_ms &&
           a.unsubsidised_gpu_ms == b.unsubsidised_gpu_ms &&
           a.cost_fen == b.cost_fen && a.subsidy_fen == b.subsidy_fen;
  };
  for (const auto& [key, d] : days_) {
    auto it = stored.find(key);
    if (it == stored.end() || !same(it->second, d)) {
      out.push_back(absl::StrCat(
          "archived usage of ", d.allocation_id, " ending on ",
          FormatInstant(d.day), ": the parts sum to ", d.records, " records, ",
          d.cost_fen, " fen cost and ", d.subsidy_fen,
          " fen subsidy; the store's day sums ",
          it == stored.end() ? std::string("have none")
                             : absl::StrCat("say ", it->second.records, ", ",
                                            it->second.cost_fen, " and ",
                                            it->second.subsidy_fen)));
    }
  }
  for (const auto& [key, d] : stored) {
    if (days_.count(key) == 0) {
      out.push_back(absl::StrCat(
          "the store's day sums hold usage of ", d.allocation_id, " ending on ",
          FormatInstant(d.day), " that no archived record has"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ArchivedLog::Violations(
    const store::Horizon& horizon) {
  std::vector<std::string> out;
  for (const LoadedArchive& a : archives_) {
    const int64_t through = a.manifest.through().command();
    auto it = anchors_.find(through);
    if (it == anchors_.end()) {
      out.push_back(absl::StrCat(a.directory,
                                 ": no ArchiveCommand anchors the archive "
                                 "through command ",
                                 through));
    } else if (it->second != a.manifest_sha256) {
      out.push_back(
          absl::StrCat(a.directory, "/", kManifestFile, ": its SHA-256 is ",
                       ToHex(a.manifest_sha256), ", the journal anchored ",
                       ToHex(it->second),
                       ": the manifest was changed after it was anchored"));
    }
  }
  for (const auto& [through, sha] : anchors_) {
    const bool listed =
        std::any_of(archives_.begin(), archives_.end(),
                    [through = through](const LoadedArchive& a) {
                      return a.manifest.through().command() == through;
                    });
    if (!listed) {
      out.push_back(
          absl::StrCat("the journal anchors an archive through command ",
                       through, " that is not in the directory"));
    }
  }
  if (!archives_.empty()) {
    const LoadedArchive& last = archives_.back();
    const absl::Time asked = FromProto("before", last.manifest.before())
                                 .value_or(absl::InfinitePast());
    // When the last archived record was accepted bounds what the day sums
    // answer for (statements, settlement, usage pages).
    const bool accepted_as_stored =
        through_.usage == 0 || horizon.end.accepted_ns == last_accepted_ns_;
    if (horizon.manifest_sha256 != last.manifest_sha256 ||
        horizon.before != asked || !accepted_as_stored) {
      out.push_back(absl::StrCat("the store's horizon names manifest SHA-256 ",
                                 ToHex(horizon.manifest_sha256), ", before ",
                                 FormatInstant(horizon.before),
                                 "; the last archive is ", last.directory));
    }
  }
  RETURN_IF_ERROR(CheckDays(out));
  return out;
}

}  // namespace computevoucher::engine
