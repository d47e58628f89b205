// Helpers shared by the store implementations; not for use outside
// scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "scheduler/store/store.h"

namespace computevoucher::store::internal {

// OK when `batch` continues both sequences of `head` without gaps;
// FailedPrecondition naming the first sequence that does not otherwise.
absl::Status CheckContinues(const Head& head, const Batch& batch);

// For WriteSnapshot, inside its transaction: OK when `keep` >= 1 and
// `position` is a stored command (1..`last_command`) newer than the newest
// stored snapshot (`newest`, 0 when none). InvalidArgument for `keep`,
// AlreadyExists for a position equal to `newest`, FailedPrecondition
// otherwise, each naming the values.
absl::Status CheckSnapshot(int64_t position, int keep, int64_t last_command,
                           int64_t newest);

// Unix nanoseconds of a timestamp (stored times are within int64's range,
// years 1678..2262; they were validated when accepted).
int64_t NanosOf(const google::protobuf::Timestamp& ts);

// Unix nanoseconds of `t`, clamped to int64's range (the infinities
// included).
int64_t ClampNanos(absl::Time t);

// The table of retired allocations (RetiredRecords), the same on both
// stores but for the SQL types: `text` and `blob` name them.
std::string RetiredTableSql(absl::string_view text, absl::string_view blob);

// The table of retired vouchers, the same way.
std::string RetiredVouchersTableSql(absl::string_view text,
                                    absl::string_view blob);

// A row of either table: its text columns in the table's order, then
// retired_ns and body.
struct RetiredRow {
  std::vector<std::string> text;
  int64_t retired_ns = 0;
  std::string body;
};
// The rows of the retired allocations and vouchers of `batch`, by table.
struct RetiredRows {
  std::vector<RetiredRow> allocations;
  std::vector<RetiredRow> vouchers;
};
RetiredRows RetiredRowsOf(const Batch& batch);

// ReadRetired's and ReadRetiredVouchers' SELECT for `query`: the bodies of
// the matching rows, with placeholders `marker` 1, 2, ... (`?` for SQLite,
// `$` for PostgreSQL) for `params`, in order. InvalidArgument for a limit
// outside 1..10000.
struct RetiredSelect {
  std::string sql;
  std::vector<std::string> params;
};
absl::StatusOr<RetiredSelect> SelectRetired(const RetiredQuery& query,
                                            char marker);
absl::StatusOr<RetiredSelect> SelectRetired(const RetiredVoucherQuery& query,
                                            char marker);

// A stored body of either table, parsed; DataLoss when it does not parse.
template <typename Message>
absl::StatusOr<Message> ParseRetired(absl::string_view body) {
  Message m;
  if (!m.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return absl::DataLossError(absl::StrCat("retired ",
                                            m.GetDescriptor()->name(),
                                            ": a stored one does not parse"));
  }
  return m;
}

// The audit log's table (RetiredRecords::ReadAudit), the same way. Its id
// is the command's sequence zero-padded to 19 digits, so that its text
// order is log order and its rows share the retired tables' shape.
std::string AuditTableSql(absl::string_view text, absl::string_view blob);
// AuditTableSql's id of command `sequence`.
std::string AuditId(int64_t sequence);
// The rows of `batch`'s audit events.
std::vector<RetiredRow> AuditRowsOf(const Batch& batch);
// ReadAudit's SELECT.
absl::StatusOr<RetiredSelect> SelectRetired(const AuditQuery& query,
                                            char marker);

// The tables of archived history (ArchivedHistory), the same on both
// stores but for the SQL types.
std::string ArchiveTablesSql(absl::string_view text, absl::string_view blob);

// The statements of ArchivedHistory, with placeholders `marker` 1, 2, ...
// (`?` for SQLite, `$` for PostgreSQL). Each selects or binds, in order:
struct ArchiveSql {
  // -> command_end, entry_end, usage_end, accepted_end_ns, entry_hash of
  // the last batch ending at or before command (1).
  std::string batch_end;
  // -> the id of the batch ending at (1) command, (2) entry, (3) usage
  // with (4) entry hash, the number of batches after it and the number of
  // snapshots at or after its end.
  std::string find_batch;
  // (1) the id of the last batch dropped, (2) command snapshots are kept
  // from: deletes them, and deletes the horizon.
  std::string drop_batches, drop_snapshots, drop_horizon;
  // (1) row id, (2) command_end, (3) entry_end, (4) usage_end,
  // (5) accepted_end_ns, (6) entry_hash, (7) before_ns, (8) manifest_sha256.
  std::string insert_horizon;
  // -> the columns insert_horizon binds from (2) on.
  std::string read_horizon;
  // (1) allocation, (2) day_ns, (3) records, (4) gpu_ms,
  // (5) unsubsidised_gpu_ms, (6) cost_fen, (7) subsidy_fen: added to the
  // day's sums.
  std::string add_day;
  // (1) from day_ns, (2) until day_ns -> the columns add_day binds, by
  // allocation and day.
  std::string scan_days;
};
ArchiveSql ArchiveStatements(char marker);

// DropArchived's check of the batch ending at `end`: OK when it was
// `found`, `later` batches follow it and `snapshots` snapshots are at or
// after its end (start-up loads one of them); FailedPrecondition naming
// what is wrong otherwise.
absl::Status CheckDroppable(const BatchEnd& end, bool found, int64_t later,
                            int64_t snapshots);

// Keeps the days of `query`'s allocations (all when unset).
bool WantsDay(const UsageQuery& query, const UsageDay& day);

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_STORE_UTIL_H_
