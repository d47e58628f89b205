// Thin helpers over libpq for the PostgreSQL store: owned results and
// connections, statements with binary parameters, binary COPY, and errors
// as statuses whose code says how the caller should react. Not for use
// outside scheduler/store/.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_LIBPQ_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_LIBPQ_H_

#include <endian.h>
#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace computevoucher::store::internal {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;
struct ConnectionDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Connection = std::unique_ptr<PGconn, ConnectionDeleter>;

// "user@host:port/dbname" of a connection.
std::string Where(PGconn* conn);

// The error of `result` (or of the connection when null) as a status whose
// code says how the caller should react: Unavailable for a broken
// connection, a shutdown or a rolled-back transaction, FailedPrecondition
// for a broken constraint, ResourceExhausted, Internal otherwise.
absl::Status PgError(PGconn* conn, const PGresult* result,
                     absl::string_view what);

// Runs `sql`, which may hold several statements but no parameters.
absl::Status Exec(PGconn* conn, const char* sql, absl::string_view what);

// A bytea statement parameter (a hash).
struct Bytea {
  std::string bytes;
};

// A statement parameter: a bigint, a text or a bytea.
using Param = std::variant<int64_t, std::string, Bytea>;

// Runs one statement with parameters $1, $2, ..., sent in binary; the
// result comes back in binary too. Values never become part of the SQL
// text.
absl::StatusOr<Result> Query(PGconn* conn, const char* sql,
                             const std::vector<Param>& params,
                             absl::string_view what);

// A binary field of a binary result ("" when NULL).
std::string BytesAt(const PGresult* result, int row, int column);

// A bigint field of a binary result (every integer the store selects is a
// bigint; 0 when NULL).
int64_t IntAt(const PGresult* result, int row, int column);

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

// Sends `rows` with `sql`, a COPY ... FROM STDIN (BINARY) statement.
absl::Status CopyIn(PGconn* conn, const char* sql, CopyData& rows,
                    absl::string_view what);

// Connects to `url` with the store's defaults: give up after 5 s, notice a
// vanished server within ~11 s; the URL's parameters override them.
absl::StatusOr<Connection> Connect(const std::string& url);

// Sets up the session appends run on: durable commits, and no transaction
// outlasting `timeout` (the lease).
absl::Status SetUpWriterSession(PGconn* conn, absl::Duration timeout);

// After a broken connection: connects again; OK when the connection is up.
absl::Status Reconnect(PGconn* conn);

}  // namespace computevoucher::store::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_INTERNAL_LIBPQ_H_
