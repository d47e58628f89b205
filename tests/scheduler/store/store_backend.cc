#include "tests/scheduler/store/store_backend.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <cstdlib>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/journal_hash.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "scheduler/store/internal/libpq.h"
#include "scheduler/store/internal/postgres_schema.h"
#include "scheduler/store/internal/sqlite_rows.h"
#include "scheduler/store/internal/sqlite_util.h"
#include "scheduler/store/internal/store_util.h"
#include "scheduler/store/postgres_store.h"
#include "scheduler/store/sqlite_store.h"

namespace computevoucher::store {

using internal::BatchRow;
using internal::RowEnds;

absl::Status StoreBackend::ForgeLog(
    const std::function<void(std::vector<Batch>&)>& edit, bool rechain) {
  ASSIGN_OR_RETURN(const std::vector<BatchRow> rows, ReadRows());
  std::vector<Batch> batches;
  for (const BatchRow& row : rows) {
    ASSIGN_OR_RETURN(batches.emplace_back(), internal::DecodeRow(row));
  }
  edit(batches);
  std::vector<BatchRow> forged;
  RowEnds ends;
  std::string prev(kSha256Bytes, '\0');
  int64_t entry = 0;
  for (Batch& batch : batches) {
    for (pb::JournalEntry& e : batch.entries) {
      e.set_sequence(++entry);
      if (!rechain) continue;
      e.set_prev_hash(prev);
      e.set_hash(EntryHash(e));
      prev = e.hash();
    }
    forged.push_back(internal::MakeRow(ends, batch));
    if (!rechain && forged.size() <= rows.size()) {
      forged.back().end.entry_hash = rows[forged.size() - 1].end.entry_hash;
    }
    ends = forged.back().end;
  }
  return WriteRows(forged);
}

namespace {

// Every row of `batches`, in id order.
std::string AllRowsSql() {
  return absl::StrCat(internal::kSelectRows, " ORDER BY b.id");
}

class SqliteBackend final : public StoreBackend {
 public:
  explicit SqliteBackend(std::string data_dir)
      : data_dir_(std::move(data_dir)) {}

  absl::StatusOr<std::unique_ptr<Store>> Open(OpenMode mode) override {
    return OpenSqliteStore(data_dir_, mode);
  }
  absl::StatusOr<int> SchemaVersion() override {
    int version = -1;
    absl::Status s = Exec("PRAGMA user_version", &version);
    if (!s.ok()) return s;
    return version;
  }
  absl::Status SetSchemaVersion(int version) override {
    return Exec(absl::StrCat("PRAGMA user_version = ", version), nullptr);
  }
  absl::Status Execute(const std::string& sql) override {
    return Exec(sql, nullptr);
  }
  int known_schema_version() const override { return kSqliteSchemaVersion; }
  std::string store_url() const override { return "sqlite"; }

