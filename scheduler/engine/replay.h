// Rebuilding the state machine from a store.
#ifndef COMPUTEVOUCHER_SCHEDULER_ENGINE_REPLAY_H_
#define COMPUTEVOUCHER_SCHEDULER_ENGINE_REPLAY_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "google/protobuf/message.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/core/verify.h"
#include "scheduler/engine/read_ahead.h"
#include "scheduler/store/command_log.h"
#include "scheduler/store/retired.h"
#include "scheduler/store/usage_index.h"

namespace computevoucher::engine {

namespace pb = ::computevoucher::v1;

struct ReplayReport {
  // The snapshot replay started from; 0 for the first command.
  int64_t snapshot = 0;
  // Stored snapshots compared with the state replayed to their position.
  int64_t snapshots_checked = 0;
  int64_t commands = 0;  // replayed
  int64_t entries = 0;
  // Usage records accepted on replay and checked against the stored ones
  // (0 when replay started from a snapshot).
  int64_t usage_records = 0;
  // Allocations retired on replay and checked against the stored final
  // views (0 when replay started from a snapshot).
  int64_t retired_allocations = 0;
  int64_t retired_vouchers = 0;  // the same for vouchers
  // Audit events of the replayed commands checked against the stored ones
  // (0 when replay started from a snapshot). Commands before the first
  // stored event were logged before events were stored and have none.
  int64_t audit_events = 0;
  std::string last_hash;
  // Broken invariants and differences between the stored journal and the
  // journal the replayed commands post; empty when the store is sound.
  std::vector<std::string> violations;
};

// Applies the stored commands, in order, to a state, checking each journal
// entry they post against the stored one, a chunk at a time: a follower
// replica keeps its state up to date this way while another replica
// writes, and only catches up the tail when it takes over.
class Replayer : private core::KnownHashes {
 public:
  // `store` and `state` must outlive the replayer. `state` is fresh, or
  // loaded from one of the store's snapshots: replay goes on after its last
  // command, and checks the journal from its journal head. With `usage`
  // and `retired` (which must outlive it too) and a fresh `state`, it also
  // checks each stored usage record against the one the replayed commands
  // accept, and each stored retired allocation against the one they retire
  // (a snapshot does not say where its records end, so a replay from one
  // cannot).
  Replayer(store::CommandLog& store, core::StateMachine& state,
           store::UsageIndex* usage = nullptr,
           store::RetiredRecords* retired = nullptr);

  // Reads the stored snapshots after the state's position, to compare each
  // with the state when replay reaches its position; one that is corrupt,
  // differs, or lies beyond the log is a violation in the report. Call
  // before the first CatchUp.
  absl::Status CheckStoredSnapshots();
  ~Replayer() override;
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  // Has `ahead` (which must outlive the replayer, and be the store it
  // reads) destroy what the replayer read once done with it, on the thread
  // that read it: freeing memory on the thread that allocated it costs
  // less. Call before the first CatchUp.
  void DisposeBy(ReadAhead& ahead);

  // Applies the commands stored since the last call, at most about
  // `max_commands` of them (0: all); returns how many it applied (0 when
  // caught up). After the first command that does not replay it applies
  // nothing more. Errors are I/O errors only.
  absl::StatusOr<int64_t> CatchUp(int64_t max_commands = 0);

  // Runs the JournalVerifier over the stored journal read so far, and
  // counts stored entries and usage records no command posted or accepted
  // as breaks. Call once, when
  // nothing is appended any more (no other replica leads) and after a
  // final CatchUp.
  absl::StatusOr<ReplayReport> Finish();

  int64_t commands() const { return report_.commands; }

