#include "agent/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "computevoucher/v1/spool.pb.h"

namespace computevoucher::agent {
namespace {

constexpr char kLogName[] = "spool.log";
constexpr char kNewLogName[] = "spool.log.new";
constexpr size_t kHeaderBytes = 8;
// A length above this is garbage, not a record: real entries are a few
// hundred bytes.
constexpr uint32_t kMaxPayloadBytes = 16 << 20;
// Below this the log is never compacted outside Open: rewriting a small file
// costs more than the dead bytes do.
constexpr int64_t kCompactMinFileBytes = 64 << 10;

std::string ErrnoText(int err) { return std::strerror(err); }

absl::Status IoError(absl::string_view what, absl::string_view path, int err) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", ErrnoText(err)));
}

void PutU32(uint32_t v, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t GetU32(const char* in) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(in[i]);
  }
  return v;
}

// Appends the frame of `entry` to `out`.
void AppendFrame(const pb::SpoolEntry& entry, std::string* out) {
  const std::string payload = entry.SerializeAsString();
  char header[kHeaderBytes];
  PutU32(static_cast<uint32_t>(payload.size()), header);
  std::memcpy(header + 4, Sha256(payload).data(), 4);
  out->append(header, kHeaderBytes);
  out->append(payload);
}

int64_t FrameBytes(const pb::SpoolEntry& entry) {
  return static_cast<int64_t>(kHeaderBytes + entry.ByteSizeLong());
}

pb::SpoolEntry CursorEntry(const std::string& allocation_id,
                           const Spool::Cursor& cursor) {
  pb::SpoolEntry entry;
  pb::SpoolCursor* c = entry.mutable_cursor();
  c->set_allocation_id(allocation_id);
  c->set_next_sequence(cursor.next_sequence);
  c->set_gpu_count(cursor.gpu_count);
  // InfinitePast (metering has not begun) is an unset timestamp.
  if (cursor.resume_at != absl::InfinitePast()) {
    *c->mutable_resume_at() = ToProto(cursor.resume_at);
  }
  return entry;
}

Spool::Cursor MaxCursor(const Spool::Cursor& a, const Spool::Cursor& b) {
  return Spool::Cursor{std::max(a.next_sequence, b.next_sequence),
                       std::max(a.resume_at, b.resume_at),
                       std::max(a.gpu_count, b.gpu_count)};
}

bool SameCursor(const Spool::Cursor& a, const Spool::Cursor& b) {
  return a.next_sequence == b.next_sequence && a.resume_at == b.resume_at &&
         a.gpu_count == b.gpu_count;
}

// Writes all of `data` at `offset`, retrying interrupted and short writes.
absl::Status WriteAllAt(int fd, absl::string_view data, int64_t offset,
                        const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("write", path, errno);
    }
    if (n == 0) return IoError("write", path, EIO);
    data.remove_prefix(static_cast<size_t>(n));
    offset += n;
  }
  return absl::OkStatus();
}

absl::Status DataSync(int fd, const std::string& path) {
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return IoError("fdatasync", path, errno);
  }
  return absl::OkStatus();
}

absl::Status Truncate(int fd, int64_t size, const std::string& path) {
  while (::ftruncate(fd, size) != 0) {
    if (errno != EINTR) return IoError("ftruncate", path, errno);
  }
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return IoError("fsync", path, errno);
  }
  return absl::OkStatus();
}

// Makes a rename or creation in `dir` durable.
absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("open directory", dir, errno);
  absl::Status status;
  while (::fsync(fd) != 0) {
    if (errno != EINTR) {
      status = IoError("fsync directory", dir, errno);
      break;
    }
  }
  ::close(fd);
  return status;
}

// Creates `dir` and its missing parents; new ones get mode 0700.
absl::Status MakeDirs(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dir: ", dir, " exists and is not a directory"));
    }
    return absl::OkStatus();
  }
  if (errno != ENOENT) return IoError("stat", dir, errno);
  const size_t slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    RETURN_IF_ERROR(MakeDirs(dir.substr(0, slash)));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return IoError("mkdir", dir, errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadAll(int fd, const std::string& path) {
  std::string data;
  char buf[1 << 16];
  int64_t offset = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof(buf), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("read", path, errno);
    }
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
    offset += n;
  }
}

