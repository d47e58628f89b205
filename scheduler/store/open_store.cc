#include "scheduler/store/open_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "scheduler/store/postgres_store.h"
#include "scheduler/store/sqlite_store.h"

namespace computevoucher::store {
namespace {

bool IsSqlite(const std::string& store) {
  return store.empty() || store == "sqlite" || store == "sqlite:";
}

bool IsPostgres(const std::string& store) {
  return absl::StartsWith(store, "postgres://") ||
         absl::StartsWith(store, "postgresql://");
}

}  // namespace

absl::Status ValidateStoreConfig(const pb::SchedulerConfig& config) {
  if (IsSqlite(config.store())) {
    if (config.data_dir().empty()) {
      return absl::InvalidArgumentError(
          "data_dir: required for the embedded store (--data-dir DIR)");
    }
    return absl::OkStatus();
  }
  if (IsPostgres(config.store())) return absl::OkStatus();
  // The value may hold a password: name only its scheme.
  const size_t colon = config.store().find(':');
  return absl::InvalidArgumentError(absl::StrCat(
      "store: \"", config.store().substr(0, colon),
      colon == std::string::npos ? "" : ":...",
      "\" is not a store; use sqlite or postgresql://user@host:port/dbname"));
}

absl::StatusOr<std::unique_ptr<Store>> OpenStore(
    const pb::SchedulerConfig& config, OpenMode mode) {
  RETURN_IF_ERROR(ValidateStoreConfig(config));
  if (IsPostgres(config.store())) {
    return OpenPostgresStore(config.store(), mode);
  }
  return OpenSqliteStore(config.data_dir(), mode);
}

}  // namespace computevoucher::store
