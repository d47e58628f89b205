// The PostgreSQL store: the same command log, journal and usage records as
// the embedded store, in a database that operators replicate and back up.
// A batch is committed with synchronous_commit on (the server's default), so
// it is durable on the server when Append returns.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_POSTGRES_STORE_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_POSTGRES_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/store/store.h"

namespace cv::store {

// The schema version this build writes; older databases are migrated on a
// read-write open, newer ones refused.
inline constexpr int kPostgresSchemaVersion = 1;

// Opens the database at `url`, a libpq connection URI
// ("postgresql://user@host:port/dbname"; "postgres://" too). A read-write
// open creates or migrates the schema and holds a session advisory lock on
// the database for as long as the store lives, so that one scheduler writes
// to it. Thread-safe: Append holds one connection, the reads another.
//
// Errors: InvalidArgument (the URL does not parse), Unavailable (the server
// cannot be reached or the connection broke; the message names host, port
// and database, never the password), NotFound (read-only and no schema),
// FailedPrecondition (another scheduler holds the database, a newer schema,
// or a batch that breaks a constraint), Internal (other server errors, with
// the server's message).
absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                         OpenMode mode);

// `url` without its password, for messages: "user@host:port/dbname".
std::string DescribePostgresUrl(const std::string& url);

}  // namespace cv::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_POSTGRES_STORE_H_
