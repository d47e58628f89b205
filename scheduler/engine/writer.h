// The single writer with group commit (DESIGN.md, "One writer, group
// commit").
//
// Submitters on any thread hand commands to the writer and block. One
// writer thread applies the waiting commands in order to the in-memory
// state machine; a committer thread writes a batch's commands and journal
// entries to the store in one transaction, and only then are its submitters
// answered. The two threads form a pipeline: while batch N commits, the
// writer keeps applying whatever arrives into batch N+1, which is handed
// over the moment N is durable (one batch in flight at a time).
// Reads run under a shared lock on the state machine and see only durable
// state: a read that saw a command whose batch is not committed yet waits
// for that commit, and reads again if the commit failed (as a Raft
// ReadIndex read waits for the commit index). Authentication alone reads
// the latest applied state without waiting (see ReadApplied).
//
// Every committed batch goes on to the snapshotter (snapshotter.h), which
// stores snapshots of the state off the writer's path.
//
// If the store fails to commit a batch (or a command trips an internal
// invariant), every command of the batch is answered Unavailable and the
// state is rebuilt from the store, so memory never runs ahead of disk. If
// even that rebuild fails, the writer refuses every later command and
// reads see an empty state (and failed() holds) until the scheduler is
// restarted.
#ifndef COMPUTEVOUCHER_SCHEDULER_ENGINE_WRITER_H_
#define COMPUTEVOUCHER_SCHEDULER_ENGINE_WRITER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/engine/snapshotter.h"
#include "scheduler/store/command_log.h"

namespace computevoucher::engine {

namespace pb = ::computevoucher::v1;

struct WriterOptions {
  // Most commands applied and committed in one transaction.
  int max_batch_commands = 8192;
  // Most usage records taken into one transaction (a single larger report
  // still goes whole); 0: the store's DefaultBatchRecords(), resolved once
  // when the writer starts. Bounds a commit's duration, and so how long an
  // interactive command can wait behind usage; a smaller bound means more
  // commits, each synced, so more CPU per record and less ingest (see the
  // store's reasons for its default).
  int64_t max_batch_records = 0;
  // Called on the committer thread after each transaction the store
  // committed, with the commands the batch answered and how long the commit
  // took (by the writer's clock), outside the writer's locks. For metrics;
  // it must be quick and must not call back into the writer. Empty: not
  // called.
  std::function<void(int64_t commands, absl::Duration commit)> on_commit;
  // Called with each audit event of a batch once the batch is durable and
  // its callers answered, in order, outside the writer's locks, on the
  // committer's thread (the server logs administrative changes). Empty: not
  // called.
  std::function<void(const pb::AuditEvent&)> on_audit;
  // When the snapshotter (snapshotter.h) stores a snapshot of the state.
  SnapshotOptions snapshots;
};

struct WriterStats {
  int64_t batches = 0;         // transactions committed
  int64_t commands = 0;        // commands logged
  int64_t entries = 0;         // journal entries written
  int64_t rejected = 0;        // commands refused by the state machine
  int64_t store_failures = 0;  // batches the store failed to commit
  // Failed commits since the last one that succeeded: while above 0 the
  // store is failing (a full disk) and every command is answered
  // Unavailable.
  int64_t consecutive_failures = 0;
  std::string last_failure;  // the store's message for the last one
  // Reads waiting now for the commit of state they read.
  int64_t reads_waiting = 0;
  int64_t last_batch_size = 0;  // commands submitted in the last batch
  SnapshotStats snapshots;
  absl::Duration last_commit = absl::ZeroDuration();
};

class Writer {
 public:
  // Rebuilds the state from `store` (refusing, with DataLoss, a store whose
  // journal breaks an invariant) and starts the writer thread. `store` and
  // `clock` must outlive the writer.
  static absl::StatusOr<std::unique_ptr<Writer>> Open(
      store::CommandLog& store, Clock& clock, WriterOptions options = {});
  // Starts the writer on `state`, which the caller rebuilt from `store`
  // and checked (a Replayer's state, once its report showed no violation).
  static std::unique_ptr<Writer> Start(
      store::CommandLog& store, Clock& clock, WriterOptions options,
      std::unique_ptr<core::StateMachine> state);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Stamps `command` with its sequence and time, applies it and returns once
  // its batch is durable. The state machine's errors come back as they are;
  // Unavailable means the command was not applied (writer stopped or store
  // failure) and may be retried with the same request_id. Thread-safe.
  absl::StatusOr<core::Outcome> Submit(pb::Command command);

  // Runs `fn(const core::StateMachine&)` under a shared lock and returns its
  // result once everything `fn` could see is durable: if the state included
  // a batch still being committed, waits for its commit, and runs `fn`
  // again should that commit fail (the state is then rebuilt without it).
  // So no reader ever sees an object, id or balance that a failed commit
  // took back. `fn` may run more than once and must not call the writer.
  template <typename Fn>
  auto Read(Fn&& fn) const {
    while (true) {
      Position seen;
      auto result = [&] {
        absl::ReaderMutexLock lock(&state_mu_);
        seen = PositionLocked();
        return fn(static_cast<const core::StateMachine&>(*state_));
      }();
      if (AwaitDurable(seen)) return result;
    }
  }

  // Runs `fn` on the latest applied state, which may include commands whose
  // batch is being committed, without waiting. Only for authentication: it
  // answers who is calling, not what the state holds, and the one thing a
  // not-yet-durable command can change there (a token revoked) errs on the
  // side of refusing; a new token's secret reaches its holder only after
  // the commit.
  template <typename Fn>
  auto ReadApplied(Fn&& fn) const {
    absl::ReaderMutexLock lock(&state_mu_);
    return fn(static_cast<const core::StateMachine&>(*state_));
  }

