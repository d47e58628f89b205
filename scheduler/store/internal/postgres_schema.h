// The PostgreSQL store's schema and the queries on it outside appends:
// migrations, the schema check of a read-only open, the head, and the
// lease row. Not for use outside scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_POSTGRES_SCHEMA_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_POSTGRES_SCHEMA_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduler/store/command_log.h"
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

// The head as the database holds it.
absl::StatusOr<Head> ReadHeadOn(PGconn* conn);

// The position of the last usage row (0 when none).
absl::StatusOr<int64_t> LastUsagePosition(PGconn* conn);

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
