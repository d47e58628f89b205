#include "scheduler/store/postgres_store.h"

#include <endian.h>
#include <libpq-fe.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/internal/store_util.h"

namespace cv::store {
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
// columns that queries select by. Every table is append-only.
//
// Replicas (a later step) add, as the next migration, a one-row table
//   leader_lease (only_row boolean PRIMARY KEY, holder text NOT NULL,
//                 fencing_token bigint NOT NULL, expires_at timestamptz)
// A replica takes the lease with an UPDATE that increments fencing_token
// where the lease expired (by the server's clock, now()) or is its own, and
// keeps the token it got. Append then starts its transaction with
//   SELECT 1 FROM leader_lease WHERE fencing_token = $1 FOR SHARE
// and rolls back with FailedPrecondition when no row comes back: a former
// leader whose token was superseded can never commit, and the row lock makes
// a takeover wait for an append in flight. That lease replaces the session
// advisory lock that makes the one writer today (see TakeWriterLock).
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
};
constexpr int kKnownVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kKnownVersion == kPostgresSchemaVersion);

// The session advisory lock the writing scheduler holds ("cvwriter").
constexpr int64_t kWriterLockKey = 0x6376'7772'6974'6572;
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

// Runs one statement with bigint parameters $1, $2, ..., sent in binary;
// the result comes back in binary too. Values never become part of the SQL
// text.
absl::StatusOr<Result> Query(PGconn* conn, const char* sql,
                             const std::vector<int64_t>& params,
                             absl::string_view what) {
  constexpr Oid kInt8Oid = 20;
  std::vector<uint64_t> big_endian(params.size());
  std::vector<Oid> types(params.size(), kInt8Oid);
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size(), sizeof(uint64_t));
  std::vector<int> formats(params.size(), 1);
  for (size_t i = 0; i < params.size(); ++i) {
    big_endian[i] = htobe64(static_cast<uint64_t>(params[i]));
    values[i] = reinterpret_cast<const char*>(&big_endian[i]);
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
  Connection conn(PQconnectdb(url.c_str()));
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

// Makes this session the database's one writer. The lock is the session's:
// it goes when the connection does.
absl::Status TakeWriterLock(PGconn* conn) {
  ASSIGN_OR_RETURN(
      const Result result,
      Query(conn,
            "SELECT CASE WHEN pg_try_advisory_lock($1) THEN 1::bigint "
            "ELSE 0::bigint END",
            {kWriterLockKey}, "take the writer lock"));
  if (IntAt(result.get(), 0, 0) != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("postgres ", Where(conn),
                     ": database is in use by another scheduler (it holds "
                     "the writer lock)"));
  }
  // A commit is durable when it returns, whatever the server's default.
  return Exec(conn,
              "SET synchronous_commit = on; SET client_min_messages = warning",
              "set up the session");
}

absl::StatusOr<int64_t> SchemaVersion(PGconn* conn) {
  ASSIGN_OR_RETURN(const Result result,
                   Query(conn, "SELECT version::bigint FROM schema_version", {},
                         "read the schema version"));
  return PQntuples(result.get()) == 1 ? IntAt(result.get(), 0, 0) : 0;
}

absl::Status Migrate(PGconn* conn) {
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
                {v + 1}, what)
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

class PostgresStore final : public Store {
 public:
  PostgresStore(Connection write, Connection read)
      : write_(std::move(write)), read_(std::move(read)) {}

  absl::Status Init() {
    absl::MutexLock lock(&write_mu_);
    if (write_ == nullptr) return absl::OkStatus();
    return ReadWriterHeadLocked();
  }

  absl::Status Append(const Batch& batch) override {
    absl::MutexLock lock(&write_mu_);
    if (write_ == nullptr) {
      return absl::FailedPreconditionError("store opened read-only");
    }
    RETURN_IF_ERROR(ReconnectWriterLocked());
    RETURN_IF_ERROR(internal::CheckContinues(head_, batch));
    PGconn* conn = write_.get();
    RETURN_IF_ERROR(Exec(conn, "BEGIN", "append"));
    absl::Status status = AppendLocked(batch);
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

 private:
  // Calls `fn` for each matching row in position order while it returns
  // true, reading kUsageChunk rows at a time.
  absl::Status ScanUsageLocked(const UsageQuery& q,
                               const std::function<bool(UsageRow)>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) {
    // A record ends before it is accepted, give or take the clock skew the
    // scheduler tolerates, so none accepted earlier can end in the period.
    const int64_t accepted_from =
        ClampNanos(q.period_start - core::kUsageClockSkew);
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

  // After a broken connection the session lock is gone, another scheduler
  // may have taken it, and the last commit may or may not have happened:
  // take the lock again and read the head from the database.
  absl::Status ReconnectWriterLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    if (PQstatus(write_.get()) == CONNECTION_OK) return absl::OkStatus();
    RETURN_IF_ERROR(Reconnect(write_.get()));
    RETURN_IF_ERROR(TakeWriterLock(write_.get()));
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

  absl::Mutex write_mu_;
  Connection write_ ABSL_GUARDED_BY(write_mu_);  // null when read-only
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
  if (mode == OpenMode::kReadWrite) {
    ASSIGN_OR_RETURN(write, Connect(url));
    RETURN_IF_ERROR(TakeWriterLock(write.get()));
    RETURN_IF_ERROR(Migrate(write.get()));
  } else {
    RETURN_IF_ERROR(CheckSchema(read.get()));
  }
  auto store =
      std::make_unique<PostgresStore>(std::move(write), std::move(read));
  RETURN_IF_ERROR(store->Init());
  return store;
}

}  // namespace cv::store
