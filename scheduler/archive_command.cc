#include "scheduler/archive_command.h"

#include <unistd.h>

#include "common/clock.h"
#include "common/sha256.h"
#include "common/time_util.h"
#include "scheduler/engine/archive.h"
#include "scheduler/store/open_store.h"

namespace computevoucher::scheduler {

int RunArchive(const computevoucher::v1::SchedulerConfig& config,
               const std::string& before, const std::string& to,
               std::ostream& out) {
  absl::StatusOr<absl::CivilDay> day = ParseDate("--before", before);
  if (!day.ok()) {
    out << "archive: " << day.status().message() << "\n";
    return 2;
  }
  if (to.empty()) {
    out << "archive: --to: required (the directory the archive goes to)\n";
    return 2;
  }
  RealClock clock;
  // Refused before the store is opened (for writing, which takes it).
  if (StartOfDay(*day) > clock.Now() - engine::kArchiveClosedFor) {
    out << "archive: --before: " << before
        << " is less than 31 days ago; only closed periods are archived\n";
    return 2;
  }
  if (config.store().empty() &&
      access((config.data_dir() + "/scheduler.db").c_str(), F_OK) != 0) {
    out << "archive: no scheduler database at " << config.data_dir()
        << "/scheduler.db\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<store::Store>> store =
      store::OpenStore(config, store::OpenMode::kReadWrite);
  if (!store.ok()) {
    out << "archive: " << store.status().message();
    if (absl::IsFailedPrecondition(store.status()))
      out << " (stop every scheduler replica on this store first)";
    out << "\n";
    return 2;
  }
  absl::StatusOr<engine::ArchiveReport> report =
      engine::ArchiveBefore(**store, clock, StartOfDay(*day), to);
  if (!report.ok()) {
    out << "archive: " << report.status().message() << "\n";
    return 2;
  }
  if (!report->archived) {
    out << "nothing to archive: no stored batch of commands applied before "
        << FormatInstant(StartOfDay(*day)) << "\n";
    return 0;
  }
  const auto& m = report->manifest;
  out << "archived to:       " << report->directory << "\n"
      << "commands:          " << m.from().command() + 1 << ".."
      << m.through().command() << " (" << report->commands << ")\n"
      << "journal entries:   " << report->entries << "\n"
      << "usage records:     " << report->usage_records << "\n"
      << "parts:             " << m.parts_size() << " (" << report->bytes
      << " bytes)\n"
      << "manifest SHA-256:  " << ToHex(report->manifest_sha256)
      << (report->resumed ? " (anchored by an earlier run; now dropped)"
                          : " (anchored in the journal)")
      << "\n";
  return 0;
}

}  // namespace computevoucher::scheduler