bool AllZero(absl::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [](char c) { return c == '\0'; });
}

}  // namespace

class Spool::Impl {
 public:
  explicit Impl(const Options& options)
      : options_(options),
        path_(absl::StrCat(options.dir, "/", kLogName)),
        new_path_(absl::StrCat(options.dir, "/", kNewLogName)) {}

  ~Impl() {
    absl::MutexLock lock(&mu_);
    if (fd_ >= 0) ::close(fd_);
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
  }

  absl::Status Init() {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(MakeDirs(options_.dir));
    // One agent per spool: a second would append to the same log.
    const std::string lock_path = absl::StrCat(options_.dir, "/LOCK");
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) return IoError("open", lock_path, errno);
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return absl::FailedPreconditionError(absl::StrCat(
            "spool directory ", options_.dir,
            " is in use by another voucher-agent; give each agent its own"));
      }
      return IoError("flock", lock_path, errno);
    }
    // A leftover from a compaction that crashed before its rename; the log
    // itself is complete.
    if (::unlink(new_path_.c_str()) != 0 && errno != ENOENT) {
      return IoError("unlink", new_path_, errno);
    }
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return IoError("open", path_, errno);
    RETURN_IF_ERROR(SyncDir(options_.dir));
    RETURN_IF_ERROR(RecoverLocked());
    if (file_bytes_ != live_bytes_) RETURN_IF_ERROR(CompactLocked());
    return absl::OkStatus();
  }

  absl::Status Append(const std::vector<pb::UsageRecord>& records) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(broken_);
    if (records.empty()) return absl::OkStatus();
    // Cursors as they will be after the records, for the allocations they
    // touch.
    std::map<std::string, Cursor> moved;
    std::vector<absl::Time> ends;
    std::vector<int64_t> frame_bytes;
    ends.reserve(records.size());
    frame_bytes.reserve(records.size());
    std::string frames;
    int64_t needed = 0;
    for (const pb::UsageRecord& r : records) {
      const std::string& id = r.allocation_id();
      if (id.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("usage record with sequence ", r.sequence(),
                         ": allocation_id: required"));
      }
      const std::string where =
          absl::StrCat("allocation ", id, " sequence ", r.sequence());
      auto start = FromProto("start", r.start());
      if (!start.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": ", start.status().message()));
      }
      auto end = FromProto("end", r.end());
      if (!end.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": ", end.status().message()));
      }
      if (*end <= *start) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": end ", FormatInstant(*end, /*utc=*/true),
            " must be after start ", FormatInstant(*start, /*utc=*/true)));
      }
      auto it = moved.find(id);
      if (it == moved.end()) {
        auto c = cursors_.find(id);
        it =
            moved.emplace(id, c == cursors_.end() ? Cursor{} : c->second.cursor)
                .first;
      }
      Cursor& cursor = it->second;
      if (r.sequence() != cursor.next_sequence) {
        return absl::InvalidArgumentError(
            absl::StrCat("allocation ", id, ": sequence: expected ",
                         cursor.next_sequence, ", got ", r.sequence()));
      }
      if (*start < cursor.resume_at) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": start ", FormatInstant(*start, /*utc=*/true),
                         " is before the cursor's resume_at ",
                         FormatInstant(cursor.resume_at, /*utc=*/true)));
      }
      cursor = Cursor{r.sequence() + 1, *end, cursor.gpu_count};
      pb::SpoolEntry entry;
      *entry.mutable_usage() = r;
      if (entry.ByteSizeLong() > kMaxPayloadBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": record of ", entry.ByteSizeLong(),
                         " bytes exceeds the limit of ", kMaxPayloadBytes));
      }
      AppendFrame(entry, &frames);
      frame_bytes.push_back(FrameBytes(entry));
      needed += frame_bytes.back();
      ends.push_back(*end);
    }
    for (const auto& [id, cursor] : moved) {
      needed += FrameBytes(CursorEntry(id, cursor));
      auto c = cursors_.find(id);
      if (c != cursors_.end()) needed -= c->second.frame_bytes;
    }
    if (live_bytes_ + needed > options_.max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "spool full: ", live_bytes_, " live bytes + ", needed,
          " bytes needed for ", records.size(), " records exceed max_bytes ",
          options_.max_bytes, " in ", options_.dir,
          "; is the scheduler unreachable? (raise --spool-max-bytes to "
          "hold more)"));
    }
    RETURN_IF_ERROR(WriteLocked(frames));
    for (size_t i = 0; i < records.size(); ++i) {
      AddPendingLocked(records[i], ends[i], frame_bytes[i]);
    }
    for (const auto& [id, cursor] : moved) SetCursorInMemoryLocked(id, cursor);
    return absl::OkStatus();
  }

  absl::Status SetCursor(const std::string& allocation_id,
                         const Cursor& cursor) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(broken_);
    if (allocation_id.empty()) {
      return absl::InvalidArgumentError("allocation_id: required");
    }
    if (cursor.next_sequence < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "allocation ", allocation_id,
          ": next_sequence: must be at least 1, got ", cursor.next_sequence));
    }
    if (cursor.resume_at != absl::InfinitePast()) {
      // What is written must read back on open.
      absl::StatusOr<absl::Time> back =
          FromProto("resume_at", ToProto(cursor.resume_at));
      if (!back.ok() || *back != cursor.resume_at) {
        return absl::InvalidArgumentError(
            absl::StrCat("allocation ", allocation_id,
                         ": resume_at: ", absl::FormatTime(cursor.resume_at),
                         " is not an instant of years 1..9999"));
      }
    }
    auto it = cursors_.find(allocation_id);
    const Cursor merged =
        it == cursors_.end() ? cursor : MaxCursor(it->second.cursor, cursor);
    if (it != cursors_.end() && SameCursor(merged, it->second.cursor)) {
      return absl::OkStatus();
    }
    std::string frame;
    AppendFrame(CursorEntry(allocation_id, merged), &frame);
    RETURN_IF_ERROR(WriteLocked(frame));
    SetCursorInMemoryLocked(allocation_id, merged);
    return absl::OkStatus();
  }

  std::optional<Cursor> CursorOf(const std::string& allocation_id) const {
    absl::MutexLock lock(&mu_);
    auto it = cursors_.find(allocation_id);
    if (it == cursors_.end()) return std::nullopt;
    return it->second.cursor;
  }

  std::vector<std::string> Allocations() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    ids.reserve(cursors_.size());
    for (const auto& [id, state] : cursors_) ids.push_back(id);
    return ids;
  }

  std::vector<pb::UsageRecord> Pending(size_t limit) const {
    absl::MutexLock lock(&mu_);
    std::vector<pb::UsageRecord> out;
    out.reserve(std::min(limit, pending_.size()));
    for (auto it = pending_.begin(); it != pending_.end() && out.size() < limit;
         ++it) {
      out.push_back(it->second.record);
    }
    return out;
  }

  int64_t PendingOf(const std::string& allocation_id) const {
    absl::MutexLock lock(&mu_);
    auto it = pending_count_.find(allocation_id);
    return it == pending_count_.end() ? 0 : it->second;
  }

  absl::Status Acknowledge(
      const std::vector<std::pair<std::string, int64_t>>& acknowledged) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(broken_);
    std::set<std::pair<std::string, int64_t>> acked;
    std::string frames;
    for (const auto& key : acknowledged) {
      if (index_.count(key) == 0 || !acked.insert(key).second) continue;
      pb::SpoolEntry entry;
      entry.mutable_ack()->set_allocation_id(key.first);
      entry.mutable_ack()->set_sequence(key.second);
      AppendFrame(entry, &frames);
    }
    if (acked.empty()) return absl::OkStatus();
    RETURN_IF_ERROR(WriteLocked(frames));
    for (const auto& key : acked) RemovePendingLocked(key);
    MaybeCompactLocked();
    return absl::OkStatus();
  }

  absl::Status Forget(const std::string& allocation_id) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(broken_);
    auto count = pending_count_.find(allocation_id);
    if (count != pending_count_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("allocation ", allocation_id, ": ", count->second,
                       " records still pending; cannot forget its cursor"));
    }
    if (cursors_.count(allocation_id) == 0) return absl::OkStatus();
    pb::SpoolEntry entry;
    entry.set_forget(allocation_id);
    std::string frame;
    AppendFrame(entry, &frame);
    RETURN_IF_ERROR(WriteLocked(frame));
    EraseCursorLocked(allocation_id);
    MaybeCompactLocked();
    return absl::OkStatus();
  }

  int64_t depth() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(pending_.size());
  }

  int64_t live_bytes() const {
    absl::MutexLock lock(&mu_);
    return live_bytes_;
  }

  std::optional<absl::Time> oldest_pending_end() const {
    absl::MutexLock lock(&mu_);
    if (ends_.empty()) return std::nullopt;
    return *ends_.begin();
  }

 private:
  struct PendingRecord {
    pb::UsageRecord record;
    absl::Time end;
    int64_t frame_bytes = 0;
  };
  struct CursorState {
    Cursor cursor;
    // Bytes of the cursor's frame in a compacted log.
    int64_t frame_bytes = 0;
  };

  // Reads the log, cuts a torn last frame and rebuilds the state.
  absl::Status RecoverLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(const std::string data, ReadAll(fd_, path_));
    const absl::string_view log(data);
    size_t offset = 0;
    while (offset < log.size()) {
      const size_t remaining = log.size() - offset;
      bool bad = remaining < kHeaderBytes;
      uint64_t frame_end = log.size() + 1;  // Past EOF unless known.
      absl::string_view payload;
      if (!bad) {
        const uint32_t length = GetU32(log.data() + offset);
        frame_end = offset + kHeaderBytes + uint64_t{length};
        bad = length > kMaxPayloadBytes || frame_end > log.size();
        if (!bad) {
          payload = log.substr(offset + kHeaderBytes, length);
          bad = Sha256(payload).compare(0, 4, log.data() + offset + 4, 4) != 0;
        }
      }
      if (bad) {
        // A frame torn by a crash reaches the end of the file; so does one
        // followed only by zeros (blocks allocated but never written).
        if (frame_end < log.size() && !AllZero(log.substr(frame_end))) {
          return absl::DataLossError(
              absl::StrCat("spool ", path_, ": bad record at offset ", offset,
                           " (length or checksum does not match) followed by ",
                           log.size() - frame_end,
                           " more bytes; the file is corrupt, not torn"));
        }
        RETURN_IF_ERROR(Truncate(fd_, static_cast<int64_t>(offset), path_));
        LogLine("voucher-agent",
                absl::StrCat("spool: cut a torn record of ", remaining,
                             " bytes at offset ", offset, " of ", path_));
        break;
      }
      pb::SpoolEntry entry;
      if (!entry.ParseFromArray(payload.data(),
                                static_cast<int>(payload.size()))) {
        return absl::DataLossError(
            absl::StrCat("spool ", path_, ": record at offset ", offset,
                         " has a valid checksum but does not parse"));
      }
      absl::Status applied = ApplyLocked(entry);
      if (!applied.ok()) {
        return absl::DataLossError(absl::StrCat("spool ", path_,
                                                ": record at offset ", offset,
                                                ": ", applied.message()));
      }
      offset = static_cast<size_t>(frame_end);
    }
    file_bytes_ = static_cast<int64_t>(offset);
    return absl::OkStatus();
  }

  // Applies one replayed entry. Cursors only move forward, so the order of
  // cursor and usage entries in a compacted log does not matter.
  absl::Status ApplyLocked(const pb::SpoolEntry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    switch (entry.entry_case()) {
      case pb::SpoolEntry::kUsage: {
        const pb::UsageRecord& r = entry.usage();
        if (r.allocation_id().empty()) {
          return absl::InvalidArgumentError("usage: allocation_id: required");
        }
        if (index_.count({r.allocation_id(), r.sequence()}) != 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("allocation ", r.allocation_id(), " sequence ",
                           r.sequence(), " is pending twice"));
        }
        ASSIGN_OR_RETURN(const absl::Time end, FromProto("usage.end", r.end()));
        auto it = cursors_.find(r.allocation_id());
        const Cursor after{r.sequence() + 1, end};
        SetCursorInMemoryLocked(
            r.allocation_id(),
            it == cursors_.end() ? after : MaxCursor(it->second.cursor, after));
        AddPendingLocked(r, end, FrameBytes(entry));
        return absl::OkStatus();
      }
      case pb::SpoolEntry::kAck:
        RemovePendingLocked(
            {entry.ack().allocation_id(), entry.ack().sequence()});
        return absl::OkStatus();
      case pb::SpoolEntry::kCursor: {
        const pb::SpoolCursor& c = entry.cursor();
        if (c.allocation_id().empty()) {
          return absl::InvalidArgumentError("cursor: allocation_id: required");
        }
        Cursor cursor{c.next_sequence(), absl::InfinitePast(), c.gpu_count()};
        if (c.has_resume_at()) {
          ASSIGN_OR_RETURN(cursor.resume_at,
                           FromProto("cursor.resume_at", c.resume_at()));
        }
        auto it = cursors_.find(c.allocation_id());
        SetCursorInMemoryLocked(c.allocation_id(),
                                it == cursors_.end()
                                    ? cursor
                                    : MaxCursor(it->second.cursor, cursor));
        return absl::OkStatus();
      }
      case pb::SpoolEntry::kForget: {
        auto count = pending_count_.find(entry.forget());
        if (count != pending_count_.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("forget of allocation ", entry.forget(), " with ",
                           count->second, " records pending"));
        }
        EraseCursorLocked(entry.forget());
        return absl::OkStatus();
      }
      case pb::SpoolEntry::ENTRY_NOT_SET:
        break;
    }
    return absl::InvalidArgumentError(
        "entry: none of usage, ack, cursor or "
        "forget is set");
  }

  // Appends `frames` and syncs. On failure the file is cut back to its
  // previous size, so it never holds part of a change.
  absl::Status WriteLocked(absl::string_view frames)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::Status status = WriteAllAt(fd_, frames, file_bytes_, path_);
    if (status.ok()) status = DataSync(fd_, path_);
    if (!status.ok()) {
      absl::Status undo = Truncate(fd_, file_bytes_, path_);
      if (!undo.ok()) {
        // The file may now end in part of a change that the caller was told
        // failed; refuse further changes rather than build on it.
        broken_ = absl::InternalError(absl::StrCat(
            "spool ", path_, " is unusable after a failed write (",
            status.message(), ") and a failed undo (", undo.message(), ")"));
      }
      return status;
    }
    file_bytes_ += static_cast<int64_t>(frames.size());
    return absl::OkStatus();
  }

  void MaybeCompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (file_bytes_ <= kCompactMinFileBytes) return;
    if (file_bytes_ - live_bytes_ <= live_bytes_) return;
    // The change that led here is durable already; a failed compaction
    // leaves a valid (longer) log and is tried again on a later change.
    absl::Status status = CompactLocked();
    if (!status.ok()) {
      LogLine("voucher-agent",
              absl::StrCat("spool: compaction failed: ", status.message()));
    }
  }

  // Rewrites the log as a cursor per allocation followed by the pending
  // records in order, so that it holds exactly live_bytes_.
  absl::Status CompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string data;
    data.reserve(static_cast<size_t>(live_bytes_));
    for (const auto& [id, state] : cursors_) {
      AppendFrame(CursorEntry(id, state.cursor), &data);
    }
    for (const auto& [position, p] : pending_) {
      pb::SpoolEntry entry;
      *entry.mutable_usage() = p.record;
      AppendFrame(entry, &data);
    }
    const int fd =
        ::open(new_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return IoError("open", new_path_, errno);
    absl::Status status = WriteAllAt(fd, data, 0, new_path_);
    if (status.ok()) status = DataSync(fd, new_path_);
    if (status.ok() && ::rename(new_path_.c_str(), path_.c_str()) != 0) {
      status = IoError(absl::StrCat("rename ", new_path_, " to"), path_, errno);
    }
    if (!status.ok()) {
      ::close(fd);
      ::unlink(new_path_.c_str());
      return status;
    }
    // From here the new file is the log, whether or not the directory sync
    // succeeds; both files hold the same state.
    ::close(fd_);
    fd_ = fd;
    file_bytes_ = static_cast<int64_t>(data.size());
    return SyncDir(options_.dir);
  }

  void AddPendingLocked(const pb::UsageRecord& record, absl::Time end,
                        int64_t frame_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const uint64_t position = next_position_++;
    pending_.emplace(position, PendingRecord{record, end, frame_bytes});
    index_.emplace(std::make_pair(record.allocation_id(), record.sequence()),
                   position);
    ++pending_count_[record.allocation_id()];
    ends_.insert(end);
    live_bytes_ += frame_bytes;
  }

  void RemovePendingLocked(const std::pair<std::string, int64_t>& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    auto p = pending_.find(it->second);
    live_bytes_ -= p->second.frame_bytes;
    ends_.erase(ends_.find(p->second.end));
    pending_.erase(p);
    index_.erase(it);
    auto count = pending_count_.find(key.first);
    if (--count->second == 0) pending_count_.erase(count);
  }

  void SetCursorInMemoryLocked(const std::string& allocation_id,
                               const Cursor& cursor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CursorState& state = cursors_[allocation_id];
    live_bytes_ -= state.frame_bytes;
    state.cursor = cursor;
    state.frame_bytes = FrameBytes(CursorEntry(allocation_id, cursor));
    live_bytes_ += state.frame_bytes;
  }

  void EraseCursorLocked(const std::string& allocation_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = cursors_.find(allocation_id);
    if (it == cursors_.end()) return;
    live_bytes_ -= it->second.frame_bytes;
    cursors_.erase(it);
  }

  // Constant after construction.
  const Options options_;
  const std::string path_;
  const std::string new_path_;

  mutable absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  int lock_fd_ ABSL_GUARDED_BY(mu_) = -1;
  // Size of the log; every write goes here.
  int64_t file_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Set when the log may hold part of a failed change.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, CursorState> cursors_ ABSL_GUARDED_BY(mu_);
  // Pending records by append position.
  std::map<uint64_t, PendingRecord> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t next_position_ ABSL_GUARDED_BY(mu_) = 0;
  // (allocation, sequence) -> position in pending_.
  std::map<std::pair<std::string, int64_t>, uint64_t> index_
      ABSL_GUARDED_BY(mu_);
  // Allocations with pending records and how many; none has zero.
  std::map<std::string, int64_t> pending_count_ ABSL_GUARDED_BY(mu_);
  std::multiset<absl::Time> ends_ ABSL_GUARDED_BY(mu_);
  // What a compacted log would hold: the frames of the pending records and
  // one cursor frame per allocation.
  int64_t live_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::StatusOr<std::unique_ptr<Spool>> Spool::Open(const Options& options) {
  if (options.dir.empty()) {
    return absl::InvalidArgumentError("dir: required");
  }
  if (options.max_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_bytes: must be positive, got ", options.max_bytes));
  }
  auto impl = std::make_unique<Impl>(options);
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Spool>(new Spool(std::move(impl)));
}

