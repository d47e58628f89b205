// The store implementations the store tests run against, each with a fresh
// place for its data: "sqlite" (a new directory) and "postgres" (a new
// database on the server CV_TEST_POSTGRES_URL names, dropped afterwards).
#ifndef COMPUTEVOUCHER_TESTS_SCHEDULER_STORE_STORE_BACKEND_H_
#define COMPUTEVOUCHER_TESTS_SCHEDULER_STORE_STORE_BACKEND_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/store/internal/batch_rows.h"
#include "scheduler/store/store.h"

namespace computevoucher::store {

class StoreBackend {
 public:
  virtual ~StoreBackend() = default;
  // Opens the store; the first read-write open creates it.
  virtual absl::StatusOr<std::unique_ptr<Store>> Open(OpenMode mode) = 0;
  // The schema version stored, and a way to change it as another build
  // would have.
  virtual absl::StatusOr<int> SchemaVersion() = 0;
  virtual absl::Status SetSchemaVersion(int version) = 0;
  // Runs one SQL statement on the store's database, as an older build or
  // an operator would (to put a store back to an older schema).
  virtual absl::Status Execute(const std::string& sql) = 0;
  // The version this build writes.
  virtual int known_schema_version() const = 0;
  // The store as `voucher-scheduler --store` names it.
  virtual std::string store_url() const = 0;

  // Rewrites the closed store's command log as a forger with access to the
  // database would: every stored row decoded into a batch, `edit` applied
  // to them, and the rows written back. Entries and usage records are
  // numbered again by their place, and with `rechain` the entries are
  // hashed again and the rows' stored hashes follow, so that the log reads
  // back and only replay can tell; without, each row keeps its stored hash.
  absl::Status ForgeLog(const std::function<void(std::vector<Batch>&)>& edit,
                        bool rechain = true);

  // Puts the closed store back to the schema before `batches` (SQLite 4,
  // PostgreSQL 3), holding `log` in separate commands, journal and usage
  // tables as the builds of that schema wrote them.
  virtual absl::Status RewriteAsPreviousSchema(const Batch& log) = 0;

 protected:
  // The rows of `batches` in id order, and replacing them all.
  virtual absl::StatusOr<std::vector<internal::BatchRow>> ReadRows() = 0;
  virtual absl::Status WriteRows(
      const std::vector<internal::BatchRow>& rows) = 0;
};

// For ForgeLog's edits: takes command `sequence` out of the batch holding
// it; false when no batch holds it.
bool EraseCommand(std::vector<Batch>& batches, int64_t sequence);

// The names MakeStoreBackend takes, for INSTANTIATE_TEST_SUITE_P.
std::vector<std::string> StoreBackendNames();

// A backend `name` keeping its data under the directory `root` (SQLite, in
// `root`/data) or
// in a new database (PostgreSQL). FailedPrecondition when PostgreSQL is
// asked for and CV_TEST_POSTGRES_URL is unset (tests skip then);
// Unavailable when its server cannot be reached.
absl::StatusOr<std::unique_ptr<StoreBackend>> MakeStoreBackend(
    const std::string& name, const std::string& root);

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_TESTS_SCHEDULER_STORE_STORE_BACKEND_H_
