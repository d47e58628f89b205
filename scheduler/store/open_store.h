// Chooses and opens the store a scheduler configuration names.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_OPEN_STORE_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_OPEN_STORE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "computevoucher/v1/config.pb.h"
#include "scheduler/store/store.h"

namespace computevoucher::store {

// Checks `config.store()`: empty or "sqlite" (optionally "sqlite:") selects
// the embedded store in `config.data_dir()`; "postgres://..." or
// "postgresql://..." a PostgreSQL database. InvalidArgument naming the
// field otherwise.
absl::Status ValidateStoreConfig(const pb::SchedulerConfig& config);

// Opens the store `config` selects (see ValidateStoreConfig), with the
// errors of OpenSqliteStore or OpenPostgresStore.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(
    const pb::SchedulerConfig& config, OpenMode mode = OpenMode::kReadWrite);

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_OPEN_STORE_H_
