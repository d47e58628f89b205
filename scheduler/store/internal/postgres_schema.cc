#include "scheduler/store/internal/postgres_schema.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "scheduler/store/postgres_store.h"

namespace computevoucher::store::internal {
namespace {

// Created before anything else, outside the numbered migrations: the one row
// says which of them have run.
constexpr char kSchemaVersionTable[] = R"sql(
CREATE TABLE IF NOT EXISTS schema_version (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  version  integer NOT NULL
);
INSERT INTO schema_version (version) VALUES (0) ON CONFLICT DO NOTHING;
)sql";

// Each migration takes the schema from version i to i + 1, in one
// transaction with the version update.
//
// Rows hold the serialized protobufs (bytea) and, beside them, only the
// columns that queries select by. Every table but leader_lease is
// append-only.
constexpr const char* kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE commands (
  seq        bigint PRIMARY KEY,  -- command sequence, from 1
  time_ns    bigint NOT NULL,     -- applied at, Unix nanoseconds (UTC)
  request_id text   NOT NULL,
  kind       text   NOT NULL,     -- body field name, for people reading it
  body       bytea  NOT NULL      -- computevoucher.v1.Command
);
CREATE TABLE journal (
  seq         bigint PRIMARY KEY,
  command_seq bigint NOT NULL,
  hash        bytea  NOT NULL,
  -- computevoucher.v1.JournalEntry without prev_hash, which is the previous
  -- row's hash.
  body        bytea  NOT NULL
);
-- Accepted usage records with what each was charged, for usage listings,
-- statements and settlement, at positions from 1 without gaps in the order
-- they were accepted (the store numbers them; a sequence could leave gaps).
-- Acceptance times grow with the position, so a BRIN index finds a period's
-- first rows for almost nothing at ingest.
CREATE TABLE usage (
  position      bigint PRIMARY KEY,
  allocation_id text   NOT NULL,
  end_ns        bigint NOT NULL,  -- end of the interval, Unix nanoseconds
  accepted_ns   bigint NOT NULL,
  body          bytea  NOT NULL   -- computevoucher.v1.ChargedUsage
);
CREATE INDEX usage_accepted_ns ON usage USING brin (accepted_ns);
)sql",
    // 1 -> 2
    R"sql(
-- Which replica writes (see Campaign and Append). Expiry is by the
-- server's clock only, so replicas' clocks never need to agree.
CREATE TABLE leader_lease (
  only_row      boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
  holder        text        NOT NULL,  -- the replica's candidate id
  address       text        NOT NULL,  -- where clients reach it
  fencing_token bigint      NOT NULL,  -- incremented at every change of holder
  expires_at    timestamptz NOT NULL
);
INSERT INTO leader_lease VALUES (true, '', '', 0, '-infinity');
-- A usage report's command row holds its records (kilobytes): kept out of
-- line uncompressed, which costs the server less CPU at ingest than pglz.
ALTER TABLE commands ALTER COLUMN body SET STORAGE EXTERNAL;
)sql",
    // 2 -> 3
    R"sql(
-- The state at a position of the log (see CommandLog::WriteSnapshot), so
-- that a start replays only the commands after it. Rows are inserted and
-- the oldest deleted, never updated.
CREATE TABLE snapshots (
  position bigint PRIMARY KEY,  -- sequence of the last command included
  state    bytea  NOT NULL,     -- core::StateMachine::Save
  digest   bytea  NOT NULL      -- SHA-256 of state
);
)sql",
};
constexpr int kKnownVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kKnownVersion == kPostgresSchemaVersion);

// The advisory lock that makes replicas starting together migrate the
// schema one at a time ("cvschema").
constexpr int64_t kMigrationLockKey = 0x6376'7363'6865'6d61;

