#include "tests/scheduler/store/store_backend.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <cstdlib>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "scheduler/store/postgres_store.h"
#include "scheduler/store/sqlite_store.h"

namespace computevoucher::store {
namespace {

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

 private:
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

std::vector<std::string> StoreBackendNames() { return {"sqlite", "postgres"}; }

absl::StatusOr<std::unique_ptr<StoreBackend>> MakeStoreBackend(
    const std::string& name, const std::string& root) {
  if (name == "sqlite") return std::make_unique<SqliteBackend>(root + "/data");
  if (name == "postgres") return MakePostgresBackend();
  return absl::InvalidArgumentError(
      absl::StrCat("store backend \"", name, "\": use sqlite or postgres"));
}

}  // namespace computevoucher::store
