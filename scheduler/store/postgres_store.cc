#include "scheduler/store/postgres_store.h"

#include <endian.h>
#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "scheduler/store/internal/store_util.h"

namespace computevoucher::store {
namespace {

using internal::ClampNanos;
using internal::NanosOf;

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
};
constexpr int kKnownVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kKnownVersion == kPostgresSchemaVersion);

// The advisory lock that makes replicas starting together migrate the
// schema one at a time ("cvschema").
constexpr int64_t kMigrationLockKey = 0x6376'7363'6865'6d61;
// Usage rows fetched per query while scanning.
constexpr int kUsageChunk = 1000;

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;
struct ConnectionDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Connection = std::unique_ptr<PGconn, ConnectionDeleter>;

// "user@host:port/dbname" of a connection.
std::string Where(PGconn* conn) {
  return absl::StrCat(PQuser(conn), "@", PQhost(conn), ":", PQport(conn), "/",
                      PQdb(conn));
}

// The error of `result` (or of the connection when null) as a status whose
// code says how the caller should react.
absl::Status PgError(PGconn* conn, const PGresult* result,
                     absl::string_view what) {
  std::string message = result != nullptr ? PQresultErrorMessage(result) : "";
  if (message.empty()) message = PQerrorMessage(conn);
  const std::string text =
      absl::StrCat("postgres ", Where(conn), ": ", what, ": ",
                   absl::StripTrailingAsciiWhitespace(message));
  if (PQstatus(conn) != CONNECTION_OK) return absl::UnavailableError(text);
  const char* state = result != nullptr
                          ? PQresultErrorField(result, PG_DIAG_SQLSTATE)
                          : nullptr;
  const absl::string_view sqlstate = state != nullptr ? state : "";
  // SQLSTATE classes: 23 integrity constraint violation, 08 connection
  // exception, 57 operator intervention (shutdown), 40 transaction rollback
  // (serialization failure, deadlock), 53 insufficient resources.
  if (absl::StartsWith(sqlstate, "23")) {
    return absl::FailedPreconditionError(text);
  }
  if (absl::StartsWith(sqlstate, "08") || absl::StartsWith(sqlstate, "57") ||
      absl::StartsWith(sqlstate, "40")) {
    return absl::UnavailableError(text);
  }
  if (absl::StartsWith(sqlstate, "53")) {
    return absl::ResourceExhaustedError(text);
  }
  return absl::InternalError(text);
}

// Runs `sql`, which may hold several statements but no parameters.
absl::Status Exec(PGconn* conn, const char* sql, absl::string_view what) {
  Result result(PQexec(conn, sql));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    return absl::OkStatus();
  }
  return PgError(conn, result.get(), what);
}

// A statement parameter: a bigint or a text.
using Param = std::variant<int64_t, std::string>;

// Runs one statement with parameters $1, $2, ..., sent in binary; the
// result comes back in binary too. Values never become part of the SQL
// text.
absl::StatusOr<Result> Query(PGconn* conn, const char* sql,
                             const std::vector<Param>& params,
                             absl::string_view what) {
  constexpr Oid kInt8Oid = 20;
  constexpr Oid kTextOid = 25;
  std::vector<uint64_t> big_endian(params.size());
  std::vector<Oid> types(params.size());
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size());
  std::vector<int> formats(params.size(), 1);
  for (size_t i = 0; i < params.size(); ++i) {
    if (const auto* text = std::get_if<std::string>(&params[i])) {
      types[i] = kTextOid;
      values[i] = text->data();
      lengths[i] = static_cast<int>(text->size());
      continue;
    }
    types[i] = kInt8Oid;
    big_endian[i] =
        htobe64(static_cast<uint64_t>(std::get<int64_t>(params[i])));
    values[i] = reinterpret_cast<const char*>(&big_endian[i]);
    lengths[i] = sizeof(uint64_t);
  }
  Result result(PQexecParams(conn, sql, static_cast<int>(params.size()),
                             types.data(), values.data(), lengths.data(),
                             formats.data(), /*resultFormat=*/1));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return PgError(conn, result.get(), what);
  }
  return result;
}