 private:
  template <typename Item>
  class Cursor;
  void Mismatch(std::string message);
  // Leaves `items` to ahead_ to destroy, when set.
  template <typename Item>
  void Dispose(std::vector<Item> items) {
    if (ahead_ != nullptr) ahead_->Dispose(std::move(items));
  }
  // KnownHashes: the stored entry ahead at `entry`'s sequence, when equal.
  const std::string* HashOf(const pb::JournalEntry& entry) override;
  // Checks the usage records the last of `replayed` accepted against the
  // stored ones. `replayed`: the commands of the chunk replayed so far.
  absl::Status CheckUsage(absl::Span<const pb::Command> replayed);
  // The record of stored `row`, read without its record when it is kept in
  // a command's report: its own, or the one it points at. That is usually
  // a record of the command that accepted it, but can be an equal one an
  // earlier command of its batch carried too (a record sent again after a
  // retry, and accepted in the same batch): found among `replayed` (in
  // order, without gaps) when there, else read again from the store, with
  // its record, into `reread`. Null when there is no such record.
  absl::StatusOr<const pb::UsageRecord*> StoredRecord(
      const store::UsageRow& row, absl::Span<const pb::Command> replayed,
      store::UsageRow& reread);
  // Has the verifier forget the allocations and vouchers `command` retired,
  // and checks them against the stored ones. After the command's entries
  // were added.
  absl::Status CheckRetired(const pb::Command& command);
  // Compares `produced`, called `name`, with the one stored under its
  // `columns` (by_columns, its retired_at added), else says whether it is
  // stored at all (by_id).
  template <typename Message, typename Selection>
  absl::Status CompareRetired(const std::string& name,
                              absl::string_view columns,
                              const pb::Command& command,
                              const Message& produced, Selection by_columns,
                              Selection by_id);
  // Checks the audit event of `command` (answered `response`) against the
  // stored one, and that none is stored for a command that has none.
  absl::Status CheckAudit(const pb::Command& command,
                          const google::protobuf::Message* response);
  // The next stored audit event not yet checked, when `command` may have
  // one; nullptr at the end.
  absl::StatusOr<const pb::AuditEvent*> PeekAudit(int64_t command);
  // Counts the stored retired allocations and vouchers against those
  // retired on replay.
  absl::Status CountRetired();
  template <typename Selection>
  absl::Status CountStored(Selection query, absl::string_view what,
                           int64_t retired);
  // The retired records `query` selects, with a stored view that does not
  // parse reported as a break (no view read) rather than returned as an
  // error.
  template <typename Message, typename Selection>
  absl::StatusOr<std::vector<Message>> ReadRetired(const Selection& query);
  // Compares the state with the stored snapshot at its position, if any.
  void CompareSnapshot();

  store::CommandLog& store_;
  core::StateMachine& state_;
  std::unique_ptr<Cursor<pb::JournalEntry>> cursor_;
  ReadAhead* ahead_ = nullptr;                             // see DisposeBy
  store::UsageIndex* usage_ = nullptr;                     // null: unchecked
  std::unique_ptr<Cursor<store::UsageRow>> usage_cursor_;  // null: unchecked
  store::RetiredRecords* retired_ = nullptr;               // null: unchecked
  // Stored audit events read ahead, and the sequence read up to.
  std::deque<pb::AuditEvent> audit_ahead_;
  int64_t audit_read_ = 0;
  bool audit_started_ = false;     // a stored event was met
  bool audit_unreadable_ = false;  // a stored event does not parse
  // Every stored event of the commands up to this one was read.
  int64_t audit_complete_ = 0;
  int64_t commands_read_ = 0;  // the last command read from the store
  // The sequence of the first entry the command being applied posts.
  int64_t first_posted_ = 0;
  // By sequence - first_posted_: whether HashOf found the entry equal to
  // the stored one (then it need not be compared again).
  std::vector<bool> known_equal_;
  core::JournalVerifier verifier_;
  ReplayReport report_;
  std::vector<std::string> mismatches_;
  // Stored snapshots not reached yet, by position, as Comparable().
  std::map<int64_t, std::string> snapshots_;
  int64_t after_ = 0;  // last command applied
  bool stopped_ = false;
};

// DataLoss naming the first violation when `report` has any; OK otherwise.
absl::Status CheckReport(const ReplayReport& report);

// The auditor's check: applies every stored command from the first, in
// order, to `state` (which must be fresh), checks each journal entry the
// commands post, each usage record they accept and each allocation they
// retire (what statements and settlement read) against the stored one,
// runs the JournalVerifier over the stored journal, and compares every
// stored snapshot with the state at its position. `log`, `usage` and
// `retired` are the same store's. Errors are I/O errors only; what is
// wrong with the data is in the report.
absl::StatusOr<ReplayReport> Replay(store::CommandLog& log,
                                    store::UsageIndex& usage,
                                    store::RetiredRecords& retired,
                                    core::StateMachine& state);

// Frees what a finished replay of `store` leaves behind, so that what
// stays resident is what the replayed state needs, however long the tail
// was: the rows the store keeps decoded (CommandLog::DropReadCache; their
// usage records are unread) and the memory the replay freed, which the
// allocator would keep (ReleaseFreeMemory). For start-up and takeover,
// once the replayer is gone.
void ReleaseReplayMemory(store::CommandLog& store);

// Where a replay started and how much it replayed, for the log: "the
// snapshot at command S, then N commands replayed".
std::string DescribeStart(const ReplayReport& report);

// Start-up and takeover: the newest sound snapshot, then the commands after
// it replayed and checked as Replay does. DataLoss when that breaks an
// invariant. Errors are I/O errors only otherwise.
absl::StatusOr<std::unique_ptr<core::StateMachine>> Recover(
    store::CommandLog& store);

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_SCHEDULER_ENGINE_REPLAY_H_
