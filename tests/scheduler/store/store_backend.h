// The store implementations the store tests run against, each with a fresh
// place for its data: "sqlite" (a new directory) and "postgres" (a new
// database on the server CV_TEST_POSTGRES_URL names, dropped afterwards).
#ifndef COMPUTEVOUCHER_TESTS_SCHEDULER_STORE_STORE_BACKEND_H_
#define COMPUTEVOUCHER_TESTS_SCHEDULER_STORE_STORE_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
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
};

// The names MakeStoreBackend takes, for INSTANTIATE_TEST_SUITE_P.
std::vector<std::string> StoreBackendNames();

// A backend `name` keeping its data under the directory `root` (SQLite) or
// in a new database (PostgreSQL). FailedPrecondition when PostgreSQL is
// asked for and CV_TEST_POSTGRES_URL is unset (tests skip then);
// Unavailable when its server cannot be reached.
absl::StatusOr<std::unique_ptr<StoreBackend>> MakeStoreBackend(
    const std::string& name, const std::string& root);

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_TESTS_SCHEDULER_STORE_STORE_BACKEND_H_
