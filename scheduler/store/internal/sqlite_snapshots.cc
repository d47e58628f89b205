#include "scheduler/store/internal/sqlite_snapshots.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "scheduler/store/internal/sqlite_util.h"
#include "scheduler/store/internal/store_util.h"

namespace computevoucher::store::internal {
namespace {

absl::Status WriteInTransaction(sqlite3* db, const Snapshot& snapshot,
                                int keep) {
  Statement bounds;
  RETURN_IF_ERROR(
      bounds.Prepare(db,
                     "SELECT (SELECT IFNULL(MAX(command_end), 0) FROM batches), "
                     "(SELECT IFNULL(MAX(position), 0) FROM snapshots)"));
  const int rc = sqlite3_step(bounds.get());
  if (rc != SQLITE_ROW) return SqliteError(db, rc, "read snapshot bounds");
  RETURN_IF_ERROR(CheckSnapshot(snapshot.position, keep, bounds.ColumnInt(0),
                                bounds.ColumnInt(1)));
  Statement insert;
  RETURN_IF_ERROR(insert.Prepare(
      db, "INSERT INTO snapshots (position, state, digest) VALUES (?,?,?)"));
  insert.BindInt(1, snapshot.position);
  insert.BindBlob(2, snapshot.state);
  insert.BindBlob(3, snapshot.digest);
  RETURN_IF_ERROR(insert.Run("insert snapshot"));
  Statement prune;
  RETURN_IF_ERROR(prune.Prepare(
      db,
      "DELETE FROM snapshots WHERE position NOT IN "
      "(SELECT position FROM snapshots ORDER BY position DESC LIMIT ?)"));
  prune.BindInt(1, keep);
  return prune.Run("drop old snapshots");
}

}  // namespace

absl::Status WriteSqliteSnapshot(sqlite3* db, const Snapshot& snapshot,
                                 int keep) {
  return RunInTransaction(
      db, [&] { return WriteInTransaction(db, snapshot, keep); });
}

absl::StatusOr<std::vector<int64_t>> ListSqliteSnapshots(sqlite3* db) {
  Statement stmt;
  RETURN_IF_ERROR(stmt.Prepare(
      db, "SELECT position FROM snapshots ORDER BY position DESC"));
  std::vector<int64_t> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    out.push_back(stmt.ColumnInt(0));
  }
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "list snapshots");
  return out;
}

absl::StatusOr<Snapshot> ReadSqliteSnapshot(sqlite3* db, int64_t position) {
  Statement stmt;
  RETURN_IF_ERROR(stmt.Prepare(
      db, "SELECT state, digest FROM snapshots WHERE position = ?"));
  stmt.BindInt(1, position);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(
        absl::StrCat("no snapshot at position ", position));
  }
  if (rc != SQLITE_ROW) return SqliteError(db, rc, "read snapshot");
  Snapshot snapshot;
  snapshot.position = position;
  snapshot.state = stmt.Column(0);
  snapshot.digest = stmt.Column(1);
  return snapshot;
}

}  // namespace computevoucher::store::internal
