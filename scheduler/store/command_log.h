// The command log: the commands the state machine accepted (with the time
// they were applied at) and the journal entries they posted, two
// append-only sequences written together, one batch per transaction, so
// that a reader never sees one without the other.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_COMMAND_LOG_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_COMMAND_LOG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "computevoucher/v1/journal.pb.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::store {

namespace pb = ::computevoucher::v1;

// One group commit: commands in sequence order, the entries they posted,
// the usage records they accepted (which the usage index then answers) and
// the final views of the allocations and vouchers they retired
// (RetiredRecords), and the audit events of its commands (AuditLog).
struct Batch {
  std::vector<pb::Command> commands;
  std::vector<pb::JournalEntry> entries;
  std::vector<pb::ChargedUsage> usage;
  std::vector<pb::Allocation> retired;
  std::vector<pb::Voucher> retired_vouchers;
  std::vector<pb::AuditEvent> audit;
};

// Positions of the last stored command and entry (0 when empty).
struct Head {
  int64_t command_sequence = 0;
  int64_t journal_sequence = 0;
  // Hash of that entry (empty when there is none).
  std::string journal_hash;
};

// The whole state at one position of the log, so that start-up and a
// follower's catch-up replay only the commands after it.
struct Snapshot {
  // The sequence of the last command the state includes (>= 1).
  int64_t position = 0;
  // The serialized state (core::StateMachine::Save), opaque to the store.
  std::string state;
  // The state's digest (core::StateMachine::Digest), checked on loading.
  std::string digest;
};

class CommandLog {
 public:
  virtual ~CommandLog() = default;

  // Appends `batch` in one transaction and returns once it is durable. The
  // batch must continue both sequences without gaps (FailedPrecondition
  // otherwise). On error nothing of the batch is stored.
  virtual absl::Status Append(const Batch& batch) = 0;

  // Up to `limit` commands with sequence > `after`, in order.
  virtual absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                                int limit) = 0;
  // Up to `limit` journal entries with sequence > `after`, in order.
  virtual absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) = 0;

  // Takes back journal entries ReadJournal returned, which the caller is
  // done with: a store may decode the entries it reads next into them,
  // saving their allocations. Destroyed here unless a store overrides it.
  virtual void Recycle(std::vector<pb::JournalEntry> entries) {}
  // Frees what the store keeps of the rows it read for the reads that
  // usually follow (the other kinds of item in the same rows): a caller
  // done reading in order calls it, so that memory does not stay in use
  // for items nobody will read. Later reads read the rows again.
  virtual void DropReadCache() {}

  virtual absl::StatusOr<Head> ReadHead() = 0;

  // The most usage records a commit carries unless the writer is told
  // otherwise (WriterOptions::max_batch_records), by what a commit costs
  // here. Each store says why; 500 for a log that is not one (read-only
  // logs, test doubles that do not wrap a store).
  virtual int64_t DefaultBatchRecords() const { return 500; }

  // Stores `snapshot` in one transaction, then drops all but the newest
  // `keep` (>= 1) snapshots. Its position must be a stored command
  // (FailedPrecondition otherwise) and newer than every stored snapshot's
  // (AlreadyExists for an equal one, FailedPrecondition for an older one).
  // On error nothing changed. Refused on a read-only store, and on a
  // replica that does not hold the lease, as Append is.
  virtual absl::Status WriteSnapshot(const Snapshot& snapshot, int keep) = 0;
  // The positions of the stored snapshots, newest first.
  virtual absl::StatusOr<std::vector<int64_t>> ListSnapshots() = 0;
  // The snapshot at `position`; NotFound when there is none.
  virtual absl::StatusOr<Snapshot> ReadSnapshot(int64_t position) = 0;
};

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_COMMAND_LOG_H_