absl::Status MigrateLocked(PGconn* conn) {
  RETURN_IF_ERROR(
      Exec(conn, kSchemaVersionTable, "create the schema_version table"));
  ASSIGN_OR_RETURN(const int64_t version, SchemaVersion(conn));
  if (version > kKnownVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "postgres ", Where(conn), ": database has schema version ", version,
        ", this build knows up to ", kKnownVersion, "; upgrade the scheduler"));
  }
  for (int v = static_cast<int>(version); v < kKnownVersion; ++v) {
    const std::string what = absl::StrCat("migrate to schema version ", v + 1);
    RETURN_IF_ERROR(Exec(conn, "BEGIN", what));
    absl::Status s = Exec(conn, kMigrations[v], what);
    if (s.ok()) {
      s = Query(conn, "UPDATE schema_version SET version = $1::integer",
                {int64_t{v + 1}}, what)
              .status();
    }
    if (s.ok()) s = Exec(conn, "COMMIT", what);
    if (!s.ok()) {
      Exec(conn, "ROLLBACK", what).IgnoreError();
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> SchemaVersion(PGconn* conn) {
  ASSIGN_OR_RETURN(const Result result,
                   Query(conn, "SELECT version::bigint FROM schema_version", {},
                         "read the schema version"));
  return PQntuples(result.get()) == 1 ? IntAt(result.get(), 0, 0) : 0;
}

// Replicas started together migrate one at a time; the lock is held only
// for the migration.
absl::Status Migrate(PGconn* conn) {
  RETURN_IF_ERROR(Query(conn, "SELECT pg_advisory_lock($1)",
                        {kMigrationLockKey}, "lock the schema")
                      .status());
  absl::Status s = MigrateLocked(conn);
  absl::Status unlocked = Query(conn, "SELECT pg_advisory_unlock($1)",
                                {kMigrationLockKey}, "unlock the schema")
                              .status();
  return s.ok() ? unlocked : s;
}

// For a read-only open: the schema must exist at this build's version.
absl::Status CheckSchema(PGconn* conn) {
  ASSIGN_OR_RETURN(
      const Result exists,
      Query(conn,
            "SELECT CASE WHEN to_regclass('schema_version') IS NULL THEN "
            "0::bigint ELSE 1::bigint END",
            {}, "look for the schema"));
  if (IntAt(exists.get(), 0, 0) == 0) {
    return absl::NotFoundError(
        absl::StrCat("postgres ", Where(conn),
                     ": no scheduler schema (start the scheduler once to "
                     "create it)"));
  }
  ASSIGN_OR_RETURN(const int64_t version, SchemaVersion(conn));
  if (version != kKnownVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "postgres ", Where(conn), ": schema version ", version, ", expected ",
        kKnownVersion, " (start the scheduler once to migrate)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Head> ReadHeadOn(PGconn* conn) {
  ASSIGN_OR_RETURN(const Result result,
                   Query(conn,
                         "SELECT (SELECT COALESCE(MAX(seq), 0) FROM commands), "
                         "(SELECT COALESCE(MAX(seq), 0) FROM journal), "
                         "(SELECT hash FROM journal ORDER BY seq DESC LIMIT 1)",
                         {}, "read head"));
  Head head;
  head.command_sequence = IntAt(result.get(), 0, 0);
  head.journal_sequence = IntAt(result.get(), 0, 1);
  head.journal_hash = BytesAt(result.get(), 0, 2);
  return head;
}

absl::StatusOr<int64_t> LastUsagePosition(PGconn* conn) {
  ASSIGN_OR_RETURN(const Result result,
                   Query(conn, "SELECT COALESCE(MAX(position), 0) FROM usage",
                         {}, "read the last usage position"));
  return IntAt(result.get(), 0, 0);
}

absl::StatusOr<LeaseRow> ReadLease(PGconn* conn, absl::string_view lock) {
  ASSIGN_OR_RETURN(
      const Result result,
      Query(conn,
            absl::StrCat("SELECT holder, address, fencing_token, CASE WHEN "
                         "expires_at <= clock_timestamp() THEN 1::bigint ELSE "
                         "0::bigint END FROM leader_lease ",
                         lock)
                .c_str(),
            {}, "read the lease"));
  if (PQntuples(result.get()) != 1) {
    return absl::DataLossError(absl::StrCat("postgres ", Where(conn),
                                            ": table leader_lease has no row"));
  }
  LeaseRow row;
  row.holder = BytesAt(result.get(), 0, 0);
  row.address = BytesAt(result.get(), 0, 1);
  row.fencing_token = IntAt(result.get(), 0, 2);
  row.expired = IntAt(result.get(), 0, 3) == 1;
  return row;
}

}  // namespace computevoucher::store::internal
