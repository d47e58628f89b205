#include "scheduler/engine/writer.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "common/time_util.h"
#include "scheduler/core/audit.h"
#include "scheduler/engine/replay.h"

namespace computevoucher::engine {
namespace {

// Appends `from` to `to`, moving its items (taking it whole when `to` is
// empty).
template <typename T>
void MoveAppend(std::vector<T> from, std::vector<T>& to) {
  if (to.empty()) {
    to = std::move(from);
    return;
  }
  to.insert(to.end(), std::make_move_iterator(from.begin()),
            std::make_move_iterator(from.end()));
}

WriterOptions WithStoreDefaults(WriterOptions options,
                                const store::CommandLog& store) {
  if (options.max_batch_records == 0) {
    options.max_batch_records = store.DefaultBatchRecords();
  }
  return options;
}

}  // namespace

struct Writer::Pending {
  pb::Command command;
  absl::StatusOr<core::Outcome> result = absl::UnknownError("not processed");
  absl::Notification done;
};

absl::StatusOr<std::unique_ptr<Writer>> Writer::Open(store::CommandLog& store,
                                                     Clock& clock,
                                                     WriterOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<core::StateMachine> state, Recover(store));
  return Start(store, clock, std::move(options), std::move(state));
}

std::unique_ptr<Writer> Writer::Start(
    store::CommandLog& store, Clock& clock, WriterOptions options,
    std::unique_ptr<core::StateMachine> state) {
  return std::unique_ptr<Writer>(
      new Writer(store, clock, std::move(options), std::move(state)));
}

Writer::Writer(store::CommandLog& store, Clock& clock, WriterOptions options,
               std::unique_ptr<core::StateMachine> state)
    : store_(store),
      clock_(clock),
      options_(WithStoreDefaults(options, store)),
      snapshotter_(store, clock, options.snapshots,
                   state->last_command_sequence()) {
  next_sequence_ = state->last_command_sequence() + 1;
  {
    absl::MutexLock lock(&mu_);
    durable_sequence_ = state->last_command_sequence();
  }
  {
    absl::MutexLock lock(&state_mu_);
    state_ = std::move(state);
  }
  committer_ = StartNamedThread("cv-commit", [this] { RunCommitter(); });
  thread_ = StartNamedThread("cv-writer", [this] { Run(); });
}

Writer::~Writer() { Stop(); }

void Writer::Stop() {
  StopServing();
  snapshotter_.Stop();
}

absl::Status Writer::Close() {
  StopServing();
  return snapshotter_.StopWithSnapshot();
}

void Writer::StopServing() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  {
    absl::MutexLock lock(&mu_);
    committer_stop_ = true;
  }
  if (committer_.joinable()) committer_.join();
}

bool Writer::failed() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}

bool Writer::degraded() const {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  return failed_ || (stats_.consecutive_failures > 0 &&
                     now - last_failure_at_ < kFailingFor);
}

Writer::Position Writer::PositionLocked() const {
  return Position{state_generation_, state_tainted_
                                         ? std::numeric_limits<int64_t>::max()
                                         : state_->last_command_sequence()};
}

bool Writer::AwaitDurable(Position seen) const {
  absl::MutexLock lock(&mu_);
  auto settled = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return generation_ != seen.generation || durable_sequence_ >= seen.sequence;
  };
  if (!settled()) {
    // The batch in flight or the one after it is being committed: both
    // end, committed or discarded (Stop too waits for them).
    ++reads_waiting_;
    mu_.Await(absl::Condition(&settled));
    --reads_waiting_;
  }
  return generation_ == seen.generation;
}

WriterStats Writer::stats() const {
  absl::MutexLock lock(&mu_);
  WriterStats stats = stats_;
  stats.reads_waiting = reads_waiting_;
  stats.snapshots = snapshotter_.stats();
  return stats;
}

absl::StatusOr<core::Outcome> Writer::Submit(pb::Command command) {
  Pending pending;
  pending.command = std::move(command);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("scheduler is shutting down");
    if (failed_) {
      return absl::UnavailableError(
          "scheduler store failed; restart the scheduler");
    }
    (pending.command.has_report_usage() ? bulk_ : urgent_).push_back(&pending);
  }
  pending.done.WaitForNotification();
  return std::move(pending.result);
}

