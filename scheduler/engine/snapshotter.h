// The writer's snapshots, taken off its path: a second copy of the state
// (the shadow) that applies each batch once the store has committed it, on
// a thread of its own, and stores a snapshot of itself when one is due. So
// the writer never stops to copy the state, and a snapshot only ever holds
// committed commands: a batch that fails to commit never reaches the
// shadow.
//
// The shadow starts from the store on the snapshotter's thread: the newest
// sound snapshot, then the stored commands up to the writer's starting
// position (which the writer's own start-up has checked); batches committed
// after it wait in memory meanwhile. If the shadow falls far behind (starved
// of CPU by a flood of usage), it is dropped, batches stop being queued for
// it, and it is built again from the store (the newest snapshot, then the
// stored commands up to the head) when the next snapshot is due: memory
// stays bounded and snapshots go on, one per rebuild. If the shadow ever
// disagrees with a committed command (a bug), snapshots stop until the next
// start, the log says why, and serving goes on.
#ifndef COMPUTEVOUCHER_SCHEDULER_ENGINE_SNAPSHOTTER_H_
#define COMPUTEVOUCHER_SCHEDULER_ENGINE_SNAPSHOTTER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "computevoucher/v1/journal.pb.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/command_log.h"

namespace computevoucher::engine {

namespace pb = ::computevoucher::v1;

struct SnapshotOptions {
  // A snapshot is stored once this many commands were committed since the
  // last one (a usage report counting one more for each record it carries,
  // which is what replaying it costs), or once `interval` passed with at
  // least one (0 / zero duration: not on that count; both: never); but
  // never sooner after the last one than `pause` times the CPU time it
  // took, so that snapshots take at most 1/pause of a core.
  int64_t every = 100'000;
  absl::Duration interval = absl::Minutes(10);
  // Snapshots kept in the store; older ones are dropped.
  int kept = 3;
  int pause = 10;
  // Committed commands and usage records waiting for the shadow past which
  // it is dropped and built again from the store (some 100 bytes each).
  int64_t max_behind = 2'000'000;
};

struct SnapshotStats {
  int64_t snapshots = 0;  // stored
  int64_t failures = 0;   // refused by the store
  int64_t last = 0;       // position of the last one stored
  int64_t last_bytes = 0;
  absl::Duration last_save = absl::ZeroDuration();   // saving the shadow
  absl::Duration last_store = absl::ZeroDuration();  // encoding and storing
  // Committed commands and usage records the shadow has not applied yet.
  int64_t behind = 0;
};

class Snapshotter {
 public:
  // `store` and `clock` must outlive the snapshotter. `start` is the last
  // command of the writer's state: every later one comes to Committed().
  Snapshotter(store::CommandLog& store, Clock& clock, SnapshotOptions options,
              int64_t start);
  ~Snapshotter();
  Snapshotter(const Snapshotter&) = delete;
  Snapshotter& operator=(const Snapshotter&) = delete;

  // The commands of a batch the store committed, in order. Quick: they are
  // applied on the snapshotter's thread.
  void Committed(std::vector<pb::Command> commands);

  // Joins the thread as soon as it is between two steps, leaving what it
  // has not applied yet and the snapshot it was about to store: the store
  // holds every committed command, and the next start replays those after
  // the newest snapshot, as after a kill. A leader that lost its lease
  // stops this way (the store would refuse its snapshot), and so does a
  // writer that is only destroyed. Idempotent.
  void Stop();

  // A planned stop: applies what was committed and stores a last snapshot,
  // due or not, at the last command committed (the copy built first if there
  // is none), unless the newest stored one is there already. Like every
  // snapshot it is of the copy, which only ever applied committed commands,
  // never of the writer's state (a command that changes nothing and is not
  // logged still moves that state's clock). The store's error, or
  // FailedPrecondition when snapshots were stopped (why) or this
  // snapshotter was stopped before.
  absl::Status StopWithSnapshot();

  SnapshotStats stats() const;

 private:
  void Run();
  // Stop() and StopWithSnapshot(): whether this call stopped it (and
  // `snapshot` applies).
  bool Halt(bool snapshot) ABSL_LOCKS_EXCLUDED(mu_);
  // Stop() was called: the thread is to return between two steps.
  bool Abandoned() const ABSL_LOCKS_EXCLUDED(mu_);
  bool AbandonedLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Builds the shadow from the store up to command `to`; false when it
  // cannot (logged) or Stop() was called.
  bool StartShadow(int64_t to);
  // Builds the shadow if there is none, applies `waiting` to it, and
  // stores a snapshot if one is due (`at_stop`: whether due or not); false
  // on failure (logged) or once Stop() was called.
  bool StartAndStore(std::deque<std::vector<pb::Command>>& waiting,
                     bool at_stop = false);
  // Applies `commands` to the shadow; false on a disagreement (logged) or
  // once Stop() was called.
  bool Apply(const std::vector<pb::Command>& commands);
  bool Due() const;
  // `at_stop`: the last one, its outcome kept for StopWithSnapshot().
  void Store(bool at_stop = false);
  void Disable(const std::string& why);

  store::CommandLog& store_;
  Clock& clock_;
  const SnapshotOptions options_;
  const int64_t start_;

  mutable absl::Mutex mu_;
  std::deque<std::vector<pb::Command>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Stopping with a last snapshot, and what storing it came to.
  bool snapshot_at_stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status stop_snapshot_ ABSL_GUARDED_BY(mu_);
  bool disabled_ ABSL_GUARDED_BY(mu_) = false;
  std::string disabled_why_ ABSL_GUARDED_BY(mu_);
  // Past options_.max_behind: the shadow is to be dropped, and until it is
  // built again committed batches are only counted.
  bool dropped_ ABSL_GUARDED_BY(mu_) = false;
  bool drop_pending_ ABSL_GUARDED_BY(mu_) = false;  // for the thread to do
  int64_t dropped_work_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_position_ ABSL_GUARDED_BY(mu_) = 0;
  SnapshotStats stats_ ABSL_GUARDED_BY(mu_);

  // Owned by the thread.
  std::unique_ptr<core::StateMachine> shadow_;
  bool rebuild_ = false;  // the shadow was dropped: build it up to the head
  int64_t saved_at_ = 0;  // position of the newest snapshot stored
  int64_t position_ = 0;  // of the last command committed
  int64_t work_ = 0;      // commands and records committed since
  absl::Time saved_time_;     // by the clock, for `interval`
  absl::Time stored_at_;      // by the machine's, for `pause`
  absl::Duration last_cost_;  // CPU time saving and storing the last took

  std::thread thread_;
  std::once_flag joined_;
};

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_SCHEDULER_ENGINE_SNAPSHOTTER_H_
