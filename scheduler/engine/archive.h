// Archiving the oldest part of the log (`voucher-scheduler archive`) and
// reading archives back (`voucher-scheduler verify --archive DIR`).
//
// An archive is a directory of deflated parts (computevoucher.v1.
// ArchivePart), each holding consecutive commands, journal entries or usage
// records, and a manifest.json listing them with their SHA-256. The
// manifest's SHA-256 is anchored in the journal by an ArchiveCommand
// (an ENTRY_KIND_ARCHIVE entry); the store then drops the range, keeping
// its usage summed per allocation and day (store::ArchivedHistory).
#ifndef COMPUTEVOUCHER_SCHEDULER_ENGINE_ARCHIVE_H_
#define COMPUTEVOUCHER_SCHEDULER_ENGINE_ARCHIVE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "computevoucher/v1/archive.pb.h"
#include "scheduler/store/store.h"

namespace computevoucher::engine {

namespace pb = ::computevoucher::v1;

// Only commands applied at least this long ago are archived: a period is
// closed a month after it ends, once its settlement is done.
inline constexpr absl::Duration kArchiveClosedFor = absl::Hours(31 * 24);
// Most items (commands, entries or usage records) and bytes (before
// deflating) per part file: a part is read whole into memory.
inline constexpr int64_t kItemsPerPart = 50'000;
inline constexpr size_t kPartBytes = size_t{16} << 20;
inline constexpr char kManifestFile[] = "manifest.json";
inline constexpr char kArchiveFormat[] = "computevoucher-archive-1";

struct ArchiveReport {
  // False when nothing past the horizon was applied before `before`.
  bool archived = false;
  // An earlier run anchored this range and stopped before dropping it.
  bool resumed = false;
  std::string directory;  // of this archive, inside the directory asked for
  pb::ArchiveManifest manifest;
  std::string manifest_sha256;
  int64_t commands = 0;
  int64_t entries = 0;
  int64_t usage_records = 0;
  int64_t bytes = 0;  // of the parts
};

// Archives the commands of `store` applied before `before` (whole batches,
// after the current horizon) into a new directory under `dir`, anchors its
// manifest in the journal, stores a snapshot after the anchor and drops the
// range from the store. `store` must be open for writing with no scheduler
// running on it. InvalidArgument when `before` is less than
// kArchiveClosedFor before clock.Now(). Safe to run again after a crash:
// the same range is written again and, if already anchored, only dropped.
absl::StatusOr<ArchiveReport> ArchiveBefore(store::Store& store, Clock& clock,
                                            absl::Time before,
                                            const std::string& dir);

// An archive read back: its directory, manifest and the manifest's SHA-256.
struct LoadedArchive {
  std::string directory;
  pb::ArchiveManifest manifest;
  std::string manifest_sha256;
};

// The archives in the subdirectories of `dir` that hold a manifest.json, in
// log order. FailedPrecondition unless they follow each other from the
// log's start and the last ends at `horizon`; DataLoss for a manifest that
// does not parse.
absl::StatusOr<std::vector<LoadedArchive>> LoadArchives(
    const std::string& dir, const store::Horizon& horizon);

// The log as it was before archiving: the archived parts, then the store.
// What `verify --archive` replays. A part whose bytes differ from the
// manifest's hash is DataLoss. Records the ArchiveCommands and sums the
// archived records read, so that Violations can compare them with the
// manifests and the store.
class ArchivedLog final : public store::CommandLog, public store::UsageIndex {
 public:
  // `store` must outlive it.
  ArchivedLog(std::vector<LoadedArchive> archives, store::Store& store);
  ~ArchivedLog() override;

  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                        int limit) override;
  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(int64_t after,
                                                            int limit) override;
  absl::StatusOr<store::Head> ReadHead() override { return store_.ReadHead(); }
  absl::StatusOr<std::vector<int64_t>> ListSnapshots() override {
    return store_.ListSnapshots();
  }
  absl::StatusOr<store::Snapshot> ReadSnapshot(int64_t position) override {
    return store_.ReadSnapshot(position);
  }
  absl::Status Append(const store::Batch&) override;
  absl::Status WriteSnapshot(const store::Snapshot&, int) override;

  // Only the unfiltered reads replay makes (after and limit).
  absl::StatusOr<std::vector<store::UsageRow>> ReadUsage(
      const store::UsageQuery& query) override;
  absl::StatusOr<store::Head> ScanUsage(
      const store::UsageQuery&,
      const std::function<void(const pb::ChargedUsage&)>&) override;

  // After a replay: each archive whose manifest no ArchiveCommand anchored
  // with its hash, each anchor that names no archive read, a `horizon`
  // (the store's) that does not name the last archive, and each day sum
  // of the store (what statements and settlement read) that differs from
  // the archived records replayed.
  absl::StatusOr<std::vector<std::string>> Violations(
      const store::Horizon& horizon);

 private:
  struct Part;
  // The part of `kind` holding item `next`, loaded and checked; null when
  // `next` is past the archives.
  absl::StatusOr<const pb::ArchivePart*> PartFor(const std::string& kind,
                                                 int64_t next);

  // Violations' part for the day sums statements and settlement read:
  // each stored one against the archived records read.
  absl::Status CheckDays(std::vector<std::string>& out);

  std::vector<LoadedArchive> archives_;
  store::Store& store_;
  store::BatchEnd through_;  // where the archives end
  std::map<std::string, std::unique_ptr<Part>> loaded_;  // by kind
  // ArchiveCommands read: through.command -> manifest SHA-256.
  std::map<int64_t, std::string> anchors_;
  // The archived records read, summed by allocation and day, up to usage
  // position `summed_through_`.
  std::map<std::pair<std::string, absl::Time>, store::UsageDay> days_;
  int64_t summed_through_ = 0;
  int64_t last_accepted_ns_ = 0;  // of the record at summed_through_
};

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_SCHEDULER_ENGINE_ARCHIVE_H_