void Writer::Run() {
  Next next;
  std::vector<Pending*> taken;
  while (true) {
    taken.clear();
    std::string commit_error;
    std::vector<Pending*> lost;
    switch (TakeWork(next, taken, commit_error, lost)) {
      case Step::kStop:
        return;
      case Step::kHandedOff:
        continue;
      case Step::kRecover:
        lost.insert(lost.end(), next.applied.pending.begin(),
                    next.applied.pending.end());
        next = Next();
        Discard(std::move(lost), commit_error);
        continue;
      case Step::kApply:
        break;
    }
    Apply(taken, next.applied);
    if (next.applied.internal_error) DropAfterInternalError(next);
  }
}

Writer::Step Writer::TakeWork(Next& next, std::vector<Pending*>& taken,
                              std::string& commit_error,
                              std::vector<Pending*>& lost) {
  absl::MutexLock lock(&mu_);
  auto room = [&] {
    return next.applied.pending.size() <
           static_cast<size_t>(options_.max_batch_commands);
  };
  auto bulk_room = [&] {
    return room() && next.records < options_.max_batch_records;
  };
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !commit_error_.empty() || (room() && !urgent_.empty()) ||
           (next.filled() && !in_flight_) || (bulk_room() && !bulk_.empty()) ||
           (stopping_ && !next.filled() && !in_flight_ && urgent_.empty() &&
            bulk_.empty());
  };
  mu_.Await(absl::Condition(&ready));
  if (!commit_error_.empty()) {
    // The batch before `next` never reached the disk: nothing applied
    // after it may stand either.
    AwaitCommitterIdleLocked();
    commit_error = std::exchange(commit_error_, "");
    lost = std::exchange(failed_pending_, {});
    return Step::kRecover;
  }
  if (room() && !urgent_.empty()) {
    // Interactive commands go ahead of usage reports, so that an
    // Allocate waits for at most one commit of bounded size.
    const size_t n = std::min(urgent_.size(), options_.max_batch_commands -
                                                  next.applied.pending.size());
    taken.assign(urgent_.begin(), urgent_.begin() + n);
    urgent_.erase(urgent_.begin(), urgent_.begin() + n);
    return Step::kApply;
  }
  if (next.filled() && !in_flight_) {
    in_flight_ = std::move(next.applied);
    next = Next();
    return Step::kHandedOff;
  }
  if (bulk_room() && !bulk_.empty()) {
    while (!bulk_.empty() && bulk_room()) {
      next.records += bulk_.front()->command.report_usage().records_size();
      taken.push_back(bulk_.front());
      bulk_.pop_front();
    }
    return Step::kApply;
  }
  return Step::kStop;  // stopping, and everything committed
}

void Writer::AwaitCommitterIdleLocked() {
  auto idle = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !in_flight_; };
  mu_.Await(absl::Condition(&idle));
}

void Writer::DropAfterInternalError(Next& next) {
  // Wait for the batch in flight, then drop everything applied since.
  {
    absl::MutexLock lock(&mu_);
    AwaitCommitterIdleLocked();
    ++stats_.store_failures;
  }
  std::vector<Pending*> dropped = std::move(next.applied.pending);
  next = Next();
  Discard(std::move(dropped),
          "a command broke an internal invariant; batch discarded");
}

void Writer::Apply(const std::vector<Pending*>& taken, Applied& into) {
  absl::MutexLock lock(&state_mu_);
  for (Pending* p : taken) {
    into.pending.push_back(p);
    pb::Command& command = p->command;
    // Time never runs backwards, whatever the clock does.
    const absl::Time time = std::max(clock_.Now(), state_->now());
    command.set_sequence(next_sequence_);
    *command.mutable_time() = ToProto(time);
    p->result = state_->Apply(command);
    if (!p->result.ok()) {
      ++into.rejected;
      if (p->result.status().code() == absl::StatusCode::kInternal) {
        into.internal_error = true;
        state_tainted_ = true;
      }
      continue;
    }
    if (p->result->changed) {
      ++next_sequence_;
      if (std::optional<pb::AuditEvent> event =
              core::AuditEventOf(command, p->result->response.get())) {
        into.batch.audit.push_back(*std::move(event));
      }
      into.batch.commands.push_back(std::move(command));
    }
  }
  MoveAppend(state_->TakeUsage(), into.batch.usage);
  MoveAppend(state_->TakeRetired(), into.batch.retired);
  MoveAppend(state_->TakeRetiredVouchers(), into.batch.retired_vouchers);
  MoveAppend(state_->TakeJournal(), into.batch.entries);
}

void Writer::Fail(const std::vector<Pending*>& pending, absl::string_view why) {
  for (Pending* p : pending) {
    if (p->result.ok() ||
        p->result.status().code() != absl::StatusCode::kInternal) {
      p->result = absl::UnavailableError(absl::StrCat(
          "not applied: ", why, "; retry with the same request_id"));
    }
    p->done.Notify();
  }
}

