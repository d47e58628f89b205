// Reading the command log ahead on a thread of its own, for the auditor's
// full replay (`verify`): while the replaying thread applies one stretch of
// commands, this thread reads and decodes the rows after it (inflating,
// parsing, and chaining the hashes of their entries), which is about half
// of a replay's work.
#ifndef COMPUTEVOUCHER_SCHEDULER_ENGINE_READ_AHEAD_H_
#define COMPUTEVOUCHER_SCHEDULER_ENGINE_READ_AHEAD_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/store/command_log.h"
#include "scheduler/store/usage_index.h"

namespace computevoucher::engine {

namespace pb = ::computevoucher::v1;

// A CommandLog and UsageIndex over `log` and `usage` (which must outlive
// it) that answers each sequential read (commands, journal entries, usage
// records in order, as replay reads them: without the records the
// commands hold, UsageQuery::records false) with what its thread read
// ahead, when the call goes on where the previous one of its kind ended and
// asks for as many. Any other call, and a read after one that came back
// short (the end, for now), goes to `log` or `usage` directly, so every
// call returns what a direct call would have returned at some moment since
// the reads began. The calls it makes to `log` and `usage` are serialised;
// calls the owner makes to them beside it (`verify` reads retired records
// from the same store) need them to be thread-safe, as the stores are.
class ReadAhead final : public store::CommandLog, public store::UsageIndex {
 public:
  ReadAhead(store::CommandLog& log, store::UsageIndex& usage);
  ~ReadAhead() override;  // stops and joins the thread
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                        int limit) override;
  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(int64_t after,
                                                            int limit) override;
  absl::StatusOr<std::vector<store::UsageRow>> ReadUsage(
      const store::UsageQuery& query) override;

  // Destroys `items`, which a read returned, on the thread: memory is
  // freed best on the thread that allocated it. Journal entries go back to
  // `log` (CommandLog::Recycle), on the thread too.
  template <typename Item>
  void Dispose(std::vector<Item> items) {
    auto garbage = std::make_shared<std::vector<Item>>(std::move(items));
    absl::MutexLock lock(&mu_);
    garbage_.push_back(std::move(garbage));
  }
  void Dispose(std::vector<pb::JournalEntry> entries) {
    absl::MutexLock lock(&mu_);
    recycled_.push_back(std::move(entries));
  }

  absl::Status Append(const store::Batch& batch) override;
  // The same as Dispose(entries).
  void Recycle(std::vector<pb::JournalEntry> entries) override {
    Dispose(std::move(entries));
  }
  void DropReadCache() override;
  int64_t DefaultBatchRecords() const override {
    return log_.DefaultBatchRecords();
  }
  absl::StatusOr<store::Head> ReadHead() override;
  absl::Status WriteSnapshot(const store::Snapshot& snapshot,
                             int keep) override;
  absl::StatusOr<std::vector<int64_t>> ListSnapshots() override;
  absl::StatusOr<store::Snapshot> ReadSnapshot(int64_t position) override;
  absl::StatusOr<store::Head> ScanUsage(
      const store::UsageQuery& query,
      const std::function<void(const pb::ChargedUsage&)>& fn) override;

 private:
  // One kind of sequential read and the chunks read ahead for it.
  template <typename Item>
  struct Stream {
    using Read = std::function<absl::StatusOr<std::vector<Item>>(int64_t, int)>;
    Read read;  // under source_mu_
    std::function<int64_t(const Item&)> position;
    bool started = false;  // a call gave where to start
    int limit = 0;
    int64_t next_after = 0;    // where the thread reads next
    int64_t expect_after = 0;  // where the next call served ahead starts
    int64_t generation = 0;    // bumped by a restart, to drop a stale read
    bool reading = false;      // the thread is reading it now
    bool ended = false;        // a read came back short or failed
    std::deque<absl::StatusOr<std::vector<Item>>> ready;
  };

  // Serves a read of the stream `kind` starting after `after`.
  template <typename Item>
  absl::StatusOr<std::vector<Item>> Take(Stream<Item> ReadAhead::*kind,
                                         int64_t after, int limit);
  // Reads the next chunk of `stream` for the thread, if it wants one;
  // returns whether it did. Called with mu_ held; releases it while reading.
  template <typename Item>
  bool Fill(Stream<Item>& stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the thread should read the next chunk of `stream`.
  template <typename Item>
  bool Wants(const Stream<Item>& stream) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Loop();

  // Serialises the calls to log_ and usage_.
  absl::Mutex source_mu_;
  store::CommandLog& log_;
  store::UsageIndex& usage_;

  absl::Mutex mu_;
  Stream<pb::Command> commands_ ABSL_GUARDED_BY(mu_);
  Stream<pb::JournalEntry> entries_ ABSL_GUARDED_BY(mu_);
  Stream<store::UsageRow> usage_rows_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::shared_ptr<void>> garbage_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<pb::JournalEntry>> recycled_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_SCHEDULER_ENGINE_READ_AHEAD_H_
