// The agent's durable outbox of usage records.
//
// Every metered interval becomes a record that is written and synced here
// before it is sent, and leaves only when the scheduler has acknowledged it,
// so a record survives a crash of the agent, of the machine or of the
// scheduler, and is sent until it is answered.
//
// The spool also keeps, per allocation, a cursor: the next sequence number
// and the instant metering resumes at. After a restart the agent continues
// each allocation from its cursor, so sequence numbers have no gaps and no
// repeats and metered intervals neither overlap nor leave holes.
//
// On disk: one log file, `spool.log`, in the spool directory, of frames
// [u32 little-endian payload length][first 4 bytes of the payload's
// SHA-256][payload: a serialized pb::SpoolEntry]. Each change appends frames
// and fdatasyncs before returning. Only the last frame can be torn by a crash
// (nothing is appended after an unsynced frame), so a bad frame that reaches
// the end of the file is cut off and logged on open; a bad frame anywhere
// else is corruption and Open fails. The log is compacted (live cursors and
// pending records written to `spool.log.new`, synced, renamed over the log,
// directory synced) on open and whenever dead frames outweigh live ones.
//
// Thread-safe: all methods may be called from any thread.
#ifndef COMPUTEVOUCHER_AGENT_SPOOL_H_
#define COMPUTEVOUCHER_AGENT_SPOOL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::agent {

namespace pb = ::computevoucher::v1;

class Spool {
 public:
  struct Options {
    // Directory of the spool; created (mode 0700) when missing.
    std::string dir;
    // Most bytes the pending records and cursors may take (live bytes, not
    // the file size, which compaction keeps near it).
    int64_t max_bytes = 256 << 20;
  };

  // Where an allocation's metering resumes.
  struct Cursor {
    int64_t next_sequence = 1;
    absl::Time resume_at = absl::InfinitePast();
    // GPUs of the allocation, so that a restarted agent can meter one that
    // ended while it was down.
    int32_t gpu_count = 0;
  };

  // Opens the spool in `options.dir`, creating it when missing, and locks
  // it (`LOCK`, released when the spool is destroyed or the process dies).
  // A torn last frame is cut off (and said on stderr, with its offset and
  // length). Errors: FailedPrecondition when another process holds the
  // spool; DataLoss naming the file and offset when a frame other than the
  // last is bad; InvalidArgument for bad options; Internal for I/O errors,
  // naming the path and errno text.
  static absl::StatusOr<std::unique_ptr<Spool>> Open(const Options& options);

  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends records durably, all or nothing, in one write and one sync.
  // Each record must continue its allocation's cursor: sequence equal to the
  // cursor's next_sequence (1 for an allocation without one) and start not
  // before its resume_at; records of one allocation in one call must follow
  // each other. Errors: InvalidArgument naming the allocation, field and
  // values when a record does not continue its cursor (nothing is written);
  // ResourceExhausted "spool full: ..." with live and maximum bytes when the
  // records do not fit; Internal on I/O errors.
  absl::Status Append(const std::vector<pb::UsageRecord>& records);

  // Sets an allocation's cursor durably (metering begins, or the scheduler
  // expects a later sequence than the spool has). Never moves a cursor
  // back: each field takes the larger of the old and new values.
  absl::Status SetCursor(const std::string& allocation_id,
                         const Cursor& cursor);

  // The allocation's cursor, or nullopt when the spool has none.
  std::optional<Cursor> CursorOf(const std::string& allocation_id) const;

  // Allocations with a cursor, sorted.
  std::vector<std::string> Allocations() const;

  // Records waiting for the scheduler, in the order they were appended, at
  // most `limit`.
  std::vector<pb::UsageRecord> Pending(size_t limit) const;

  // Pending records of one allocation.
  int64_t PendingOf(const std::string& allocation_id) const;

  // Removes acknowledged records, given as (allocation id, sequence),
  // durably. Pairs that are not pending are ignored.
  absl::Status Acknowledge(
      const std::vector<std::pair<std::string, int64_t>>& acknowledged);

  // Drops the allocation's cursor durably. FailedPrecondition when it still
  // has pending records; OK when it has no cursor.
  absl::Status Forget(const std::string& allocation_id);

  // Pending records.
  int64_t depth() const;
  // Live bytes (pending records and cursors), compared with max_bytes.
  int64_t live_bytes() const;
  // End of the oldest pending record's interval, for the age of the
  // backlog; nullopt when nothing is pending.
  std::optional<absl::Time> oldest_pending_end() const;

 private:
  class Impl;
  explicit Spool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_SPOOL_H_