// A binary field of a binary result ("" when NULL).
std::string BytesAt(const PGresult* result, int row, int column) {
  return std::string(PQgetvalue(result, row, column),
                     PQgetlength(result, row, column));
}

// A bigint field of a binary result (every integer the store selects is a
// bigint; 0 when NULL).
int64_t IntAt(const PGresult* result, int row, int column) {
  uint64_t big_endian = 0;
  if (PQgetlength(result, row, column) == sizeof(big_endian)) {
    std::memcpy(&big_endian, PQgetvalue(result, row, column),
                sizeof(big_endian));
  }
  return static_cast<int64_t>(be64toh(big_endian));
}

// Rows in PostgreSQL's binary COPY format, for COPY ... FROM STDIN: a batch
// goes to the server as one stream per table rather than a statement per
// row.
class CopyData {
 public:
  explicit CopyData(int16_t fields) : fields_(fields) {
    data_.append("PGCOPY\n\377\r\n", 11);  // the signature ends in '\0'
    AppendBigEndian(uint32_t{0});          // flags
    AppendBigEndian(uint32_t{0});          // header extension length
  }
  void StartRow() { AppendBigEndian(static_cast<uint16_t>(fields_)); }
  void Int(int64_t v) {
    AppendBigEndian(uint32_t{sizeof(v)});
    AppendBigEndian(static_cast<uint64_t>(v));
  }
  void Bytes(absl::string_view s) {
    AppendBigEndian(static_cast<uint32_t>(s.size()));
    data_.append(s.data(), s.size());
  }
  const std::string& Finish() {
    AppendBigEndian(uint16_t{0xffff});  // trailer
    return data_;
  }

 private:
  void AppendBigEndian(uint16_t v) { AppendRaw(htobe16(v)); }
  void AppendBigEndian(uint32_t v) { AppendRaw(htobe32(v)); }
  void AppendBigEndian(uint64_t v) { AppendRaw(htobe64(v)); }
  template <typename T>
  void AppendRaw(T v) {
    data_.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }

  const int16_t fields_;
  std::string data_;
};

absl::Status CopyIn(PGconn* conn, const char* sql, CopyData& rows,
                    absl::string_view what) {
  Result start(PQexec(conn, sql));
  if (PQresultStatus(start.get()) != PGRES_COPY_IN) {
    return PgError(conn, start.get(), what);
  }
  const std::string& data = rows.Finish();
  if (PQputCopyData(conn, data.data(), static_cast<int>(data.size())) != 1 ||
      PQputCopyEnd(conn, nullptr) != 1) {
    return PgError(conn, nullptr, what);
  }
  Result end(PQgetResult(conn));
  absl::Status status = PQresultStatus(end.get()) == PGRES_COMMAND_OK
                            ? absl::OkStatus()
                            : PgError(conn, end.get(), what);
  while (PGresult* rest = PQgetResult(conn)) PQclear(rest);
  return status;
}

absl::StatusOr<Connection> Connect(const std::string& url) {
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &parse_error);
  if (options == nullptr) {
    const std::string message =
        parse_error != nullptr ? parse_error : "out of memory";
    PQfreemem(parse_error);
    return absl::InvalidArgumentError(
        absl::StrCat("store: not a PostgreSQL URL: ",
                     absl::StripTrailingAsciiWhitespace(message)));
  }
  PQconninfoFree(options);
  // Defaults the URL may override (later keywords win, and the URL is
  // expanded where it stands): give up connecting after 5 s, and notice a
  // server that vanished without closing the connection within ~11 s.
  const char* const keywords[] = {"connect_timeout",
                                  "keepalives",
                                  "keepalives_idle",
                                  "keepalives_interval",
                                  "keepalives_count",
                                  "dbname",
                                  nullptr};
  const char* const values[] = {"5", "1", "5", "2", "3", url.c_str(), nullptr};
  Connection conn(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
  if (conn == nullptr)
    return absl::ResourceExhaustedError("postgres: no memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat(
        "postgres ", DescribePostgresUrl(url), ": cannot connect: ",
        absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn.get()))));
  }
  // Notices (such as "relation already exists, skipping") are not errors.
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  return conn;
}

