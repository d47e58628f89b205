#include "scheduler/reports/journal.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/validate.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/engine/replay.h"
#include "scheduler/engine/snapshots.h"
#include "scheduler/reports/paging.h"

namespace computevoucher::reports {

absl::StatusOr<pb::ListJournalResponse> JournalPage(
    store::CommandLog& log, const pb::ListJournalRequest& request) {
  ASSIGN_OR_RETURN(const int64_t size, PageSize(request.page()));
  ASSIGN_OR_RETURN(const int64_t token, NumericPageToken(request.page()));
  RETURN_IF_ERROR(CheckRange("from_sequence", request.from_sequence(), 0,
                             std::numeric_limits<int64_t>::max()));
  RETURN_IF_ERROR(CheckIdFilter("voucher_id", request.voucher_id()));
  RETURN_IF_ERROR(CheckIdFilter("allocation_id", request.allocation_id()));
  int64_t after = request.page().page_token().empty()
                      ? std::max<int64_t>(0, request.from_sequence() - 1)
                      : token;
  pb::ListJournalResponse out;
  // Scan in chunks until the page is full; filters may skip many entries.
  while (out.entries_size() < size) {
    ASSIGN_OR_RETURN(std::vector<pb::JournalEntry> chunk,
                     log.ReadJournal(after, 4096));
    if (chunk.empty()) {
      after = 0;
      break;
    }
    for (pb::JournalEntry& e : chunk) {
      after = e.sequence();
      if ((!request.voucher_id().empty() &&
           e.voucher_id() != request.voucher_id()) ||
          (!request.allocation_id().empty() &&
           e.allocation_id() != request.allocation_id())) {
        continue;
      }
      *out.add_entries() = std::move(e);
      if (out.entries_size() == size) break;
    }
  }
  if (after != 0) out.set_next_page_token(absl::StrCat(after));
  return out;
}

absl::StatusOr<pb::VerifyJournalResponse> VerifyJournal(
    store::CommandLog& log, store::UsageIndex& usage,
    store::RetiredRecords& retired, store::ArchivedHistory* archived) {
  std::optional<store::Horizon> horizon;
  if (archived != nullptr) {
    ASSIGN_OR_RETURN(horizon, archived->ReadHorizon());
  }
  auto replayed = std::make_unique<core::StateMachine>();
  engine::ReplayReport report;
  if (!horizon) {
    ASSIGN_OR_RETURN(report, engine::Replay(log, usage, retired, *replayed));
  } else {
    // The history before the horizon is in the archive's files: start from
    // the oldest snapshot, which archiving stored after it.
    ASSIGN_OR_RETURN(const std::vector<int64_t> positions,
                     log.ListSnapshots());
    if (positions.empty()) {
      return absl::FailedPreconditionError(
          "the history was archived and no snapshot follows it: run "
          "voucher-scheduler verify --archive DIR");
    }
    ASSIGN_OR_RETURN(const store::Snapshot stored,
                     log.ReadSnapshot(positions.back()));
    ASSIGN_OR_RETURN(const pb::StateSnapshot saved,
                     engine::DecodeSnapshot(stored));
    RETURN_IF_ERROR(replayed->Load(saved));
    engine::Replayer replayer(log, *replayed);
    RETURN_IF_ERROR(replayer.CheckStoredSnapshots());
    RETURN_IF_ERROR(replayer.CatchUp().status());
    ASSIGN_OR_RETURN(report, replayer.Finish());
  }
  pb::VerifyJournalResponse out;
  out.set_ok(report.violations.empty());
  out.set_entries(report.entries);
  out.set_last_hash(report.last_hash);
  out.set_from_snapshot(report.snapshot);
  for (const std::string& v : report.violations) out.add_violations(v);
  return out;
}

}  // namespace computevoucher::reports
