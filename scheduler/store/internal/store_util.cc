#include "scheduler/store/internal/store_util.h"

#include <unistd.h>

#include <limits>
#include <random>

#include "absl/strings/str_cat.h"

namespace computevoucher::store {

std::string NewCandidateId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::random_device random;
  return absl::StrCat(host, "/", getpid(), "/",
                      absl::Hex(random(), absl::kZeroPad8));
}

namespace internal {

absl::Status CheckContinues(const Head& head, const Batch& batch) {
  int64_t next_command = head.command_sequence + 1;
  for (const pb::Command& c : batch.commands) {
    if (c.sequence() != next_command++) {
      return absl::FailedPreconditionError(
          absl::StrCat("append: command sequence ", c.sequence(),
                       " does not follow ", next_command - 2));
    }
  }
  int64_t next_entry = head.journal_sequence + 1;
  for (const pb::JournalEntry& e : batch.entries) {
    if (e.sequence() != next_entry++) {
      return absl::FailedPreconditionError(
          absl::StrCat("append: journal sequence ", e.sequence(),
                       " does not follow ", next_entry - 2));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSnapshot(int64_t position, int keep, int64_t last_command,
                           int64_t newest) {
  if (keep < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot keep: must be >= 1, got ", keep));
  }
  if (position < 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot position ", position, ": must be >= 1"));
  }
  if (position > last_command) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot position ", position,
                     " is after the last stored command ", last_command));
  }
  if (position == newest) {
    return absl::AlreadyExistsError(
        absl::StrCat("snapshot position ", position, " is already stored"));
  }
  if (position < newest) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot position ", position,
                     " is older than the newest stored snapshot ", newest));
  }
  return absl::OkStatus();
}

int64_t NanosOf(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1'000'000'000 + ts.nanos();
}

int64_t ClampNanos(absl::Time t) {
  if (t <= absl::FromUnixNanos(std::numeric_limits<int64_t>::min())) {
    return std::numeric_limits<int64_t>::min();
  }
  if (t >= absl::FromUnixNanos(std::numeric_limits<int64_t>::max())) {
    return std::numeric_limits<int64_t>::max();
  }
  return absl::ToUnixNanos(t);
}

}  // namespace internal
}  // namespace computevoucher::store