// Sets up the session appends run on. A commit is durable when it returns,
// whatever the server's default. A transaction cannot outlast the lease:
// the server ends it (and the session) when a statement runs, or the
// session idles inside a transaction, for longer than `timeout` (a replica
// paused mid-append must not hold up the one taking over).
absl::Status SetUpWriterSession(PGconn* conn, absl::Duration timeout) {
  const int64_t ms =
      std::max<int64_t>(1000, absl::ToInt64Milliseconds(timeout));
  return Exec(
      conn,
      absl::StrCat("SET synchronous_commit = on; "
                   "SET client_min_messages = warning; "
                   "SET statement_timeout = ",
                   ms, "; SET idle_in_transaction_session_timeout = ", ms)
          .c_str(),
      "set up the session");
}

absl::StatusOr<int64_t> SchemaVersion(PGconn* conn) {
  ASSIGN_OR_RETURN(const Result result,
                   Query(conn, "SELECT version::bigint FROM schema_version", {},
                         "read the schema version"));
  return PQntuples(result.get()) == 1 ? IntAt(result.get(), 0, 0) : 0;
}

absl::Status MigrateLocked(PGconn* conn);

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

// After a broken connection: connects again; OK when the connection is up.
absl::Status Reconnect(PGconn* conn) {
  if (PQstatus(conn) == CONNECTION_OK) return absl::OkStatus();
  PQreset(conn);
  return PQstatus(conn) == CONNECTION_OK ? absl::OkStatus()
                                         : PgError(conn, nullptr, "reconnect");
}

// The lease as a campaign or an append found it.
struct LeaseRow {
  std::string holder;
  std::string address;
  int64_t fencing_token = 0;
  bool expired = true;
};

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

class PostgresStore final : public Store {
 public:
  PostgresStore(Connection write, Connection lease, Connection read)
      : lease_(std::move(lease)),
        write_(std::move(write)),
        read_(std::move(read)) {}

  ~PostgresStore() override {
    if (lease_ != nullptr) Resign().IgnoreError();
  }

  absl::Status Init() {
    absl::MutexLock lock(&write_mu_);
    if (write_ == nullptr) return absl::OkStatus();
    RETURN_IF_ERROR(SetUpWriterSession(write_.get(), session_timeout_));
    return ReadWriterHeadLocked();
  }