 protected:
  absl::StatusOr<std::vector<BatchRow>> ReadRows() override {
    ASSIGN_OR_RETURN(Db db, OpenDb());
    internal::Statement select;
    RETURN_IF_ERROR(select.Prepare(db.get(), AllRowsSql().c_str()));
    std::vector<BatchRow> rows;
    while (sqlite3_step(select.get()) == SQLITE_ROW) {
      rows.push_back(internal::RowAt(select));
    }
    return rows;
  }
  absl::Status RewriteAsPreviousSchema(const Batch& log) override {
    ASSIGN_OR_RETURN(Db db, OpenDb());
    sqlite3* const d = db.get();
    return internal::RunInTransaction(d, [&]() -> absl::Status {
      RETURN_IF_ERROR(internal::Exec(d, R"sql(
DROP TABLE batches;
DROP TABLE retired_allocations;
DROP TABLE archive_horizon;
DROP TABLE usage_days;
DROP TABLE retired_vouchers;
DROP TABLE audit_log;
CREATE TABLE commands (seq INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL,
  request_id TEXT NOT NULL, kind TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE journal (seq INTEGER PRIMARY KEY, command_seq INTEGER NOT NULL,
  kind INTEGER NOT NULL, debit_account TEXT NOT NULL,
  credit_account TEXT NOT NULL, amount_fen INTEGER NOT NULL,
  program_id TEXT NOT NULL, voucher_id TEXT NOT NULL,
  allocation_id TEXT NOT NULL, provider_id TEXT NOT NULL,
  usage_sequence INTEGER NOT NULL, idempotency_key TEXT NOT NULL,
  time_ns INTEGER NOT NULL, memo TEXT NOT NULL, hash BLOB NOT NULL);
CREATE TABLE usage (position INTEGER PRIMARY KEY,
  allocation_id TEXT NOT NULL, sequence INTEGER NOT NULL,
  start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, gpu_ms INTEGER NOT NULL,
  mean_utilization_bp INTEGER NOT NULL, energy_mj INTEGER NOT NULL,
  cost_fen INTEGER NOT NULL, subsidy_fen INTEGER NOT NULL,
  unsubsidised_gpu_ms INTEGER NOT NULL, accepted_ns INTEGER NOT NULL,
  evidence TEXT NOT NULL DEFAULT '');
PRAGMA user_version = 4;
)sql"));
      internal::Statement command;
      RETURN_IF_ERROR(command.Prepare(
          d, "INSERT INTO commands VALUES (?, ?, ?, 'command', ?)"));
      for (const pb::Command& c : log.commands) {
        const std::string body = c.SerializeAsString();
        command.BindInt(1, c.sequence());
        command.BindInt(2, internal::NanosOf(c.time()));
        command.BindText(3, c.request_id());
        command.BindBlob(4, body);
        RETURN_IF_ERROR(command.Run("insert command"));
      }
      internal::Statement entry;
      RETURN_IF_ERROR(entry.Prepare(
          d, "INSERT INTO journal VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
      for (const pb::JournalEntry& e : log.entries) {
        entry.BindInt(1, e.sequence());
        entry.BindInt(2, e.command_sequence());
        entry.BindInt(3, e.kind());
        entry.BindText(4, e.debit_account());
        entry.BindText(5, e.credit_account());
        entry.BindInt(6, e.amount_fen());
        entry.BindText(7, e.program_id());
        entry.BindText(8, e.voucher_id());
        entry.BindText(9, e.allocation_id());
        entry.BindText(10, e.provider_id());
        entry.BindInt(11, e.usage_sequence());
        entry.BindText(12, e.idempotency_key());
        entry.BindInt(13, internal::NanosOf(e.time()));
        entry.BindText(14, e.memo());
        entry.BindBlob(15, e.hash());
        RETURN_IF_ERROR(entry.Run("insert entry"));
      }
      internal::Statement usage;
      RETURN_IF_ERROR(usage.Prepare(
          d, "INSERT INTO usage VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"));
      int64_t position = 0;
      for (const pb::ChargedUsage& u : log.usage) {
        const pb::UsageRecord& r = u.record();
        usage.BindInt(1, ++position);
        usage.BindText(2, r.allocation_id());
        usage.BindInt(3, r.sequence());
        usage.BindInt(4, internal::NanosOf(r.start()));
        usage.BindInt(5, internal::NanosOf(r.end()));
        usage.BindInt(6, r.gpu_ms());
        usage.BindInt(7, r.mean_utilization_bp());
        usage.BindInt(8, r.energy_mj());
        usage.BindInt(9, u.cost_fen());
        usage.BindInt(10, u.subsidy_fen());
        usage.BindInt(11, u.unsubsidised_gpu_ms());
        usage.BindInt(12, internal::NanosOf(u.accepted_at()));
        usage.BindText(13, r.evidence());
        RETURN_IF_ERROR(usage.Run("insert usage"));
      }
      return absl::OkStatus();
    });
  }
  absl::Status WriteRows(const std::vector<BatchRow>& rows) override {
    ASSIGN_OR_RETURN(Db db, OpenDb());
    return internal::RunInTransaction(db.get(), [&]() -> absl::Status {
      RETURN_IF_ERROR(internal::Exec(db.get(), "DELETE FROM batches"));
      internal::Statement insert;
      RETURN_IF_ERROR(insert.Prepare(db.get(), internal::kInsertRow));
      for (const BatchRow& row : rows) {
        RETURN_IF_ERROR(internal::InsertRow(insert, row));
      }
      return absl::OkStatus();
    });
  }

 private:
  struct DbCloser {
    void operator()(sqlite3* db) const { sqlite3_close(db); }
  };
  using Db = std::unique_ptr<sqlite3, DbCloser>;
  absl::StatusOr<Db> OpenDb() {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2((data_dir_ + "/scheduler.db").c_str(), &db,
                                   SQLITE_OPEN_READWRITE, nullptr);
    Db owned(db);
    if (rc != SQLITE_OK) {
      return absl::InternalError(absl::StrCat(
          data_dir_, ": ", db != nullptr ? sqlite3_errmsg(db) : "no db"));
    }
    return owned;
  }

  // Runs `sql`; stores the first column of its first row in `first`.
  absl::Status Exec(const std::string& sql, int* first) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2((data_dir_ + "/scheduler.db").c_str(), &db,
                             SQLITE_OPEN_READWRITE, nullptr);
    sqlite3_stmt* stmt = nullptr;
    if (rc == SQLITE_OK) {
      rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
    }
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(stmt);
      if (rc == SQLITE_ROW && first != nullptr) {
        *first = sqlite3_column_int(stmt, 0);
      }
      if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    absl::Status status =
        rc == SQLITE_OK ? absl::OkStatus()
                        : absl::InternalError(absl::StrCat(
                              sql, ": ", db ? sqlite3_errmsg(db) : "no db"));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return status;
  }

  const std::string data_dir_;
};

class PostgresBackend final : public StoreBackend {
 public:
  PostgresBackend(PGconn* admin, std::string database, std::string url)
      : admin_(admin), database_(std::move(database)), url_(std::move(url)) {}
  ~PostgresBackend() override {
    // The identifier is ours, [a-z0-9_] only.
    PQclear(PQexec(admin_, absl::StrCat("DROP DATABASE IF EXISTS ", database_,
                                        " WITH (FORCE)")
                               .c_str()));
    PQfinish(admin_);
  }

  absl::StatusOr<std::unique_ptr<Store>> Open(OpenMode mode) override {
    return OpenPostgresStore(url_, mode);
  }
  absl::StatusOr<int> SchemaVersion() override {
    std::string value;
    absl::Status s =
        Exec("SELECT version::text FROM schema_version", {}, &value);
    if (!s.ok()) return s;
    return std::atoi(value.c_str());
  }
  absl::Status SetSchemaVersion(int version) override {
    return Exec("UPDATE schema_version SET version = $1::integer",
                {absl::StrCat(version)}, nullptr);
  }
  absl::Status Execute(const std::string& sql) override {
    return Exec(sql.c_str(), {}, nullptr);
  }
  int known_schema_version() const override { return kPostgresSchemaVersion; }
  std::string store_url() const override { return url_; }

 protected:
  absl::StatusOr<std::vector<BatchRow>> ReadRows() override {
    ASSIGN_OR_RETURN(const internal::Connection conn, internal::Connect(url_));
    ASSIGN_OR_RETURN(const internal::Result result,
                     internal::Query(conn.get(), AllRowsSql().c_str(), {},
                                     "read"));
    const PGresult* r = result.get();
    std::vector<BatchRow> rows;
    for (int i = 0; i < PQntuples(r); ++i)
      rows.push_back(internal::RowAt(r, i));
    return rows;
  }
  absl::Status RewriteAsPreviousSchema(const Batch& log) override {
    ASSIGN_OR_RETURN(const internal::Connection conn, internal::Connect(url_));
    PGconn* const c = conn.get();
    RETURN_IF_ERROR(internal::Exec(c, R"sql(
BEGIN;
DROP TABLE batches;
DROP TABLE retired_allocations;
DROP TABLE archive_horizon;
DROP TABLE usage_days;
DROP TABLE retired_vouchers;
DROP TABLE audit_log;
CREATE TABLE commands (seq bigint PRIMARY KEY, time_ns bigint NOT NULL,
  request_id text NOT NULL, kind text NOT NULL, body bytea NOT NULL);
CREATE TABLE journal (seq bigint PRIMARY KEY, command_seq bigint NOT NULL,
  hash bytea NOT NULL, body bytea NOT NULL);
CREATE TABLE usage (position bigint PRIMARY KEY, allocation_id text NOT NULL,
  end_ns bigint NOT NULL, accepted_ns bigint NOT NULL, body bytea NOT NULL);
UPDATE schema_version SET version = 3;
)sql",
                                   "previous schema"));
    internal::CopyData commands(5);
    for (const pb::Command& command : log.commands) {
      commands.StartRow();
      commands.Int(command.sequence());
      commands.Int(internal::NanosOf(command.time()));
      commands.Bytes(command.request_id());
      commands.Bytes("command");
      commands.Bytes(command.SerializeAsString());
    }
    RETURN_IF_ERROR(internal::CopyIn(
        c, "COPY commands FROM STDIN (FORMAT binary)", commands, "commands"));
    internal::CopyData entries(4);
    for (const pb::JournalEntry& e : log.entries) {
      pb::JournalEntry body = e;
      body.clear_prev_hash();
      entries.StartRow();
      entries.Int(e.sequence());
      entries.Int(e.command_sequence());
      entries.Bytes(e.hash());
      entries.Bytes(body.SerializeAsString());
    }
    RETURN_IF_ERROR(internal::CopyIn(
        c, "COPY journal FROM STDIN (FORMAT binary)", entries, "journal"));
    internal::CopyData usage(5);
    int64_t position = 0;
    for (const pb::ChargedUsage& u : log.usage) {
      usage.StartRow();
      usage.Int(++position);
      usage.Bytes(u.record().allocation_id());
      usage.Int(internal::NanosOf(u.record().end()));
      usage.Int(internal::NanosOf(u.accepted_at()));
      usage.Bytes(u.SerializeAsString());
    }
    RETURN_IF_ERROR(internal::CopyIn(c, "COPY usage FROM STDIN (FORMAT binary)",
                                     usage, "usage"));
    return internal::Exec(c, "COMMIT", "previous schema");
  }
  absl::Status WriteRows(const std::vector<BatchRow>& rows) override {
    ASSIGN_OR_RETURN(const internal::Connection conn, internal::Connect(url_));
    RETURN_IF_ERROR(
        internal::Exec(conn.get(), "BEGIN; DELETE FROM batches", "forge"));
    for (const BatchRow& row : rows) {
      RETURN_IF_ERROR(internal::InsertRowOn(conn.get(), row));
    }
    return internal::Exec(conn.get(), "COMMIT", "forge");
  }

 private:
  // Runs `sql` on the test's database with text parameters; stores the
  // first field in `first`.
  absl::Status Exec(const char* sql, const std::vector<std::string>& params,
                    std::string* first) {
    PGconn* conn = PQconnectdb(url_.c_str());
    std::vector<const char*> values;
    for (const std::string& p : params) values.push_back(p.c_str());
    PGresult* result =
        PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr,
                     values.data(), nullptr, nullptr, 0);
    const ExecStatusType status = PQresultStatus(result);
    absl::Status out = status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK
                           ? absl::OkStatus()
                           : absl::InternalError(
                                 absl::StrCat(sql, ": ", PQerrorMessage(conn)));
    if (out.ok() && first != nullptr && PQntuples(result) > 0) {
      *first = PQgetvalue(result, 0, 0);
    }
    PQclear(result);
    PQfinish(conn);
    return out;
  }

  PGconn* const admin_;
  const std::string database_;
  const std::string url_;
};

absl::StatusOr<std::unique_ptr<StoreBackend>> MakePostgresBackend() {
  const char* server = std::getenv("CV_TEST_POSTGRES_URL");
  if (server == nullptr || *server == '\0') {
    return absl::FailedPreconditionError(
        "CV_TEST_POSTGRES_URL is unset: skipping the PostgreSQL store "
        "(scripts/test.sh starts a server with scripts/testing/postgres.sh "
        "and sets it)");
  }
  PGconn* admin = PQconnectdb(server);
  if (PQstatus(admin) != CONNECTION_OK) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("CV_TEST_POSTGRES_URL ", DescribePostgresUrl(server), ": ",
                     PQerrorMessage(admin)));
    PQfinish(admin);
    return s;
  }
  std::random_device random;
  const std::string database =
      absl::StrFormat("cv_test_%08x%08x", random(), random());
  PGresult* created =
      PQexec(admin, absl::StrCat("CREATE DATABASE ", database).c_str());
  const bool ok = PQresultStatus(created) == PGRES_COMMAND_OK;
  PQclear(created);
  if (!ok) {
    absl::Status s = absl::InternalError(absl::StrCat(
        "CREATE DATABASE ", database, ": ", PQerrorMessage(admin)));
    PQfinish(admin);
    return s;
  }
  std::string url =
      absl::StrCat("postgresql://", PQuser(admin), "@", PQhost(admin), ":",
                   PQport(admin), "/", database);
  return std::make_unique<PostgresBackend>(admin, database, std::move(url));
}

}  // namespace

bool EraseCommand(std::vector<Batch>& batches, int64_t sequence) {
  for (Batch& batch : batches) {
    for (auto it = batch.commands.begin(); it != batch.commands.end(); ++it) {
      if (it->sequence() == sequence) {
        batch.commands.erase(it);
        return true;
      }
    }
  }
  return false;
}

std::vector<std::string> StoreBackendNames() { return {"sqlite", "postgres"}; }

absl::StatusOr<std::unique_ptr<StoreBackend>> MakeStoreBackend(
    const std::string& name, const std::string& root) {
  if (name == "sqlite") return std::make_unique<SqliteBackend>(root + "/data");
  if (name == "postgres") return MakePostgresBackend();
  return absl::InvalidArgumentError(
      absl::StrCat("store backend \"", name, "\": use sqlite or postgres"));
}

}  // namespace computevoucher::store