  // Stops accepting commands, answers those already queued, and joins the
  // writer thread; the snapshotter stops where it is, storing no snapshot
  // it has not begun (Snapshotter::Stop), as a kill would. Idempotent.
  void Stop();

  // A planned stop: stops serving as Stop() does, but the snapshotter
  // applies everything committed and stores a last snapshot at the last
  // command (unless the newest stored one is there), so that the next
  // start loads it and replays nothing. Not for a leader that lost its
  // lease: the store refuses its writes. The snapshotter's answer
  // (Snapshotter::StopWithSnapshot); the commands are durable either way,
  // and a start replays those after the newest snapshot.
  absl::Status Close();

  WriterStats stats() const;

  // True once the state could not be rebuilt after a failed commit: every
  // command is refused until the scheduler restarts.
  bool failed() const;

  // True while commits fail: the last one that reached the store failed,
  // less than kFailingFor ago (the store may recover by itself, a disk
  // freed, and a quiet scheduler commits nothing to show it), or failed()
  // holds.
  bool degraded() const;
  static constexpr absl::Duration kFailingFor = absl::Minutes(1);

 private:
  struct Pending;
  // Which state a reader saw: the state's generation (one per rebuild) and
  // the last command it includes.
  struct Position {
    int64_t generation = 0;
    int64_t sequence = 0;
  };
  Position PositionLocked() const ABSL_SHARED_LOCKS_REQUIRED(state_mu_);
  // Waits until the commands up to `seen` are durable (true), or the state
  // was rebuilt since (false: read again).
  bool AwaitDurable(Position seen) const;
  // Commands applied to the state, with the journal entries they posted,
  // waiting for (or in) their commit.
  struct Applied {
    store::Batch batch;
    std::vector<Pending*> pending;
    bool internal_error = false;
    int64_t rejected = 0;
  };
  Writer(store::CommandLog& store, Clock& clock, WriterOptions options,
         std::unique_ptr<core::StateMachine> state);
  // The batch the writer thread applies commands into before handing it to
  // the committer. Owned by the writer thread.
  struct Next {
    Applied applied;
    int64_t records = 0;  // usage records in `applied`
    // Something was applied since the last hand-off.
    bool filled() const { return !applied.pending.empty(); }
  };
  // What the writer thread does next.
  enum class Step {
    kApply,      // apply the commands taken
    kHandedOff,  // `next` went to the committer
    kRecover,    // a commit failed: discard what was applied after it
    kStop,       // stopping, and everything committed
  };
  // Stops taking commands, answers those queued, and joins the writer and
  // committer threads.
  void StopServing();
  void Run();
  // Waits for work and takes it: commands to apply into `taken` (usage
  // reports only while `next` has room for their records), `next` handed
  // to an idle committer, or a failed commit's error and submitters.
  Step TakeWork(Next& next, std::vector<Pending*>& taken,
                std::string& commit_error, std::vector<Pending*>& lost);
  void AwaitCommitterIdleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a command broke an internal invariant: waits for the batch in
  // flight, then discards everything applied since.
  void DropAfterInternalError(Next& next);
  void RunCommitter();
  // Applies `taken` and appends the result to `into`.
  void Apply(const std::vector<Pending*>& taken, Applied& into);
  // Answers every command of `pending` Unavailable (unless it already has
  // an internal error) and notifies the submitters.
  static void Fail(const std::vector<Pending*>& pending, absl::string_view why);
  // Rebuilds the state from the store, then fails `lost` (whose commands
  // the state no longer shows). Requires that no batch is in flight.
  void Discard(std::vector<Pending*> lost, absl::string_view why);
  // Replaces the state with one rebuilt from the store. Requires that no
  // batch is in flight.
  void Reload();

  store::CommandLog& store_;
  Clock& clock_;
  const WriterOptions options_;

  // Guards the queue, the committer's slot and the stats.
  mutable absl::Mutex mu_;
  // Waiting commands: usage reports in `bulk_`, everything else in
  // `urgent_`, which is applied first.
  std::deque<Pending*> urgent_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending*> bulk_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  // The batch being committed; empty when the committer is idle.
  std::optional<Applied> in_flight_ ABSL_GUARDED_BY(mu_);
  bool committer_stop_ ABSL_GUARDED_BY(mu_) = false;
  // Why the last commit failed, and its submitters, answered by the writer
  // thread only after the state no longer shows the lost batch.
  std::string commit_error_ ABSL_GUARDED_BY(mu_);
  static constexpr absl::Duration kFailureLogInterval = absl::Minutes(1);
  void LogFailureLocked(const absl::Status& commit, size_t commands,
                        absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When a failed commit was last logged, and how many were not since.
  absl::Time failure_logged_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t failures_not_logged_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_failure_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<Pending*> failed_pending_ ABSL_GUARDED_BY(mu_);
  WriterStats stats_ ABSL_GUARDED_BY(mu_);
  // The generation of the state and the last command of it known durable.
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t durable_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int64_t reads_waiting_ ABSL_GUARDED_BY(mu_) = 0;

  mutable absl::Mutex state_mu_;
  std::unique_ptr<core::StateMachine> state_ ABSL_GUARDED_BY(state_mu_);
  int64_t state_generation_ ABSL_GUARDED_BY(state_mu_) = 0;
  // Set when a command broke an internal invariant part way: what the
  // state holds until it is rebuilt is never durable.
  bool state_tainted_ ABSL_GUARDED_BY(state_mu_) = false;

  // Owned by the writer thread.
  int64_t next_sequence_ = 1;

  // Handed every committed batch by the committer.
  Snapshotter snapshotter_;
  std::thread thread_;
  std::thread committer_;
};

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_SCHEDULER_ENGINE_WRITER_H_