  absl::Status Append(const Batch& batch) override {
    absl::MutexLock lock(&write_mu_);
    if (write_ == nullptr) {
      return absl::FailedPreconditionError("store opened read-only");
    }
    if (token_ == 0) {
      return absl::FailedPreconditionError(
          "not the leader: this scheduler replica does not hold the lease");
    }
    RETURN_IF_ERROR(ReconnectWriterLocked());
    RETURN_IF_ERROR(internal::CheckContinues(head_, batch));
    PGconn* conn = write_.get();
    RETURN_IF_ERROR(Exec(conn, "BEGIN", "append"));
    absl::Status status = CheckLeaseLocked();
    if (status.ok()) status = AppendLocked(batch);
    if (status.ok()) status = Exec(conn, "COMMIT", "commit");
    if (!status.ok()) {
      if (PQstatus(conn) == CONNECTION_OK) {
        Exec(conn, "ROLLBACK", "rollback").IgnoreError();
      }
      return status;
    }
    head_.command_sequence += static_cast<int64_t>(batch.commands.size());
    head_.journal_sequence += static_cast<int64_t>(batch.entries.size());
    if (!batch.entries.empty())
      head_.journal_hash = batch.entries.back().hash();
    usage_position_ += static_cast<int64_t>(batch.usage.size());
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                        int limit) override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    ASSIGN_OR_RETURN(
        const Result result,
        Query(read_.get(),
              "SELECT body FROM commands WHERE seq > $1 ORDER BY seq LIMIT $2",
              {after, limit}, "read commands"));
    std::vector<pb::Command> out(PQntuples(result.get()));
    for (size_t i = 0; i < out.size(); ++i) {
      if (!out[i].ParseFromString(
              BytesAt(result.get(), static_cast<int>(i), 0))) {
        return absl::DataLossError(
            absl::StrCat("commands: row after ", after, " does not parse"));
      }
    }
    return out;
  }

  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    absl::MutexLock lock(&read_mu_);
    PGconn* conn = read_.get();
    RETURN_IF_ERROR(Reconnect(conn));
    std::string prev_hash(32, '\0');
    if (after > 0) {
      ASSIGN_OR_RETURN(const Result previous,
                       Query(conn, "SELECT hash FROM journal WHERE seq = $1",
                             {after}, "read journal"));
      if (PQntuples(previous.get()) == 1) {
        prev_hash = BytesAt(previous.get(), 0, 0);
      }
    }
    ASSIGN_OR_RETURN(
        const Result result,
        Query(conn,
              "SELECT seq, body FROM journal WHERE seq > $1 ORDER BY seq "
              "LIMIT $2",
              {after, limit}, "read journal"));
    std::vector<pb::JournalEntry> out(PQntuples(result.get()));
    for (size_t i = 0; i < out.size(); ++i) {
      pb::JournalEntry& e = out[i];
      if (!e.ParseFromString(BytesAt(result.get(), static_cast<int>(i), 1))) {
        return absl::DataLossError(absl::StrCat(
            "journal: entry ", IntAt(result.get(), static_cast<int>(i), 0),
            " does not parse"));
      }
      e.set_prev_hash(prev_hash);
      prev_hash = e.hash();
    }
    return out;
  }

  absl::StatusOr<Head> ReadHead() override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    return ReadHeadOn(read_.get());
  }

  absl::StatusOr<std::vector<UsageRow>> ReadUsage(
      const UsageQuery& q) override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    std::vector<UsageRow> out;
    RETURN_IF_ERROR(ScanUsageLocked(q, [&](UsageRow row) {
      out.push_back(std::move(row));
      return out.size() < static_cast<size_t>(q.limit);
    }));
    return out;
  }

  absl::StatusOr<Head> ScanUsage(
      const UsageQuery& q,
      const std::function<void(const pb::ChargedUsage&)>& fn) override {
    absl::MutexLock lock(&read_mu_);
    PGconn* conn = read_.get();
    RETURN_IF_ERROR(Reconnect(conn));
    // One snapshot for every chunk and the head.
    RETURN_IF_ERROR(Exec(
        conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "scan usage"));
    absl::Status s = ScanUsageLocked(q, [&fn](const UsageRow& row) {
      fn(row.usage);
      return true;
    });
    absl::StatusOr<Head> head = s.ok() ? ReadHeadOn(conn) : s;
    if (PQstatus(conn) == CONNECTION_OK) {
      Exec(conn, "COMMIT", "scan usage").IgnoreError();
    }
    return head;
  }

  absl::StatusOr<Leadership> Campaign(const Candidate& candidate,
                                      absl::Duration lease) override {
    absl::MutexLock lock(&lease_mu_);
    if (lease_ == nullptr) {
      return absl::FailedPreconditionError("store opened read-only");
    }
    PGconn* conn = lease_.get();
    RETURN_IF_ERROR(Reconnect(conn));
    int64_t held;
    {
      absl::MutexLock write_lock(&write_mu_);
      held = token_;
    }
    // Waiting for a row lock is bounded: a former leader stuck inside an
    // append must not stall this replica's loop (the server ends that
    // transaction after the lease; see SetUpWriterSession).
    const int64_t wait_ms =
        std::clamp<int64_t>(absl::ToInt64Milliseconds(lease / 2), 100, 5000);
    // Nor may this replica, paused inside a campaign, stall the others.
    const std::string begin =
        absl::StrCat("SET idle_in_transaction_session_timeout = ", wait_ms,
                     "; BEGIN; SET LOCAL lock_timeout = ", wait_ms,
                     "; SET LOCAL statement_timeout = ", wait_ms);
    RETURN_IF_ERROR(Exec(conn, begin.c_str(), "campaign"));
    // Renew our own lease, or take an expired one with the next token.
    absl::StatusOr<Result> taken = Query(
        conn,
        "UPDATE leader_lease SET fencing_token = CASE WHEN holder = $1 AND "
        "fencing_token = $3 THEN fencing_token ELSE fencing_token + 1 END, "
        "holder = $1, address = $2, expires_at = clock_timestamp() + "
        "make_interval(secs => $4::float8 / 1000000) WHERE (holder = $1 AND "
        "fencing_token = $3) OR expires_at <= clock_timestamp() "
        "RETURNING fencing_token",
        {candidate.id, candidate.address, held,
         absl::ToInt64Microseconds(lease)},
        "campaign");
    const bool won = taken.ok() && PQntuples(taken->get()) == 1;
    // Who holds it, when not us.
    absl::StatusOr<LeaseRow> row = LeaseRow();
    if (!taken.ok()) {
      row = taken.status();
    } else if (!won) {
      row = ReadLease(conn, "");
    }
    absl::Status status = row.status();
    if (status.ok()) status = Exec(conn, "COMMIT", "campaign");
    if (!status.ok()) {
      if (PQstatus(conn) == CONNECTION_OK) {
        Exec(conn, "ROLLBACK", "campaign").IgnoreError();
      }
      // A lock timeout means an append holds the row: this round decides
      // nothing, whoever leads.
      if (IsLockTimeout(status)) {
        return absl::UnavailableError(
            absl::StrCat("campaign: the lease is busy: ", status.message()));
      }
      return status;
    }
    Leadership out;
    absl::MutexLock write_lock(&write_mu_);
    if (!won) {
      out.fencing_token = row->fencing_token;
      if (!row->expired) {
        out.leader_id = row->holder;
        out.leader_address = row->address;
      }
      token_ = 0;
      return out;
    }
    out.leading = true;
    out.fencing_token = IntAt(taken->get(), 0, 0);
    out.leader_id = candidate.id;
    out.leader_address = candidate.address;
    out.valid_for = lease;
    if (out.fencing_token != token_) {
      // A new term: the former leader may have moved the head, and can no
      // longer move it.
      session_timeout_ = lease;
      token_ = 0;
      RETURN_IF_ERROR(Reconnect(write_.get()));
      RETURN_IF_ERROR(SetUpWriterSession(write_.get(), session_timeout_));
      RETURN_IF_ERROR(ReadWriterHeadLocked());
      token_ = out.fencing_token;
    }
    return out;
  }

  absl::Status Resign() override {
    absl::MutexLock lock(&lease_mu_);
    if (lease_ == nullptr) return absl::OkStatus();
    int64_t held;
    {
      absl::MutexLock write_lock(&write_mu_);
      held = std::exchange(token_, 0);
    }
    if (held == 0) return absl::OkStatus();
    RETURN_IF_ERROR(Reconnect(lease_.get()));
    return Query(lease_.get(),
                 "UPDATE leader_lease SET expires_at = '-infinity' WHERE "
                 "fencing_token = $1",
                 {held}, "resign")
        .status();
  }

 private:
  static bool IsLockTimeout(const absl::Status& status) {
    // SQLSTATE 55P03 lock_not_available and 57014 query_canceled (the
    // statement timeout) are both reported with their text.
    return absl::StrContains(status.message(), "lock timeout") ||
           absl::StrContains(status.message(), "statement timeout");
  }

  // Inside an append's transaction: the lease is still ours. The shared row
  // lock keeps it ours until the commit, since a takeover's UPDATE waits
  // for it; a takeover that came first has changed the token.
  absl::Status CheckLeaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    ASSIGN_OR_RETURN(const LeaseRow row, ReadLease(write_.get(), "FOR SHARE"));
    if (row.fencing_token == token_) return absl::OkStatus();
    const int64_t mine = std::exchange(token_, 0);
    return absl::FailedPreconditionError(
        absl::StrCat("fenced: this scheduler replica's lease (token ", mine,
                     ") was taken over by ", row.holder, " at ", row.address,
                     " (token ", row.fencing_token, "); it writes no more"));
  }

  // Calls `fn` for each matching row in position order while it returns
  // true, reading kUsageChunk rows at a time.
  absl::Status ScanUsageLocked(const UsageQuery& q,
                               const std::function<bool(UsageRow)>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) {
    // A record ends before it is accepted, give or take the clock skew the
    // caller tolerates, so none accepted earlier can end in the period.
    const int64_t accepted_from =
        ClampNanos(q.period_start - q.end_after_accept);
    int64_t after = q.after;
    while (true) {
      ASSIGN_OR_RETURN(
          const Result result,
          Query(read_.get(),
                "SELECT position, body FROM usage WHERE position > $1 AND "
                "accepted_ns >= $2 AND end_ns >= $3 AND end_ns < $4 "
                "ORDER BY position LIMIT $5",
                {after, accepted_from, ClampNanos(q.period_start),
                 ClampNanos(q.period_end), kUsageChunk},
                "read usage"));
      const int rows = PQntuples(result.get());
      for (int i = 0; i < rows; ++i) {
        UsageRow row;
        row.position = IntAt(result.get(), i, 0);
        after = row.position;
        if (!row.usage.ParseFromString(BytesAt(result.get(), i, 1))) {
          return absl::DataLossError(absl::StrCat(
              "usage: row at position ", row.position, " does not parse"));
        }
        if (q.allocation_ids &&
            !q.allocation_ids->contains(row.usage.record().allocation_id())) {
          continue;
        }
        if (!fn(std::move(row))) return absl::OkStatus();
      }
      if (rows < kUsageChunk) return absl::OkStatus();
    }
  }

  // The head as stored, read by the writer's own connection.
  absl::Status ReadWriterHeadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    ASSIGN_OR_RETURN(head_, ReadHeadOn(write_.get()));
    ASSIGN_OR_RETURN(usage_position_, LastUsagePosition(write_.get()));
    return absl::OkStatus();
  }

  // After a broken connection the last commit may or may not have
  // happened: read the head from the database again.
  absl::Status ReconnectWriterLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    if (PQstatus(write_.get()) == CONNECTION_OK) return absl::OkStatus();
    RETURN_IF_ERROR(Reconnect(write_.get()));
    RETURN_IF_ERROR(SetUpWriterSession(write_.get(), session_timeout_));
    return ReadWriterHeadLocked();
  }

  absl::Status AppendLocked(const Batch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    PGconn* conn = write_.get();
    if (!batch.commands.empty()) {
      CopyData rows(5);
      std::string body;
      for (const pb::Command& c : batch.commands) {
        body.clear();
        c.SerializeToString(&body);
        const auto* field = c.GetDescriptor()->FindFieldByNumber(c.body_case());
        rows.StartRow();
        rows.Int(c.sequence());
        rows.Int(NanosOf(c.time()));
        rows.Bytes(c.request_id());
        rows.Bytes(field != nullptr ? absl::string_view(field->name()) : "");
        rows.Bytes(body);
      }
      RETURN_IF_ERROR(CopyIn(conn,
                             "COPY commands (seq, time_ns, request_id, kind, "
                             "body) FROM STDIN (FORMAT binary)",
                             rows, "insert commands"));
    }
    if (!batch.entries.empty()) {
      CopyData rows(4);
      pb::JournalEntry stored;
      std::string body;
      for (const pb::JournalEntry& e : batch.entries) {
        stored = e;
        stored.clear_prev_hash();
        body.clear();
        stored.SerializeToString(&body);
        rows.StartRow();
        rows.Int(e.sequence());
        rows.Int(e.command_sequence());
        rows.Bytes(e.hash());
        rows.Bytes(body);
      }
      RETURN_IF_ERROR(CopyIn(conn,
                             "COPY journal (seq, command_seq, hash, body) "
                             "FROM STDIN (FORMAT binary)",
                             rows, "insert journal entries"));
    }
    if (!batch.usage.empty()) {
      CopyData rows(5);
      int64_t position = usage_position_;
      std::string body;
      for (const pb::ChargedUsage& u : batch.usage) {
        body.clear();
        u.SerializeToString(&body);
        rows.StartRow();
        rows.Int(++position);
        rows.Bytes(u.record().allocation_id());
        rows.Int(NanosOf(u.record().end()));
        rows.Int(NanosOf(u.accepted_at()));
        rows.Bytes(body);
      }
      RETURN_IF_ERROR(CopyIn(conn,
                             "COPY usage (position, allocation_id, end_ns, "
                             "accepted_ns, body) FROM STDIN (FORMAT binary)",
                             rows, "insert usage"));
    }
    return absl::OkStatus();
  }

  // Lock order: lease_mu_, then write_mu_.
  absl::Mutex lease_mu_;
  Connection lease_ ABSL_GUARDED_BY(lease_mu_);  // null when read-only
  absl::Mutex write_mu_;
  Connection write_ ABSL_GUARDED_BY(write_mu_);  // null when read-only
  // The fencing token of the lease this store holds; 0 when it holds none.
  int64_t token_ ABSL_GUARDED_BY(write_mu_) = 0;
  absl::Duration session_timeout_ ABSL_GUARDED_BY(write_mu_) = kDefaultLease;
  Head head_ ABSL_GUARDED_BY(write_mu_);
  int64_t usage_position_ ABSL_GUARDED_BY(write_mu_) = 0;
  absl::Mutex read_mu_;
  Connection read_ ABSL_GUARDED_BY(read_mu_);
};

}  // namespace

