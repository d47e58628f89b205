#include "scheduler/store/writer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "scheduler/store/replay.h"

namespace cv::store {

struct Writer::Pending {
  pb::Command command;
  absl::StatusOr<core::Outcome> result = absl::UnknownError("not processed");
  absl::Notification done;
};

namespace {

absl::StatusOr<std::unique_ptr<core::StateMachine>> Load(Store& store) {
  auto state = std::make_unique<core::StateMachine>();
  ASSIGN_OR_RETURN(const ReplayReport report, Replay(store, *state));
  if (!report.violations.empty()) {
    return absl::DataLossError(
        absl::StrCat("the store breaks ", report.violations.size(),
                     " invariant(s); run `voucher-scheduler verify`. First: ",
                     report.violations.front()));
  }
  return state;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Writer>> Writer::Open(Store& store, Clock& clock,
                                                     WriterOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<core::StateMachine> state, Load(store));
  return std::unique_ptr<Writer>(
      new Writer(store, clock, options, std::move(state)));
}

Writer::Writer(Store& store, Clock& clock, WriterOptions options,
               std::unique_ptr<core::StateMachine> state)
    : store_(store), clock_(clock), options_(options) {
  next_sequence_ = state->last_command_sequence() + 1;
  {
    absl::MutexLock lock(&state_mu_);
    state_ = std::move(state);
  }
  thread_ = std::thread([this] { Run(); });
}

Writer::~Writer() { Stop(); }

void Writer::Stop() {
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

WriterStats Writer::stats() const {
  absl::MutexLock lock(&queue_mu_);
  return stats_;
}

absl::StatusOr<core::Outcome> Writer::Submit(pb::Command command) {
  Pending pending;
  pending.command = std::move(command);
  {
    absl::MutexLock lock(&queue_mu_);
    if (stopping_) return absl::UnavailableError("scheduler is shutting down");
    if (failed_) {
      return absl::UnavailableError(
          "scheduler store failed; restart the scheduler");
    }
    queue_.push_back(&pending);
  }
  pending.done.WaitForNotification();
  return std::move(pending.result);
}

void Writer::Run() {
  std::vector<Pending*> batch;
  while (true) {
    batch.clear();
    {
      absl::MutexLock lock(&queue_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) {
        return !queue_.empty() || stopping_;
      };
      queue_mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, and everything answered
      const size_t n =
          std::min<size_t>(queue_.size(), options_.max_batch_commands);
      batch.assign(queue_.begin(), queue_.begin() + n);
      queue_.erase(queue_.begin(), queue_.begin() + n);
    }
    ProcessBatch(batch);
  }
}

void Writer::ProcessBatch(std::vector<Pending*>& batch) {
  Batch out;
  bool internal_error = false;
  int64_t rejected = 0;
  {
    absl::MutexLock lock(&state_mu_);
    for (Pending* p : batch) {
      pb::Command& command = p->command;
      // Time never runs backwards, whatever the clock does.
      const absl::Time time = std::max(clock_.Now(), state_->now());
      command.set_sequence(next_sequence_);
      *command.mutable_time() = ToProto(time);
      p->result = state_->Apply(command);
      if (!p->result.ok()) {
        ++rejected;
        if (p->result.status().code() == absl::StatusCode::kInternal)
          internal_error = true;
        continue;
      }
      if (p->result->changed) {
        ++next_sequence_;
        out.commands.push_back(command);
      }
    }
    out.entries = state_->TakeJournal();
  }

  absl::Status commit = absl::OkStatus();
  const absl::Time start = clock_.Now();
  if (internal_error) {
    commit = absl::InternalError(
        "a command broke an internal invariant; batch discarded");
  } else if (!out.commands.empty()) {
    commit = store_.Append(out);
  }
  const absl::Duration commit_time = clock_.Now() - start;
  if (!commit.ok()) {
    for (Pending* p : batch) {
      if (p->result.ok() ||
          p->result.status().code() != absl::StatusCode::kInternal) {
        p->result = absl::UnavailableError(
            absl::StrCat("not applied: ", commit.message(),
                         "; retry with the same request_id"));
      }
    }
    Reload();
  }
  {
    absl::MutexLock lock(&queue_mu_);
    if (commit.ok()) {
      if (!out.commands.empty()) ++stats_.batches;
      stats_.commands += static_cast<int64_t>(out.commands.size());
      stats_.entries += static_cast<int64_t>(out.entries.size());
      stats_.rejected += rejected;
      stats_.last_commit = commit_time;
    } else {
      ++stats_.store_failures;
    }
    stats_.last_batch_size = static_cast<int64_t>(batch.size());
  }
  for (Pending* p : batch) p->done.Notify();
}

void Writer::Reload() {
  absl::StatusOr<std::unique_ptr<core::StateMachine>> state = Load(store_);
  if (!state.ok()) {
    {
      absl::MutexLock lock(&queue_mu_);
      failed_ = true;
    }
    // What memory holds now includes the batch that never reached the
    // disk; serve nothing rather than that.
    absl::MutexLock lock(&state_mu_);
    state_ = std::make_unique<core::StateMachine>();
    return;
  }
  next_sequence_ = (*state)->last_command_sequence() + 1;
  absl::MutexLock lock(&state_mu_);
  state_ = *std::move(state);
}

}  // namespace cv::store
