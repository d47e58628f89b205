// A durable store: one database (SQLite or PostgreSQL) that is at once the
// command log the writer appends to; the usage index, the retired
// allocations and the archived history that reports read; and the lease
// that picks the replica allowed to append. Callers take the narrow
// interface they use; only opening a store names them all.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_STORE_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_STORE_H_

#include "scheduler/store/archived_history.h"
#include "scheduler/store/command_log.h"
#include "scheduler/store/lease.h"
#include "scheduler/store/retired.h"
#include "scheduler/store/usage_index.h"

namespace computevoucher::store {

// How a store is opened.
enum class OpenMode {
  // Creates the store if missing, migrates its schema and makes this the
  // only writer: a second read-write open gets FailedPrecondition while
  // this store is open (SQLite) or holds the lease (PostgreSQL, where the
  // open campaigns once, as the host and process id, for kDefaultLease).
  kReadWrite,
  // As kReadWrite, but the open does not campaign: Append is refused until
  // Campaign wins. For scheduler replicas sharing one database; a store
  // only one process can open (SQLite) treats it as kReadWrite.
  kReplica,
  // Reads an existing store without locking out a running scheduler;
  // Append is refused.
  kReadOnly,
};

class Store : public CommandLog,
              public UsageIndex,
              public RetiredRecords,
              public ArchivedHistory,
              public Lease {};

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_STORE_H_
