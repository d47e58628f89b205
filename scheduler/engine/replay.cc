#include "scheduler/engine/replay.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/util/message_differencer.h"

namespace computevoucher::engine {
namespace {

constexpr int kChunk = 4096;

}  // namespace

// Stored journal entries, read in chunks as replay consumes them.
class Replayer::JournalCursor {
 public:
  explicit JournalCursor(store::CommandLog& store) : store_(store) {}

  // The next stored entry, or nullopt at the end (for now: entries stored
  // later are read by a later call).
  absl::StatusOr<std::optional<pb::JournalEntry>> Next() {
    if (buffer_.empty()) {
      ASSIGN_OR_RETURN(std::vector<pb::JournalEntry> chunk,
                       store_.ReadJournal(after_, kChunk));
      for (pb::JournalEntry& e : chunk) buffer_.push_back(std::move(e));
      if (!buffer_.empty()) after_ = buffer_.back().sequence();
    }
    if (buffer_.empty()) return std::nullopt;
    pb::JournalEntry e = std::move(buffer_.front());
    buffer_.pop_front();
    return e;
  }

 private:
  store::CommandLog& store_;
  int64_t after_ = 0;
  std::deque<pb::JournalEntry> buffer_;
};

Replayer::Replayer(store::CommandLog& store, core::StateMachine& state)
    : store_(store),
      state_(state),
      cursor_(std::make_unique<JournalCursor>(store)) {}

Replayer::~Replayer() = default;

void Replayer::Mismatch(std::string message) {
  if (mismatches_.size() < 100) mismatches_.push_back(std::move(message));
}

absl::StatusOr<int64_t> Replayer::CatchUp(int64_t max_commands) {
  int64_t applied = 0;
  while (!stopped_ && (max_commands == 0 || applied < max_commands)) {
    ASSIGN_OR_RETURN(std::vector<pb::Command> commands,
                     store_.ReadCommands(after_, kChunk));
    for (const pb::Command& command : commands) {
      if (command.sequence() != after_ + 1) {
        Mismatch(absl::StrCat("command log has a gap: command ", after_ + 1,
                              " is missing (the next stored command is ",
                              command.sequence(), ")"));
        stopped_ = true;
        break;
      }
      absl::StatusOr<core::Outcome> outcome = state_.Apply(command);
      if (!outcome.ok() || !outcome->changed) {
        Mismatch(absl::StrCat(
            "command ", command.sequence(), " does not replay: ",
            outcome.ok() ? "it changes nothing" : outcome.status().ToString()));
        stopped_ = true;
        break;
      }
      after_ = command.sequence();
      ++report_.commands;
      ++applied;
      state_.TakeUsage();  // derived rows, stored by the writer; not needed
      // A command's entries are stored in the same transaction as the
      // command: they are there by now.
      for (const pb::JournalEntry& produced : state_.TakeJournal()) {
        ASSIGN_OR_RETURN(std::optional<pb::JournalEntry> stored,
                         cursor_->Next());
        if (!stored) {
          Mismatch(absl::StrCat("journal entry ", produced.sequence(),
                                " posted by command ", command.sequence(),
                                " is missing from the store"));
          continue;
        }
        if (!google::protobuf::util::MessageDifferencer::Equals(produced,
                                                                *stored)) {
          Mismatch(absl::StrCat("journal entry ", stored->sequence(),
                                " differs from what command ",
                                command.sequence(), " posts on replay"));
        }
        verifier_.Add(*stored);
      }
    }
    if (commands.size() < static_cast<size_t>(kChunk)) break;
  }
  return applied;
}

absl::StatusOr<ReplayReport> Replayer::Finish() {
  while (true) {
    ASSIGN_OR_RETURN(std::optional<pb::JournalEntry> stored, cursor_->Next());
    if (!stored) break;
    Mismatch(absl::StrCat("journal entry ", stored->sequence(),
                          " was posted by no stored command"));
    verifier_.Add(*stored);
  }
  ReplayReport report = report_;
  report.entries = verifier_.entries();
  report.last_hash = verifier_.last_hash();
  report.violations = verifier_.Check(state_);
  report.violations.insert(report.violations.begin(), mismatches_.begin(),
                           mismatches_.end());
  return report;
}

absl::Status CheckReport(const ReplayReport& report) {
  if (report.violations.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("the store breaks ", report.violations.size(),
                   " invariant(s); run `voucher-scheduler verify`. First: ",
                   report.violations.front()));
}

absl::StatusOr<ReplayReport> Replay(store::CommandLog& store,
                                    core::StateMachine& state) {
  Replayer replayer(store, state);
  RETURN_IF_ERROR(replayer.CatchUp().status());
  return replayer.Finish();
}

}  // namespace computevoucher::engine
