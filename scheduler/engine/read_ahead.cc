#include "scheduler/engine/read_ahead.h"

#include <algorithm>
#include <utility>

#include "common/thread_name.h"

namespace computevoucher::engine {
namespace {

// Chunks read ahead of each kind: enough for the thread to stay ahead, few
// enough that the rows they come from are still among those the store
// keeps decoded when the other kinds reach them.
constexpr size_t kDepth = 2;

}  // namespace

ReadAhead::ReadAhead(store::CommandLog& log, store::UsageIndex& usage)
    : log_(log), usage_(usage) {
  absl::MutexLock lock(&mu_);
  commands_.read = [this](int64_t after, int limit) {
    absl::MutexLock source(&source_mu_);
    return log_.ReadCommands(after, limit);
  };
  commands_.position = [](const pb::Command& c) { return c.sequence(); };
  entries_.read = [this](int64_t after, int limit) {
    absl::MutexLock source(&source_mu_);
    return log_.ReadJournal(after, limit);
  };
  entries_.position = [](const pb::JournalEntry& e) { return e.sequence(); };
  usage_rows_.read = [this](int64_t after, int limit) {
    store::UsageQuery query;
    query.after = after;
    query.limit = limit;
    query.records = false;
    absl::MutexLock source(&source_mu_);
    return usage_.ReadUsage(query);
  };
  usage_rows_.position = [](const store::UsageRow& r) { return r.position; };
  thread_ = StartNamedThread("cv-read-ahead", [this] { Loop(); });
}

ReadAhead::~ReadAhead() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

template <typename Item>
absl::StatusOr<std::vector<Item>> ReadAhead::Take(Stream<Item> ReadAhead::*kind,
                                                  int64_t after, int limit) {
  typename Stream<Item>::Read read;
  {
    absl::MutexLock lock(&mu_);
    Stream<Item>& stream = this->*kind;
    if (!stream.started || after != stream.expect_after ||
        limit != stream.limit) {
      // Not where the reads ahead go on: start them here.
      ++stream.generation;
      stream.ready.clear();
      stream.started = true;
      stream.limit = limit;
      stream.next_after = after;
      stream.expect_after = after;
      stream.ended = false;
    }
    mu_.Await(absl::Condition(
        +[](Stream<Item>* s) {
          return !s->ready.empty() || (s->ended && !s->reading);
        },
        &stream));
    if (!stream.ready.empty()) {
      absl::StatusOr<std::vector<Item>> chunk = std::move(stream.ready.front());
      stream.ready.pop_front();
      if (!chunk.ok()) {
        stream.started = false;  // the next call starts over
      } else if (!chunk->empty()) {
        stream.expect_after = stream.position(chunk->back());
      }
      return chunk;
    }
    read = stream.read;
  }
  // The reads ahead reached the end: items stored since are read directly.
  return read(after, limit);
}

template <typename Item>
bool ReadAhead::Wants(const Stream<Item>& stream) const {
  return stream.started && !stream.ended && !stream.reading &&
         stream.ready.size() < kDepth;
}

bool ReadAhead::HasWork() const {
  return stopping_ || !garbage_.empty() || !recycled_.empty() ||
         Wants(commands_) || Wants(entries_) || Wants(usage_rows_);
}

template <typename Item>
bool ReadAhead::Fill(Stream<Item>& stream) {
  if (!Wants(stream)) return false;
  const int64_t generation = stream.generation;
  const int64_t after = stream.next_after;
  const int limit = stream.limit;
  stream.reading = true;
  mu_.Unlock();
  absl::StatusOr<std::vector<Item>> chunk = stream.read(after, limit);
  mu_.Lock();
  stream.reading = false;
  if (generation != stream.generation) return true;  // restarted meanwhile
  if (!chunk.ok() || chunk->size() < static_cast<size_t>(limit)) {
    stream.ended = true;
  } else {
    stream.next_after = stream.position(chunk->back());
  }
  stream.ready.push_back(std::move(chunk));
  return true;
}

void ReadAhead::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(this, &ReadAhead::HasWork));
    if (stopping_) return;
    if (!garbage_.empty() || !recycled_.empty()) {
      std::vector<std::shared_ptr<void>> garbage = std::move(garbage_);
      garbage_.clear();
      std::vector<std::vector<pb::JournalEntry>> recycled =
          std::move(recycled_);
      recycled_.clear();
      mu_.Unlock();
      garbage.clear();
      {
        absl::MutexLock source(&source_mu_);
        for (std::vector<pb::JournalEntry>& entries : recycled)
          log_.Recycle(std::move(entries));
      }
      mu_.Lock();
    }
    // The kind with the fewest chunks ready first: the replay needs all
    // three to go on.
    const size_t fewest =
        std::min({Wants(commands_) ? commands_.ready.size() : kDepth,
                  Wants(entries_) ? entries_.ready.size() : kDepth,
                  Wants(usage_rows_) ? usage_rows_.ready.size() : kDepth});
    if (commands_.ready.size() == fewest && Fill(commands_)) continue;
    if (entries_.ready.size() == fewest && Fill(entries_)) continue;
    Fill(usage_rows_);
  }
}

absl::StatusOr<std::vector<pb::Command>> ReadAhead::ReadCommands(int64_t after,
                                                                 int limit) {
  return Take(&ReadAhead::commands_, after, limit);
}

absl::StatusOr<std::vector<pb::JournalEntry>> ReadAhead::ReadJournal(
    int64_t after, int limit) {
  return Take(&ReadAhead::entries_, after, limit);
}

absl::StatusOr<std::vector<store::UsageRow>> ReadAhead::ReadUsage(
    const store::UsageQuery& query) {
  if (query.filtered() || query.records) {
    absl::MutexLock source(&source_mu_);
    return usage_.ReadUsage(query);
  }
  return Take(&ReadAhead::usage_rows_, query.after, query.limit);
}

absl::Status ReadAhead::Append(const store::Batch& batch) {
  absl::MutexLock source(&source_mu_);
  return log_.Append(batch);
}

void ReadAhead::DropReadCache() {
  absl::MutexLock source(&source_mu_);
  log_.DropReadCache();
}

absl::StatusOr<store::Head> ReadAhead::ReadHead() {
  absl::MutexLock source(&source_mu_);
  return log_.ReadHead();
}

absl::Status ReadAhead::WriteSnapshot(const store::Snapshot& snapshot,
                                      int keep) {
  absl::MutexLock source(&source_mu_);
  return log_.WriteSnapshot(snapshot, keep);
}

absl::StatusOr<std::vector<int64_t>> ReadAhead::ListSnapshots() {
  absl::MutexLock source(&source_mu_);
  return log_.ListSnapshots();
}

absl::StatusOr<store::Snapshot> ReadAhead::ReadSnapshot(int64_t position) {
  absl::MutexLock source(&source_mu_);
  return log_.ReadSnapshot(position);
}

absl::StatusOr<store::Head> ReadAhead::ScanUsage(
    const store::UsageQuery& query,
    const std::function<void(const pb::ChargedUsage&)>& fn) {
  absl::MutexLock source(&source_mu_);
  return usage_.ScanUsage(query, fn);
}

}  // namespace computevoucher::engine