void Writer::Discard(std::vector<Pending*> lost, absl::string_view why) {
  // Rebuild first, so that a submitter told "not applied" never reads the
  // lost commands afterwards.
  Reload();
  Fail(lost, why);
}

void Writer::RunCommitter() {
  while (true) {
    Applied* applied = nullptr;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return in_flight_.has_value() || committer_stop_;
      };
      mu_.Await(absl::Condition(&ready));
      if (!in_flight_.has_value()) return;
      applied = &*in_flight_;  // stays in the slot until committed
    }
    const absl::Time start = clock_.Now();
    absl::Status commit = absl::OkStatus();
    if (!applied->batch.commands.empty())
      commit = store_.Append(applied->batch);
    const absl::Duration commit_time = clock_.Now() - start;
    // Free the slot before waking the submitters, so that the writer can
    // hand over the next batch at once; the batch itself is freed here,
    // which keeps that work off the writer thread.
    Applied done;
    {
      absl::MutexLock lock(&mu_);
      done = *std::move(in_flight_);
      in_flight_.reset();
      if (commit.ok() && !done.batch.commands.empty()) {
        if (stats_.consecutive_failures > 0) {
          LogLine("voucher-scheduler",
                  absl::StrCat("store commits again after ",
                               stats_.consecutive_failures, " failed commits"));
          stats_.consecutive_failures = 0;
          failures_not_logged_ = 0;
        }
      }
      if (commit.ok()) {
        if (!done.batch.commands.empty()) {
          ++stats_.batches;
          durable_sequence_ = done.batch.commands.back().sequence();
        }
        stats_.commands += static_cast<int64_t>(done.batch.commands.size());
        stats_.entries += static_cast<int64_t>(done.batch.entries.size());
        stats_.rejected += done.rejected;
        stats_.last_commit = commit_time;
      } else {
        ++stats_.store_failures;
        ++stats_.consecutive_failures;
        stats_.last_failure = std::string(commit.message());
        commit_error_ = std::string(commit.message());
        failed_pending_ = done.pending;
        last_failure_at_ = clock_.Now();
        LogFailureLocked(commit, done.pending.size(), last_failure_at_);
      }
      stats_.last_batch_size = static_cast<int64_t>(done.pending.size());
    }
    if (commit.ok()) {
      if (options_.on_commit && !done.batch.commands.empty()) {
        options_.on_commit(static_cast<int64_t>(done.pending.size()),
                           commit_time);
      }
      for (Pending* p : done.pending) p->done.Notify();
      // After the answers, so that a slow log delays no caller.
      if (options_.on_audit) {
        for (const pb::AuditEvent& event : done.batch.audit) {
          options_.on_audit(event);
        }
      }
      if (!done.batch.commands.empty()) {
        snapshotter_.Committed(std::move(done.batch.commands));
      }
    }
  }
}

void Writer::LogFailureLocked(const absl::Status& commit, size_t commands,
                              absl::Time now) {
  // The first of a run of failures, then at most one line a minute: a full
  // disk fails every batch.
  if (stats_.consecutive_failures > 1 &&
      now - failure_logged_at_ < kFailureLogInterval) {
    ++failures_not_logged_;
    return;
  }
  LogLine(
      "voucher-scheduler",
      absl::StrCat("store commit failed: ", commit.message(), "; ", commands,
                   " commands answered UNAVAILABLE (clients retry), state "
                   "rebuilt from the store; ",
                   stats_.consecutive_failures, " failures in a row (",
                   failures_not_logged_, " not logged)"));
  failure_logged_at_ = now;
  failures_not_logged_ = 0;
}

void Writer::Reload() {
  absl::StatusOr<std::unique_ptr<core::StateMachine>> state = Recover(store_);
  if (!state.ok()) {
    // What memory holds now includes commands that never reached the disk;
    // serve nothing rather than that.
    state = std::make_unique<core::StateMachine>();
    absl::MutexLock lock(&mu_);
    failed_ = true;
  }
  next_sequence_ = (*state)->last_command_sequence() + 1;
  // Both locks, so that a reader of the old state wakes to read the new.
  absl::MutexLock state_lock(&state_mu_);
  state_ = *std::move(state);
  ++state_generation_;
  state_tainted_ = false;
  absl::MutexLock lock(&mu_);
  generation_ = state_generation_;
  durable_sequence_ = state_->last_command_sequence();
}

}  // namespace computevoucher::engine
