// The embedded store: one SQLite database in a data directory, in WAL mode
// with synchronous=FULL, so that a batch is on disk when Append returns.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_SQLITE_STORE_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/store/store.h"

namespace computevoucher::store {

// The schema version this build writes; older data directories are migrated
// on open, newer ones refused.
inline constexpr int kSqliteSchemaVersion = 9;

// Opens `<data_dir>/scheduler.db`; read-write creates the directory and
// takes an exclusive lock on `<data_dir>/LOCK`. Errors: NotFound (read-only and
// no database), FailedPrecondition (locked by another process, or written by a
// newer version), Internal (SQLite errors, with SQLite's message).
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(
    const std::string& data_dir, OpenMode mode);

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_SQLITE_STORE_H_