std::string DescribePostgresUrl(const std::string& url) {
  PQconninfoOption* options = PQconninfoParse(url.c_str(), nullptr);
  if (options == nullptr) return "(unparsable URL)";
  std::string user, host, port, dbname;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    const std::string value = o->val != nullptr ? o->val : "";
    const absl::string_view key = o->keyword;
    if (key == "user") user = value;
    if (key == "host" || (key == "hostaddr" && host.empty())) host = value;
    if (key == "port") port = value;
    if (key == "dbname") dbname = value;
  }
  PQconninfoFree(options);
  return absl::StrCat(user.empty() ? "" : user + "@",
                      host.empty() ? "localhost" : host,
                      port.empty() ? "" : ":" + port, "/", dbname);
}

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                         OpenMode mode) {
  ASSIGN_OR_RETURN(Connection read, Connect(url));
  Connection write;
  Connection lease;
  if (mode == OpenMode::kReadOnly) {
    RETURN_IF_ERROR(CheckSchema(read.get()));
  } else {
    ASSIGN_OR_RETURN(write, Connect(url));
    ASSIGN_OR_RETURN(lease, Connect(url));
    RETURN_IF_ERROR(Migrate(write.get()));
  }
  auto store = std::make_unique<PostgresStore>(
      std::move(write), std::move(lease), std::move(read));
  RETURN_IF_ERROR(store->Init());
  if (mode == OpenMode::kReadWrite) {
    ASSIGN_OR_RETURN(const Leadership won,
                     store->Campaign({NewCandidateId(), ""}, kDefaultLease));
    if (!won.leading) {
      return absl::FailedPreconditionError(absl::StrCat(
          "postgres ", DescribePostgresUrl(url),
          ": database is in use by another scheduler (", won.leader_id,
          won.leader_address.empty() ? "" : " at " + won.leader_address,
          " holds the lease)"));
    }
  }
  return store;
}

}  // namespace computevoucher::store
