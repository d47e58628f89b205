// Durable storage of the command log and the journal.
//
// A store keeps two append-only sequences: the commands the state machine
// accepted (with the time they were applied at) and the journal entries they
// posted. Both are written together, one batch per transaction, so that a
// reader never sees one without the other.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_STORE_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "computevoucher/v1/journal.pb.h"
#include "computevoucher/v1/types.pb.h"

namespace cv::store {

namespace pb = ::computevoucher::v1;

// One group commit: commands in sequence order, the entries they posted and
// the usage records they accepted.
struct Batch {
  std::vector<pb::Command> commands;
  std::vector<pb::JournalEntry> entries;
  std::vector<pb::ChargedUsage> usage;
};

// Which accepted usage records to read: those whose interval ends in
// [period_start, period_end), of the allocations given (all when unset),
// after position `after`, in the order they were accepted.
struct UsageQuery {
  std::optional<absl::flat_hash_set<std::string>> allocation_ids;
  absl::Time period_start = absl::InfinitePast();
  absl::Time period_end = absl::InfiniteFuture();
  int64_t after = 0;
  int limit = 1000;
  // How far a record may end after it was accepted (agent clocks drift;
  // the caller's bound, core::kUsageClockSkew for the scheduler). With it
  // the store skips records accepted before period_start minus it, which
  // cannot end in the period; infinite reads them all.
  absl::Duration end_after_accept = absl::InfiniteDuration();
};

// A stored record: the record, its cost, subsidy, unsubsidised GPU-ms and
// acceptance time (who used it follows from the allocation).
struct UsageRow {
  int64_t position = 0;  // pass as UsageQuery::after to continue
  pb::ChargedUsage usage;
};

// Positions of the last stored command and entry (0 when empty).
struct Head {
  int64_t command_sequence = 0;
  int64_t journal_sequence = 0;
  // Hash of that entry (empty when there is none).
  std::string journal_hash;
};

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

// How long a read-write open holds the PostgreSQL lease without renewing.
inline constexpr absl::Duration kDefaultLease = absl::Seconds(10);

// A scheduler replica asking to be the one that writes (Store::Campaign).
struct Candidate {
  std::string id;       // unique to this process: host, pid and a random part
  std::string address;  // where clients reach it, "host:port"
};

// A candidate id unique to this process: "host/pid/random".
std::string NewCandidateId();

// What a campaign found.
struct Leadership {
  // This candidate holds the lease and may append.
  bool leading = false;
  // The current holder's fencing token; every change of holder increments
  // it.
  int64_t fencing_token = 0;
  // The replica holding an unexpired lease, when there is one.
  std::string leader_id;
  std::string leader_address;
  // When leading: how long, counted from when Campaign was called, the
  // lease is certainly still this candidate's. InfiniteDuration for a store
  // only one process can open.
  absl::Duration valid_for = absl::ZeroDuration();
};

class Store {
 public:
  virtual ~Store() = default;

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

  virtual absl::StatusOr<Head> ReadHead() = 0;

  // Up to `query.limit` accepted usage records matching `query`, in the
  // order they were accepted.
  virtual absl::StatusOr<std::vector<UsageRow>> ReadUsage(
      const UsageQuery& query) = 0;

  // Calls `fn` for every record matching `query` (its `after` and `limit`
  // ignored) in one consistent snapshot, and returns the head of that
  // snapshot, so that totals can name the journal position they are as of.
  virtual absl::StatusOr<Head> ScanUsage(
      const UsageQuery& query,
      const std::function<void(const pb::ChargedUsage&)>& fn) = 0;

  // Takes the writer lease for `candidate` for `lease` (renews it when this
  // store already holds it), unless another replica holds an unexpired one.
  // Appends are then allowed until another replica takes the lease over,
  // which it can only do once this one expired: the store checks, in the
  // same transaction as each append, that the lease is still this store's
  // (its fencing token unchanged), and refuses the append with
  // FailedPrecondition otherwise, so that two replicas never both commit.
  // Winning also rereads the head, which the former leader may have moved.
  // Errors are the store's I/O errors; losing is not an error.
  virtual absl::StatusOr<Leadership> Campaign(const Candidate& candidate,
                                              absl::Duration lease) = 0;

  // Stops appending and, when this store holds the lease, lets it expire
  // now, so that another replica takes over without waiting (a graceful
  // stop). Closing a store resigns too.
  virtual absl::Status Resign() = 0;
};

}  // namespace cv::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_STORE_H_
