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

namespace computevoucher::store {

// The schema version this build writes; older databases are migrated on a
// read-write open, newer ones refused.
inline constexpr int kPostgresSchemaVersion = 8;

// Opens the database at `url`, a libpq connection URI
// ("postgresql://user@host:port/dbname"; "postgres://" too; libpq's other
// parameters, such as connect_timeout or keepalives_idle, may be added as
// query parameters and override the defaults: 5 s to connect, and a dead
// server noticed within ~11 s by TCP keepalives). A read-write or replica
// open creates or migrates the schema. Which replica appends is decided by
// the lease in table leader_lease (Store::Campaign): a row with the holder,
// its address, a fencing token and an expiry by the server's clock. Every
// append checks the token inside its transaction under a shared row lock,
// which a takeover waits for. The appending session cannot hold a
// transaction open for longer than the lease. Closing the store resigns.
// Thread-safe: Append, the lease and the reads each have a connection.
//
// Errors: InvalidArgument (the URL does not parse), Unavailable (the server
// cannot be reached or the connection broke; the message names host, port
// and database, never the password), NotFound (read-only and no schema),
// FailedPrecondition (another scheduler holds the lease, a newer schema, an
// append without the lease, or a batch that breaks a constraint), Internal
// (other server errors, with the server's message).
absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                         OpenMode mode);

// `url` without its password, for messages: "user@host:port/dbname".
std::string DescribePostgresUrl(const std::string& url);

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_POSTGRES_STORE_H_
