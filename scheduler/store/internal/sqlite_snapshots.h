// The embedded store's snapshots table (see CommandLog::WriteSnapshot). The
// caller serializes the calls on each connection. Not for use outside
// scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_SQLITE_SNAPSHOTS_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_SQLITE_SNAPSHOTS_H_

#include <sqlite3.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scheduler/store/command_log.h"

namespace computevoucher::store::internal {

// Stores `snapshot` and drops all but the newest `keep`, in one
// transaction on `db` (a read-write connection), with the checks and
// errors of CommandLog::WriteSnapshot.
absl::Status WriteSqliteSnapshot(sqlite3* db, const Snapshot& snapshot,
                                 int keep);

// The stored positions, newest first.
absl::StatusOr<std::vector<int64_t>> ListSqliteSnapshots(sqlite3* db);

// The snapshot at `position`; NotFound when there is none.
absl::StatusOr<Snapshot> ReadSqliteSnapshot(sqlite3* db, int64_t position);

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_SQLITE_SNAPSHOTS_H_
