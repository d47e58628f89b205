#include "scheduler/store/internal/sqlite_util.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace computevoucher::store::internal {

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  const std::string message = absl::StrCat(
      "sqlite: ", what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string message = error ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  return SqliteError(nullptr, rc, absl::StrCat(sql, ": ", message));
}

absl::Status RunInTransaction(sqlite3* db,
                              const std::function<absl::Status()>& fn) {
  RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
  absl::Status status = fn();
  if (status.ok()) status = Exec(db, "COMMIT");
  if (!status.ok()) Exec(db, "ROLLBACK").IgnoreError();
  return status;
}

}  // namespace computevoucher::store::internal
