// Thin helpers over SQLite for the embedded store: errors as statuses whose
// code says how the caller should react, prepared statements, and
// transactions. Not for use outside scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_SQLITE_UTIL_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_SQLITE_UTIL_H_

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace computevoucher::store::internal {

// SQLite's error `rc` (with `db`'s message when not null) as a status:
// Unavailable when busy or locked, ResourceExhausted when full, Internal
// otherwise.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what);

// Runs `sql`, which may hold several statements but no parameters.
absl::Status Exec(sqlite3* db, const char* sql);

// Runs `fn` inside BEGIN IMMEDIATE ... COMMIT; rolls back when either
// fails, so that on error nothing `fn` did is stored.
absl::Status RunInTransaction(sqlite3* db,
                              const std::function<absl::Status()>& fn);

// A prepared statement, reset after each use. Bound strings must outlive
// the step that reads them (they are not copied).
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  absl::Status Prepare(sqlite3* db, const char* sql) {
    db_ = db;
    const int rc = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
    return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db, rc, sql);
  }
  sqlite3_stmt* get() { return stmt_; }
  void BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindText(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()),
                      SQLITE_STATIC);
  }
  void BindBlob(int i, const std::string& s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()),
                      SQLITE_STATIC);
  }
  // Runs a statement that returns no rows. Every use binds every
  // parameter, so bindings are not cleared.
  absl::Status Run(absl::string_view what) {
    const int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    return rc == SQLITE_DONE ? absl::OkStatus() : SqliteError(db_, rc, what);
  }
  std::string Column(int i) {
    const void* data = sqlite3_column_blob(stmt_, i);
    const int size = sqlite3_column_bytes(stmt_, i);
    return data ? std::string(static_cast<const char*>(data), size)
                : std::string();
  }
  int64_t ColumnInt(int i) { return sqlite3_column_int64(stmt_, i); }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_SQLITE_UTIL_H_
