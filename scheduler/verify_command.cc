#include "scheduler/verify_command.h"

#include "common/money.h"
#include "common/sha256.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/engine/replay.h"
#include "scheduler/store/open_store.h"

namespace computevoucher::scheduler {

int RunVerify(const computevoucher::v1::SchedulerConfig& config,
              std::ostream& out) {
  absl::StatusOr<std::unique_ptr<store::Store>> store =
      store::OpenStore(config, store::OpenMode::kReadOnly);
  if (!store.ok()) {
    out << "verify: " << store.status().message() << "\n";
    return 2;
  }
  core::StateMachine state;
  absl::StatusOr<engine::ReplayReport> report =
      engine::Replay(**store, **store, **store, state);
  if (!report.ok()) {
    out << "verify: " << report.status().message() << "\n";
    return 2;
  }
  out << "commands replayed: " << report->commands << "\n"
      << "journal entries:   " << report->entries << "\n"
      << "usage records:     " << report->usage_records << "\n"
      << "retired allocations: " << report->retired_allocations << "\n"
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
