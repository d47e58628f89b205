#include "scheduler/store/internal/sqlite_rows.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "scheduler/store/internal/store_util.h"

namespace computevoucher::store::internal {
namespace {

// Adds each of `sql`'s rows to `rows` with `add`.
absl::Status ConvertRows(
    sqlite3* db, const char* sql,
    const std::function<absl::Status(Statement&, Batch&)>& add,
    ConvertedRows& rows) {
  Statement stmt;
  RETURN_IF_ERROR(stmt.Prepare(db, sql));
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    RETURN_IF_ERROR(add(stmt, rows.batch()));
    RETURN_IF_ERROR(rows.Added());
  }
  if (rc != SQLITE_DONE) return SqliteError(db, rc, sql);
  return absl::OkStatus();
}

}  // namespace

absl::Status InsertRow(Statement& insert, const BatchRow& row) {
  insert.BindInt(1, row.end.id);
  insert.BindInt(2, row.end.command);
  insert.BindInt(3, row.end.entry);
  insert.BindInt(4, row.end.usage);
  insert.BindInt(5, row.end.accepted_ns);
  insert.BindBlob(6, row.end.entry_hash);
  insert.BindBlob(7, row.body);
  return insert.Run("insert batch");
}

absl::StatusOr<RowEnds> ReadLastRow(sqlite3* db) {
  Statement stmt;
  RETURN_IF_ERROR(stmt.Prepare(
      db,
      "SELECT id, command_end, entry_end, usage_end, accepted_end_ns, "
      "entry_hash FROM batches ORDER BY id DESC LIMIT 1"));
  RowEnds ends;
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) {
    ends.id = stmt.ColumnInt(0);
    ends.command = stmt.ColumnInt(1);
    ends.entry = stmt.ColumnInt(2);
    ends.usage = stmt.ColumnInt(3);
    ends.accepted_ns = stmt.ColumnInt(4);
    ends.entry_hash = stmt.Column(5);
  } else if (rc != SQLITE_DONE) {
    return SqliteError(db, rc, "read the last batch");
  }
  return ends;
}

BatchRow RowAt(Statement& stmt) {
  BatchRow row;
  row.end.id = stmt.ColumnInt(0);
  row.end.command = stmt.ColumnInt(1);
  row.end.entry = stmt.ColumnInt(2);
  row.end.usage = stmt.ColumnInt(3);
  row.end.accepted_ns = stmt.ColumnInt(4);
  row.end.entry_hash = stmt.Column(5);
  row.body = stmt.Column(6);
  row.start.id = row.end.id - 1;
  if (sqlite3_column_type(stmt.get(), 7) != SQLITE_NULL) {
    row.start.command = stmt.ColumnInt(7);
    row.start.entry = stmt.ColumnInt(8);
    row.start.usage = stmt.ColumnInt(9);
    row.start.accepted_ns = stmt.ColumnInt(10);
    row.start.entry_hash = stmt.Column(11);
  }
  return row;
}

absl::Status ConvertToBatches(sqlite3* db) {
  RETURN_IF_ERROR(Exec(db, BatchesTableSql("INTEGER", "BLOB").c_str()));
  Statement insert;
  RETURN_IF_ERROR(insert.Prepare(db, kInsertRow));
  ConvertedRows rows(
      [&insert](const BatchRow& row) { return InsertRow(insert, row); });
  RETURN_IF_ERROR(ConvertRows(
      db, "SELECT seq, body FROM commands ORDER BY seq",
      [](Statement& row, Batch& batch) {
        if (!batch.commands.emplace_back().ParseFromString(row.Column(1))) {
          return absl::DataLossError(absl::StrCat(
              "commands: row ", row.ColumnInt(0), " does not parse"));
        }
        return absl::OkStatus();
      },
      rows));
  RETURN_IF_ERROR(ConvertRows(
      db,
      "SELECT seq, command_seq, kind, debit_account, credit_account, "
      "amount_fen, program_id, voucher_id, allocation_id, provider_id, "
      "usage_sequence, idempotency_key, time_ns, memo, hash FROM journal "
      "ORDER BY seq",
      [](Statement& row, Batch& batch) {
        pb::JournalEntry& e = batch.entries.emplace_back();
        e.set_sequence(row.ColumnInt(0));
        e.set_command_sequence(row.ColumnInt(1));
        e.set_kind(static_cast<pb::EntryKind>(row.ColumnInt(2)));
        e.set_debit_account(row.Column(3));
        e.set_credit_account(row.Column(4));
        e.set_amount_fen(row.ColumnInt(5));
        e.set_program_id(row.Column(6));
        e.set_voucher_id(row.Column(7));
        e.set_allocation_id(row.Column(8));
        e.set_provider_id(row.Column(9));
        e.set_usage_sequence(row.ColumnInt(10));
        e.set_idempotency_key(row.Column(11));
        *e.mutable_time() = ToProto(absl::FromUnixNanos(row.ColumnInt(12)));
        e.set_memo(row.Column(13));
        e.set_hash(row.Column(14));
        return absl::OkStatus();
      },
      rows));
  RETURN_IF_ERROR(ConvertRows(
      db,
      "SELECT allocation_id, sequence, start_ns, end_ns, gpu_ms, "
      "mean_utilization_bp, energy_mj, cost_fen, subsidy_fen, "
      "unsubsidised_gpu_ms, accepted_ns, evidence FROM usage ORDER BY "
      "position",
      [](Statement& row, Batch& batch) {
        pb::ChargedUsage& u = batch.usage.emplace_back();
        pb::UsageRecord& r = *u.mutable_record();
        r.set_allocation_id(row.Column(0));
        r.set_sequence(row.ColumnInt(1));
        *r.mutable_start() = ToProto(absl::FromUnixNanos(row.ColumnInt(2)));
        *r.mutable_end() = ToProto(absl::FromUnixNanos(row.ColumnInt(3)));
        r.set_gpu_ms(row.ColumnInt(4));
        r.set_mean_utilization_bp(static_cast<int32_t>(row.ColumnInt(5)));
        r.set_energy_mj(row.ColumnInt(6));
        u.set_cost_fen(row.ColumnInt(7));
        u.set_subsidy_fen(row.ColumnInt(8));
        u.set_unsubsidised_gpu_ms(row.ColumnInt(9));
        *u.mutable_accepted_at() =
            ToProto(absl::FromUnixNanos(row.ColumnInt(10)));
        r.set_evidence(row.Column(11));
        return absl::OkStatus();
      },
      rows));
  RETURN_IF_ERROR(rows.Flush());
  return Exec(db, "DROP TABLE commands; DROP TABLE journal; DROP TABLE usage");
}

}  // namespace computevoucher::store::internal
