#include "scheduler/verify_command.h"

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "common/money.h"
#include "common/sha256.h"
#include "common/time_util.h"
#include "scheduler/engine/archive.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/engine/replay.h"
#include "scheduler/store/open_store.h"

namespace computevoucher::scheduler {

int RunVerify(const computevoucher::v1::SchedulerConfig& config,
              const std::string& archive_dir, std::ostream& out) {
  absl::StatusOr<std::unique_ptr<store::Store>> store =
      store::OpenStore(config, store::OpenMode::kReadOnly);
  if (!store.ok()) {
    out << "verify: " << store.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<std::optional<store::Horizon>> horizon =
      (*store)->ReadHorizon();
  if (!horizon.ok()) {
    out << "verify: " << horizon.status().message() << "\n";
    return 2;
  }
  if (horizon->has_value() && archive_dir.empty()) {
    out << "verify: the store's history up to command "
        << (*horizon)->end.command << " (applied before "
        << FormatInstant((*horizon)->before)
        << ") was archived: give its archives with --archive DIR\n";
    return 2;
  }
  std::unique_ptr<engine::ArchivedLog> log;
  if (!archive_dir.empty()) {
    absl::StatusOr<std::vector<engine::LoadedArchive>> archives =
        engine::LoadArchives(archive_dir,
                             horizon->value_or(store::Horizon{}));
    if (!archives.ok()) {
      out << "verify: " << archives.status().message() << "\n";
      return 2;
    }
    out << "archives:          " << archives->size() << "\n";
    log = std::make_unique<engine::ArchivedLog>(std::move(*archives), **store);
  }
  core::StateMachine state;
  absl::StatusOr<engine::ReplayReport> report =
      log ? engine::Replay(*log, *log, **store, state)
          : engine::Replay(**store, **store, **store, state);
  if (!report.ok()) {
    out << "verify: " << report.status().message() << "\n";
    return absl::IsDataLoss(report.status()) ? 1 : 2;
  }
  if (log) {
    absl::StatusOr<std::vector<std::string>> more =
        log->Violations(horizon->value_or(store::Horizon{}));
    if (!more.ok()) {
      out << "verify: " << more.status().message() << "\n";
      return 2;
    }
    for (std::string& v : *more) report->violations.push_back(std::move(v));
  }
  out << "commands replayed: " << report->commands << "\n"
      << "journal entries:   " << report->entries << "\n"
      << "usage records:     " << report->usage_records << "\n"
      << "retired allocations: " << report->retired_allocations << "\n"
      << "retired vouchers:  " << report->retired_vouchers << "\n"
      << "audit events:      " << report->audit_events << "\n"
      << "last hash:         " << ToHex(report->last_hash) << "\n"
      << "snapshots checked: " << report->snapshots_checked << "\n";
  for (const auto& [id, program] : state.programs()) {
    const auto view = state.ProgramView(id);
    out << "program " << id << ": budget " << FormatFen(view->budget_fen())
        << ", unissued " << FormatFen(view->unissued_fen()) << ", issued "
        << FormatFen(view->issued_fen()) << ", held "
        << FormatFen(view->held_fen()) << ", charged "
        << FormatFen(view->charged_fen()) << ", returned "
        << FormatFen(view->returned_fen()) << "\n";
  }
  if (report->violations.empty()) {
    out << "OK: every invariant holds\n";
    return 0;
  }
  out << "FAILED: " << report->violations.size() << " violation(s)\n";
  for (const std::string& v : report->violations) out << "  " << v << "\n";
  return 1;
}

}  // namespace computevoucher::scheduler
