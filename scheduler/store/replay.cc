#include "scheduler/store/replay.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/util/message_differencer.h"
#include "scheduler/core/verify.h"

namespace cv::store {
namespace {

constexpr int kChunk = 4096;

// Stored journal entries, read in chunks as replay consumes them.
class JournalCursor {
 public:
  explicit JournalCursor(Store& store) : store_(store) {}

  // The next stored entry, or nullopt at the end.
  absl::StatusOr<std::optional<pb::JournalEntry>> Next() {
    if (buffer_.empty() && !done_) {
      ASSIGN_OR_RETURN(std::vector<pb::JournalEntry> chunk,
                       store_.ReadJournal(after_, kChunk));
      done_ = chunk.size() < static_cast<size_t>(kChunk);
      for (pb::JournalEntry& e : chunk) buffer_.push_back(std::move(e));
      if (!buffer_.empty()) after_ = buffer_.back().sequence();
    }
    if (buffer_.empty()) return std::nullopt;
    pb::JournalEntry e = std::move(buffer_.front());
    buffer_.pop_front();
    return e;
  }

 private:
  Store& store_;
  int64_t after_ = 0;
  bool done_ = false;
  std::deque<pb::JournalEntry> buffer_;
};

}  // namespace

absl::StatusOr<ReplayReport> Replay(Store& store, core::StateMachine& state) {
  ReplayReport report;
  core::JournalVerifier verifier;
  JournalCursor cursor(store);
  std::vector<std::string> mismatches;
  auto mismatch = [&mismatches](std::string message) {
    if (mismatches.size() < 100) mismatches.push_back(std::move(message));
  };
  int64_t after = 0;
  bool stop = false;
  while (!stop) {
    ASSIGN_OR_RETURN(std::vector<pb::Command> commands,
                     store.ReadCommands(after, kChunk));
    if (commands.empty()) break;
    for (const pb::Command& command : commands) {
      if (command.sequence() != after + 1) {
        mismatch(absl::StrCat("command log has a gap: command ", after + 1,
                              " is missing (the next stored command is ",
                              command.sequence(), ")"));
        stop = true;
        break;
      }
      after = command.sequence();
      ++report.commands;
      absl::StatusOr<core::Outcome> outcome = state.Apply(command);
      if (!outcome.ok() || !outcome->changed) {
        mismatch(absl::StrCat(
            "command ", command.sequence(), " does not replay: ",
            outcome.ok() ? "it changes nothing" : outcome.status().ToString()));
        stop = true;
        break;
      }
      state.TakeUsage();  // derived rows, stored by the writer; not needed here
      for (const pb::JournalEntry& produced : state.TakeJournal()) {
        ASSIGN_OR_RETURN(std::optional<pb::JournalEntry> stored, cursor.Next());
        if (!stored) {
          mismatch(absl::StrCat("journal entry ", produced.sequence(),
                                " posted by command ", command.sequence(),
                                " is missing from the store"));
          continue;
        }
        if (!google::protobuf::util::MessageDifferencer::Equals(produced,
                                                                *stored)) {
          mismatch(absl::StrCat("journal entry ", stored->sequence(),
                                " differs from what command ",
                                command.sequence(), " posts on replay"));
        }
        verifier.Add(*stored);
      }
    }
  }
  while (true) {
    ASSIGN_OR_RETURN(std::optional<pb::JournalEntry> stored, cursor.Next());
    if (!stored) break;
    mismatch(absl::StrCat("journal entry ", stored->sequence(),
                          " was posted by no stored command"));
    verifier.Add(*stored);
  }
  report.entries = verifier.entries();
  report.last_hash = verifier.last_hash();
  report.violations = verifier.Check(state);
  report.violations.insert(report.violations.begin(), mismatches.begin(),
                           mismatches.end());
  return report;
}

}  // namespace cv::store
