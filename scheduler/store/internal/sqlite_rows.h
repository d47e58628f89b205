// The embedded store's rows of `batches` (see batch_rows.h): writing one,
// reading one back, and converting the tables of the schema before them.
// Not for use outside scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_SQLITE_ROWS_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_SQLITE_ROWS_H_

#include <sqlite3.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scheduler/store/internal/batch_rows.h"
#include "scheduler/store/internal/sqlite_util.h"

namespace computevoucher::store::internal {

// The statement InsertRow binds.
inline constexpr char kInsertRow[] =
    "INSERT INTO batches (id, command_end, entry_end, usage_end, "
    "accepted_end_ns, entry_hash, body) VALUES (?,?,?,?,?,?,?)";

// Inserts `row` with `insert`, prepared from kInsertRow.
absl::Status InsertRow(Statement& insert, const BatchRow& row);

// Where the last row ends (none when there is no row).
absl::StatusOr<RowEnds> ReadLastRow(sqlite3* db);

// The row at `stmt`, whose columns are those of ScanRowsSql.
BatchRow RowAt(Statement& stmt);

// Schema 4 -> 5, inside the migration's transaction: creates `batches`,
// moves every command, entry and usage record of the separate tables into
// rows holding one kind each, in order, and drops the tables.
absl::Status ConvertToBatches(sqlite3* db);

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_SQLITE_ROWS_H_
