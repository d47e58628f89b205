#include "scheduler/engine/snapshotter.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/thread_name.h"
#include "scheduler/engine/log.h"
#include "scheduler/engine/snapshots.h"

namespace computevoucher::engine {
namespace {

// The snapshotter thread's nice value.
constexpr int kNice = 10;

// The CPU time this thread has used.
absl::Duration ThreadCpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

}  // namespace

Snapshotter::Snapshotter(store::CommandLog& store, Clock& clock,
                         SnapshotOptions options, int64_t start)
    : store_(store), clock_(clock), options_(options), start_(start) {
  thread_ = StartNamedThread("cv-snapshot", [this] { Run(); });
}

Snapshotter::~Snapshotter() { Stop(); }

void Snapshotter::Stop() { Halt(/*snapshot=*/false); }

absl::Status Snapshotter::StopWithSnapshot() {
  if (!Halt(/*snapshot=*/true)) {
    return absl::FailedPreconditionError("the snapshotter was stopped before");
  }
  absl::MutexLock lock(&mu_);
  if (disabled_) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshots were stopped: ", disabled_why_));
  }
  if (absl::IsAlreadyExists(stop_snapshot_)) return absl::OkStatus();
  return stop_snapshot_;
}

bool Snapshotter::Halt(bool snapshot) {
  bool first = false;
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      first = true;
      snapshot_at_stop_ = snapshot;
      stopping_ = true;
    }
  }
  // A second caller waits for the first one's join.
  std::call_once(joined_, [this] {
    if (thread_.joinable()) thread_.join();
  });
  return first;
}

bool Snapshotter::Abandoned() const {
  absl::ReaderMutexLock lock(&mu_);
  return AbandonedLocked();
}

bool Snapshotter::AbandonedLocked() const {
  return stopping_ && !snapshot_at_stop_;
}

SnapshotStats Snapshotter::stats() const {
  absl::MutexLock lock(&mu_);
  SnapshotStats stats = stats_;
  stats.behind = queued_ + dropped_work_;
  return stats;
}

void Snapshotter::Committed(std::vector<pb::Command> commands) {
  absl::MutexLock lock(&mu_);
  if (disabled_ || stopping_) return;
  int64_t work = 0;
  for (const pb::Command& c : commands) {
    work += 1 + c.report_usage().records_size();
  }
  if (!dropped_ && queued_ + work > options_.max_behind) {
    // The thread drops the shadow and what was queued, which is in the
    // store. It frees the queue itself: freeing millions of queued records
    // here, on the committer's thread, held up every commit (Allocate's
    // too) for a few hundred milliseconds.
    dropped_ = true;
    drop_pending_ = true;
    dropped_work_ = queued_;
    queued_ = 0;
  }
  if (dropped_) {
    dropped_work_ += work;
    if (!commands.empty()) {
      dropped_position_ =
          std::max(dropped_position_, commands.back().sequence());
    }
    return;
  }
  queued_ += work;
  queue_.push_back(std::move(commands));
}

void Snapshotter::Run() {
  // Below the threads that answer calls: on a busy machine snapshots wait,
  // not Allocate. (Linux: a thread's nice value is its own.)
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kNice);
  absl::StatusOr<std::vector<int64_t>> stored = store_.ListSnapshots();
  saved_at_ = stored.ok() && !stored->empty() ? stored->front() : 0;
  position_ = start_;
  work_ = start_ - saved_at_;  // the tail start-up replayed
  saved_time_ = clock_.Now();
  // Until a snapshot is due, committed batches only wait: the copy of the
  // state is built then, so that a start does not load the state twice at
  // once.
  std::deque<std::vector<pb::Command>> waiting;
  int64_t waiting_work = 0;
  if (Due() && !StartAndStore(waiting)) return;
  while (true) {
    std::deque<std::vector<pb::Command>> work;
    int64_t dropped_work = 0;
    bool drop = false;
    bool last_snapshot = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || dropped_work_ > 0 || drop_pending_ ||
               stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (AbandonedLocked()) return;
      // A planned stop, and everything applied.
      if (queue_.empty() && dropped_work_ == 0 && !drop_pending_) {
        last_snapshot = true;
      }
      work.swap(queue_);
      queued_ = 0;
      dropped_work = std::exchange(dropped_work_, 0);
      drop = std::exchange(drop_pending_, false);
      position_ = std::max(position_, dropped_position_);
    }
    if (last_snapshot) {
      // Unless the newest stored snapshot is at the last command already.
      if (position_ > saved_at_) StartAndStore(waiting, /*at_stop=*/true);
      return;
    }
    // Work counted while the shadow was dropped (batches committed before
    // a rebuild began may be counted after it ended: they are in the
    // store, and the rebuilt shadow has them).
    work_ += dropped_work;
    if (drop) {
      Log(absl::StrCat("snapshots: the copy of the state fell more than ",
                       options_.max_behind,
                       " commands and records behind; it is dropped and "
                       "built again from the store when the next snapshot "
                       "is due"));
      shadow_.reset();
      work.clear();  // queued before the drop, counted in dropped_work
      waiting.clear();
      waiting_work = 0;
      rebuild_ = true;
    }
    for (std::vector<pb::Command>& commands : work) {
      int64_t added = 0;
      for (const pb::Command& c : commands) {
        added += 1 + c.report_usage().records_size();
        position_ = std::max(position_, c.sequence());
      }
      work_ += added;
      if (shadow_ != nullptr) {
        if (!Apply(commands)) return;
      } else {
        waiting_work += added;
        waiting.push_back(std::move(commands));
      }
    }
    if ((Due() || waiting_work > options_.max_behind) &&
        !StartAndStore(waiting)) {
      return;
    }
    if (shadow_ != nullptr) waiting_work = 0;
  }
}

