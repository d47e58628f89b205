// The PostgreSQL store's schema and the queries on it outside appends:
// migrations, the schema check of a read-only open, the last row of the
// command log, and the lease row. Not for use outside scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_POSTGRES_SCHEMA_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_POSTGRES_SCHEMA_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduler/store/command_log.h"
#include "scheduler/store/internal/batch_rows.h"
#include "scheduler/store/internal/libpq.h"

namespace computevoucher::store::internal {

// The schema version stored (0 before the first migration).
absl::StatusOr<int64_t> SchemaVersion(PGconn* conn);

// Creates or migrates the schema to this build's version (replicas started
// together migrate one at a time, under an advisory lock);
// FailedPrecondition for a newer schema.
absl::Status Migrate(PGconn* conn);

// For a read-only open: the schema must exist at this build's version.
absl::Status CheckSchema(PGconn* conn);

// Where the last row of `batches` ends (none when there is no row).
absl::StatusOr<RowEnds> ReadLastRowOn(PGconn* conn);

// Inserts `row` into `batches`.
absl::Status InsertRowOn(PGconn* conn, const BatchRow& row);

// Row `i` of `result`, whose columns are those of ScanRowsSql.
BatchRow RowAt(const PGresult* result, int i);

// The lease as a campaign or an append found it.
struct LeaseRow {
  std::string holder;
  std::string address;
  int64_t fencing_token = 0;
  bool expired = true;
};

// Reads the lease row, with `lock` appended to the query ("FOR UPDATE",
// "FOR SHARE" or "").
absl::StatusOr<LeaseRow> ReadLease(PGconn* conn, absl::string_view lock);

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_POSTGRES_SCHEMA_H_
