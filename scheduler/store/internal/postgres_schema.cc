#include "scheduler/store/internal/postgres_schema.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "scheduler/store/internal/store_util.h"
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
    // 3 -> 4: the table `batches` (BatchesTableSql) replaces commands,
    // journal and usage, whose rows ConvertToBatches moves into it.
    nullptr,
    // 4 -> 5: retired allocations (RetiredTableSql).
    nullptr,
    // 5 -> 6: archived history (ArchiveTablesSql).
    nullptr,
    // 6 -> 7: retired vouchers (RetiredVouchersTableSql).
    nullptr,
    // 7 -> 8: the audit log (AuditTableSql).
    nullptr,
};
constexpr int kKnownVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kKnownVersion == kPostgresSchemaVersion);

// The advisory lock that makes replicas starting together migrate the
// schema one at a time ("cvschema").
constexpr int64_t kMigrationLockKey = 0x6376'7363'6865'6d61;

// Adds each of `select`'s rows to `rows` with `add`, reading them a chunk
// at a time (its $1 the last key read, its first column the key).
absl::Status ConvertRows(
    PGconn* conn, const char* select,
    const std::function<absl::Status(const PGresult*, int, Batch&)>& add,
    ConvertedRows& rows) {
  int64_t after = 0;
  while (true) {
    ASSIGN_OR_RETURN(const Result result,
                     Query(conn, select, {after}, "convert to batches"));
    const int n = PQntuples(result.get());
    if (n == 0) return absl::OkStatus();
    for (int i = 0; i < n; ++i) {
      RETURN_IF_ERROR(add(result.get(), i, rows.batch()));
      RETURN_IF_ERROR(rows.Added());
    }
    after = IntAt(result.get(), n - 1, 0);
  }
}

// 3 -> 4, inside the migration's transaction: every command, entry and
// usage record of the separate tables moves into rows of `batches` holding
// one kind each, in order; then the tables go.
absl::Status ConvertToBatches(PGconn* conn) {
  RETURN_IF_ERROR(Exec(conn, BatchesTableSql("bigint", "bytea").c_str(),
                       "create the batches table"));
  // Bodies are deflated already: kept out of line as they are, without
  // pglz's second try.
  RETURN_IF_ERROR(Exec(conn,
                       "ALTER TABLE batches ALTER COLUMN body SET STORAGE "
                       "EXTERNAL",
                       "create the batches table"));
  const std::string limit = absl::StrCat(" LIMIT ", kRowsConvertedAtOnce);
  ConvertedRows rows(
      [conn](const BatchRow& row) { return InsertRowOn(conn, row); });
  RETURN_IF_ERROR(ConvertRows(
      conn,
      absl::StrCat("SELECT seq, body FROM commands WHERE seq > $1 ORDER BY seq",
                   limit)
          .c_str(),
      [](const PGresult* result, int i, Batch& batch) {
        if (!batch.commands.emplace_back().ParseFromString(
                BytesAt(result, i, 1))) {
          return absl::DataLossError(absl::StrCat(
              "commands: row ", IntAt(result, i, 0), " does not parse"));
        }
        return absl::OkStatus();
      },
      rows));
  RETURN_IF_ERROR(ConvertRows(
      conn,
      absl::StrCat("SELECT seq, hash, body FROM journal WHERE seq > $1 "
                   "ORDER BY seq",
                   limit)
          .c_str(),
      [](const PGresult* result, int i, Batch& batch) {
        pb::JournalEntry& e = batch.entries.emplace_back();
        if (!e.ParseFromString(BytesAt(result, i, 2))) {
          return absl::DataLossError(absl::StrCat(
              "journal: entry ", IntAt(result, i, 0), " does not parse"));
        }
        e.set_hash(BytesAt(result, i, 1));
        return absl::OkStatus();
      },
      rows));
  RETURN_IF_ERROR(ConvertRows(
      conn,
      absl::StrCat("SELECT position, body FROM usage WHERE position > $1 "
                   "ORDER BY position",
                   limit)
          .c_str(),
      [](const PGresult* result, int i, Batch& batch) {
        if (!batch.usage.emplace_back().ParseFromString(
                BytesAt(result, i, 1))) {
          return absl::DataLossError(absl::StrCat("usage: row at position ",
                                                  IntAt(result, i, 0),
                                                  " does not parse"));
        }
        return absl::OkStatus();
      },
      rows));
  RETURN_IF_ERROR(rows.Flush());
  return Exec(conn, "DROP TABLE commands, journal, usage",
              "drop the tables converted to batches");
}

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
    absl::Status s =
        kMigrations[v] != nullptr ? Exec(conn, kMigrations[v], what)
        : v == 3                  ? ConvertToBatches(conn)
        : v == 4 ? Exec(conn, RetiredTableSql("text", "bytea").c_str(), what)
        : v == 5 ? Exec(conn, ArchiveTablesSql("text", "bytea").c_str(), what)
        : v == 6
            ? Exec(conn, RetiredVouchersTableSql("text", "bytea").c_str(), what)
            : Exec(conn, AuditTableSql("text", "bytea").c_str(), what);
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

absl::StatusOr<RowEnds> ReadLastRowOn(PGconn* conn) {
  ASSIGN_OR_RETURN(const Result result,
                   Query(conn,
                         "SELECT id, command_end, entry_end, usage_end, "
                         "accepted_end_ns, entry_hash FROM batches ORDER BY "
                         "id DESC LIMIT 1",
                         {}, "read the last batch"));
  RowEnds ends;
  if (PQntuples(result.get()) == 1) {
    ends.id = IntAt(result.get(), 0, 0);
    ends.command = IntAt(result.get(), 0, 1);
    ends.entry = IntAt(result.get(), 0, 2);
    ends.usage = IntAt(result.get(), 0, 3);
    ends.accepted_ns = IntAt(result.get(), 0, 4);
    ends.entry_hash = BytesAt(result.get(), 0, 5);
  }
  return ends;
}

BatchRow RowAt(const PGresult* result, int i) {
  BatchRow row;
  row.end.id = IntAt(result, i, 0);
  row.end.command = IntAt(result, i, 1);
  row.end.entry = IntAt(result, i, 2);
  row.end.usage = IntAt(result, i, 3);
  row.end.accepted_ns = IntAt(result, i, 4);
  row.end.entry_hash = BytesAt(result, i, 5);
  row.body = BytesAt(result, i, 6);
  row.start.id = row.end.id - 1;
  if (!PQgetisnull(result, i, 7)) {
    row.start.command = IntAt(result, i, 7);
    row.start.entry = IntAt(result, i, 8);
    row.start.usage = IntAt(result, i, 9);
    row.start.accepted_ns = IntAt(result, i, 10);
    row.start.entry_hash = BytesAt(result, i, 11);
  }
  return row;
}

absl::Status InsertRowOn(PGconn* conn, const BatchRow& row) {
  CopyData data(7);
  data.StartRow();
  data.Int(row.end.id);
  data.Int(row.end.command);
  data.Int(row.end.entry);
  data.Int(row.end.usage);
  data.Int(row.end.accepted_ns);
  data.Bytes(row.end.entry_hash);
  data.Bytes(row.body);
  return CopyIn(conn,
                "COPY batches (id, command_end, entry_end, usage_end, "
                "accepted_end_ns, entry_hash, body) FROM STDIN (FORMAT binary)",
                data, "insert batch");
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
