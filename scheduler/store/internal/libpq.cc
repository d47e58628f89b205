#include "scheduler/store/internal/libpq.h"

#include <endian.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "scheduler/store/postgres_store.h"

namespace computevoucher::store::internal {

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

// Runs one statement with parameters $1, $2, ..., sent in binary; the
// result comes back in binary too. Values never become part of the SQL
// text.
absl::StatusOr<Result> Query(PGconn* conn, const char* sql,
                             const std::vector<Param>& params,
                             absl::string_view what) {
  constexpr Oid kInt8Oid = 20;
  constexpr Oid kTextOid = 25;
  constexpr Oid kByteaOid = 17;
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
    if (const auto* bytea = std::get_if<Bytea>(&params[i])) {
      types[i] = kByteaOid;
      values[i] = bytea->bytes.data();
      lengths[i] = static_cast<int>(bytea->bytes.size());
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

// After a broken connection: connects again; OK when the connection is up.
absl::Status Reconnect(PGconn* conn) {
  if (PQstatus(conn) == CONNECTION_OK) return absl::OkStatus();
  PQreset(conn);
  return PQstatus(conn) == CONNECTION_OK ? absl::OkStatus()
                                         : PgError(conn, nullptr, "reconnect");
}

}  // namespace computevoucher::store::internal
