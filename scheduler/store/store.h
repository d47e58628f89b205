// Durable storage of the command log and the journal.
//
// A store keeps two append-only sequences: the commands the state machine
// accepted (with the time they were applied at) and the journal entries they
// posted. Both are written together, one batch per transaction, so that a
// reader never sees one without the other.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_STORE_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "computevoucher/v1/journal.pb.h"
#include "computevoucher/v1/types.pb.h"

namespace cv::store {

namespace pb = ::computevoucher::v1;

// One group commit: commands in sequence order and the entries they posted.
struct Batch {
  std::vector<pb::Command> commands;
  std::vector<pb::JournalEntry> entries;
};

// Positions of the last stored command and entry (0 when empty).
struct Head {
  int64_t command_sequence = 0;
  int64_t journal_sequence = 0;
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
};

}  // namespace cv::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_STORE_H_