bool Snapshotter::StartAndStore(std::deque<std::vector<pb::Command>>& waiting,
                                bool at_stop) {
  if (shadow_ == nullptr) {
    int64_t to = start_;
    if (rebuild_) {
      // Batches committed from now on are queued again; those before are
      // in the store, up to its head.
      {
        absl::MutexLock lock(&mu_);
        dropped_ = false;
      }
      absl::StatusOr<store::Head> head = store_.ReadHead();
      if (!head.ok()) {
        Disable(absl::StrCat("cannot read the store's head: ",
                             head.status().message()));
        return false;
      }
      to = head->command_sequence;
      rebuild_ = false;
    }
    if (!StartShadow(to)) return false;
    for (const std::vector<pb::Command>& commands : waiting) {
      if (!Apply(commands)) return false;
    }
    waiting.clear();
  }
  if (!at_stop && Abandoned()) return false;
  if (at_stop || Due()) Store(at_stop);
  return true;
}

bool Snapshotter::StartShadow(int64_t to) {
  absl::StatusOr<Recovered> recovered = LoadNewestSnapshot(store_);
  if (!recovered.ok()) {
    Disable(absl::StrCat("cannot read the store's snapshots: ",
                         recovered.status().message()));
    return false;
  }
  shadow_ = std::move(recovered->state);
  // The writer's start-up checked these; later ones are appended while
  // they are read, so that the journal cannot be checked against them here.
  while (shadow_->last_command_sequence() < to) {
    const int64_t after = shadow_->last_command_sequence();
    absl::StatusOr<std::vector<pb::Command>> commands = store_.ReadCommands(
        after, static_cast<int>(std::min<int64_t>(4096, to - after)));
    if (!commands.ok() || commands->empty()) {
      Disable(absl::StrCat("cannot read the commands after ", after, ": ",
                           commands.ok() ? "there are none"
                                         : commands.status().message()));
      return false;
    }
    if (!Apply(*commands)) return false;
  }
  // The rows were decoded whole for their commands: their entries and usage
  // records, which nothing here reads, would stay in the store's cache.
  store_.DropReadCache();
  return true;
}

bool Snapshotter::Apply(const std::vector<pb::Command>& commands) {
  if (Abandoned()) return false;
  for (const pb::Command& command : commands) {
    const int64_t last = shadow_->last_command_sequence();
    if (command.sequence() <= last) continue;  // read from the store
    absl::StatusOr<core::Outcome> outcome =
        command.sequence() == last + 1
            ? shadow_->Apply(command)
            : absl::DataLossError(absl::StrCat("it follows command ", last));
    shadow_->DropOutputs();
    if (!outcome.ok() || !outcome->changed) {
      Disable(absl::StrCat("committed command ", command.sequence(),
                           " does not apply to the shadow state: ",
                           outcome.ok() ? "it changes nothing"
                                        : outcome.status().ToString()));
      return false;
    }
  }
  return true;
}

bool Snapshotter::Due() const {
  if (position_ <= saved_at_) return false;
  // At most a share of one core spent on snapshots, however fast commands
  // come: under a flood of usage the tail grows instead.
  if (absl::Now() - stored_at_ < options_.pause * last_cost_) return false;
  return (options_.every > 0 && work_ >= options_.every) ||
         (options_.interval > absl::ZeroDuration() &&
          clock_.Now() - saved_time_ >= options_.interval);
}

void Snapshotter::Store(bool at_stop) {
  const absl::Duration cpu_before = ThreadCpu();
  const absl::Time start = clock_.Now();
  const store::Snapshot encoded = EncodeSnapshot(shadow_->Save());
  const absl::Time saved = clock_.Now();
  const absl::Status written = store_.WriteSnapshot(encoded, options_.kept);
  const absl::Time end = clock_.Now();
  // Whether stored or not, the next try comes after as much work again.
  work_ = 0;
  saved_time_ = end;
  stored_at_ = absl::Now();
  last_cost_ = ThreadCpu() - cpu_before;
  absl::MutexLock lock(&mu_);
  if (at_stop) stop_snapshot_ = written;
  if (!written.ok()) {
    ++stats_.failures;
    Log(absl::StrCat("snapshot at command ", encoded.position,
                     " not stored: ", written.message()));
    return;
  }
  saved_at_ = encoded.position;
  ++stats_.snapshots;
  stats_.last = encoded.position;
  stats_.last_bytes = static_cast<int64_t>(encoded.state.size());
  stats_.last_save = saved - start;
  stats_.last_store = end - saved;
  Log(absl::StrCat("snapshot at command ", encoded.position, " stored",
                   at_stop ? " at stop" : "", ": ", encoded.state.size(),
                   " bytes, saved in ", absl::FormatDuration(stats_.last_save),
                   ", stored in ", absl::FormatDuration(stats_.last_store)));
}

void Snapshotter::Disable(const std::string& why) {
  Log(absl::StrCat("snapshots stopped until restart: ", why));
  shadow_.reset();
  absl::MutexLock lock(&mu_);
  disabled_ = true;
  disabled_why_ = why;
  queue_.clear();
  queued_ = 0;
}

}  // namespace computevoucher::engine