Spool::Spool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Spool::~Spool() = default;

absl::Status Spool::Append(const std::vector<pb::UsageRecord>& records) {
  return impl_->Append(records);
}

absl::Status Spool::SetCursor(const std::string& allocation_id,
                              const Cursor& cursor) {
  return impl_->SetCursor(allocation_id, cursor);
}

std::optional<Spool::Cursor> Spool::CursorOf(
    const std::string& allocation_id) const {
  return impl_->CursorOf(allocation_id);
}

std::vector<std::string> Spool::Allocations() const {
  return impl_->Allocations();
}

std::vector<pb::UsageRecord> Spool::Pending(size_t limit) const {
  return impl_->Pending(limit);
}

int64_t Spool::PendingOf(const std::string& allocation_id) const {
  return impl_->PendingOf(allocation_id);
}

absl::Status Spool::Acknowledge(
    const std::vector<std::pair<std::string, int64_t>>& acknowledged) {
  return impl_->Acknowledge(acknowledged);
}

absl::Status Spool::Forget(const std::string& allocation_id) {
  return impl_->Forget(allocation_id);
}

int64_t Spool::depth() const { return impl_->depth(); }
int64_t Spool::live_bytes() const { return impl_->live_bytes(); }
std::optional<absl::Time> Spool::oldest_pending_end() const {
  return impl_->oldest_pending_end();
}

}  // namespace computevoucher::agent
