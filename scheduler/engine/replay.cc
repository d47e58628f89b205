#include "scheduler/engine/replay.h"

#include <algorithm>
#include <functional>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "common/charged_usage.h"
#include "common/journal_hash.h"
#include "common/memory.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "scheduler/core/audit.h"
#include "scheduler/core/ledger.h"
#include "scheduler/engine/log.h"
#include "scheduler/engine/read_ahead.h"
#include "scheduler/engine/snapshots.h"

namespace computevoucher::engine {
namespace {

// Journal entries read at a time.
constexpr int kChunk = 4096;
// Commands read at a time: fewer, so that the commands read stay within the
// rows the store keeps decoded for the journal reads that follow (a usage
// report posts an entry for each record it carries).
constexpr int kCommandChunk = 256;

}  // namespace

// Stored journal entries or usage records, read in chunks as replay
// consumes them, from the store or, for `verify`, from a ReadAhead, which
// reads them on a thread of its own; the chunks consumed go back to it to
// be freed there (freed here, they cost more than the second thread saved).
template <typename Item>
class Replayer::Cursor {
 public:
  // Reads up to kChunk items after a position.
  using Read = std::function<absl::StatusOr<std::vector<Item>>(int64_t after)>;
  // The position of an item read.
  using Position = std::function<int64_t(const Item&)>;

  Cursor(Read read, Position position, int64_t after)
      : read_(std::move(read)), position_(std::move(position)), after_(after) {}

  // Where the items read go once handed out: destroyed here unless set.
  void set_dispose(std::function<void(std::vector<Item>)> dispose) {
    dispose_ = std::move(dispose);
  }

  // The next stored item, valid until the next call of Next() or Ahead();
  // null at the end (for now: items stored later are read by a later call).
  absl::StatusOr<const Item*> Next() {
    if (next_ == buffer_.size()) RETURN_IF_ERROR(ReadMore());
    if (next_ == buffer_.size()) return nullptr;
    return &buffer_[next_++];
  }

  // The item `k` places after the one Next() hands out next, reading on as
  // far as needed; null past the end, and when a read fails (the Next()
  // that gets there reads again and returns the error).
  const Item* Ahead(size_t k) {
    while (next_ + k >= buffer_.size()) {
      const size_t had = buffer_.size() - next_;
      if (!ReadMore().ok() || buffer_.size() - next_ == had) return nullptr;
    }
    return &buffer_[next_ + k];
  }

 private:
  // Reads the next chunk after the items not handed out yet. The buffer it
  // replaces goes to dispose_ whole, the items handed out with the shells
  // of those moved on.
  absl::Status ReadMore() {
    ASSIGN_OR_RETURN(std::vector<Item> more, read_(after_));
    if (more.empty()) return absl::OkStatus();
    after_ = position_(more.back());
    if (next_ < buffer_.size()) {
      std::vector<Item> joined;
      joined.reserve(buffer_.size() - next_ + more.size());
      std::move(buffer_.begin() + static_cast<std::ptrdiff_t>(next_),
                buffer_.end(), std::back_inserter(joined));
      std::move(more.begin(), more.end(), std::back_inserter(joined));
      more = std::move(joined);
    }
    if (dispose_) dispose_(std::move(buffer_));
    buffer_ = std::move(more);
    next_ = 0;
    return absl::OkStatus();
  }

  Read read_;
  Position position_;
  int64_t after_;
  std::function<void(std::vector<Item>)> dispose_;
  std::vector<Item> buffer_;
  size_t next_ = 0;  // the first of buffer_ not handed out
};

namespace {

// "usage record 7 (allocation AL-00000001, sequence 3)".
std::string NameUsage(int64_t position, const pb::UsageRecord& r) {
  return absl::StrCat("usage record ", position, " (allocation ",
                      r.allocation_id(), ", sequence ", r.sequence(), ")");
}

// The same for a stored one, by its record when known (null: the store has
// none), else by where it points: "usage record 7 (record 2 of command
// 12)".
std::string NameStored(const store::UsageRow& row,
                       const pb::UsageRecord* record) {
  if (record != nullptr) return NameUsage(row.position, *record);
  if (row.command == 0) return NameUsage(row.position, row.usage.record());
  return absl::StrCat("usage record ", row.position, " (record ",
                      row.record_index, " of command ", row.command, ")");
}

// The retired records `query` selects, and the id of one.
absl::StatusOr<std::vector<pb::Allocation>> ReadFrom(
    store::RetiredRecords& retired, const store::RetiredQuery& query) {
  return retired.ReadRetired(query);
}
absl::StatusOr<std::vector<pb::Voucher>> ReadFrom(
    store::RetiredRecords& retired, const store::RetiredVoucherQuery& query) {
  return retired.ReadRetiredVouchers(query);
}
absl::StatusOr<std::vector<pb::AuditEvent>> ReadFrom(
    store::RetiredRecords& retired, const store::AuditQuery& query) {
  return retired.ReadAudit(query);
}
const std::string& IdOf(const pb::Allocation& a) { return a.allocation_id(); }
const std::string& IdOf(const pb::Voucher& v) { return v.voucher_id(); }

}  // namespace

Replayer::Replayer(store::CommandLog& store, core::StateMachine& state,
                   store::UsageIndex* usage, store::RetiredRecords* retired)
    : store_(store),
      state_(state),
      cursor_(std::make_unique<Cursor<pb::JournalEntry>>(
          [&store](int64_t after) { return store.ReadJournal(after, kChunk); },
          [](const pb::JournalEntry& e) { return e.sequence(); },
          state.ledger().last_sequence())),
      after_(state.last_command_sequence()) {
  report_.snapshot = after_;
  if (after_ > 0) verifier_.StartFrom(state);
  if (usage != nullptr && after_ == 0) {
    usage_ = usage;
    usage_cursor_ = std::make_unique<Cursor<store::UsageRow>>(
        [usage](int64_t after) {
          store::UsageQuery query;
          query.after = after;
          query.limit = kChunk;
          query.records = false;  // those in the commands are compared there
          return usage->ReadUsage(query);
        },
        [](const store::UsageRow& row) { return row.position; }, 0);
  }
  if (after_ == 0) retired_ = retired;
}

void Replayer::DisposeBy(ReadAhead& ahead) {
  ahead_ = &ahead;
  auto dispose = [this](auto items) { Dispose(std::move(items)); };
  cursor_->set_dispose(dispose);
  if (usage_cursor_ != nullptr) usage_cursor_->set_dispose(dispose);
}

absl::Status Replayer::CheckStoredSnapshots() {
  ASSIGN_OR_RETURN(const std::vector<int64_t> positions,
                   store_.ListSnapshots());
  for (const int64_t position : positions) {
    // One the replay starts from or after is not compared: it is the start
    // (loaded and checked) or was superseded by it.
    if (position <= after_) continue;
    ASSIGN_OR_RETURN(const store::Snapshot stored,
                     store_.ReadSnapshot(position));
    absl::StatusOr<pb::StateSnapshot> saved = DecodeSnapshot(stored);
    if (!saved.ok()) {
      Mismatch(std::string(saved.status().message()));
      ++report_.snapshots_checked;
      continue;
    }
    snapshots_[position] = Comparable(*std::move(saved));
  }
  return absl::OkStatus();
}

void Replayer::CompareSnapshot() {
  auto it = snapshots_.find(after_);
  if (it == snapshots_.end()) return;
  if (Comparable(state_.Save()) != it->second) {
    Mismatch(absl::StrCat("snapshot at command ", after_,
                          " differs from the state replayed to it"));
  }
  ++report_.snapshots_checked;
  snapshots_.erase(it);
}

Replayer::~Replayer() = default;

void Replayer::Mismatch(std::string message) {
  if (mismatches_.size() < 100) mismatches_.push_back(std::move(message));
}

absl::StatusOr<int64_t> Replayer::CatchUp(int64_t max_commands) {
  int64_t applied = 0;
  while (!stopped_ && (max_commands == 0 || applied < max_commands)) {
    ASSIGN_OR_RETURN(std::vector<pb::Command> commands,
                     store_.ReadCommands(after_, kCommandChunk));
    if (!commands.empty()) commands_read_ = commands.back().sequence();
    for (size_t i = 0; i < commands.size(); ++i) {
      const pb::Command& command = commands[i];
      if (command.sequence() != after_ + 1) {
        Mismatch(absl::StrCat(
            "command log has a gap: command ", after_ + 1,
            " is missing (the next stored command is ", command.sequence(), ")",
            after_ == 0 ? "; if the history before it was archived, "
                          "replay needs a stored snapshot at or after it, "
                          "or `verify --archive DIR`"
                        : ""));
        stopped_ = true;
        break;
      }
      // The entries it posts are hashed by the stored ones they equal.
      first_posted_ = state_.ledger().last_sequence() + 1;
      known_equal_.clear();
      state_.set_known_hashes(this);
      absl::StatusOr<core::Outcome> outcome = state_.Apply(command);
      state_.set_known_hashes(nullptr);
      if (!outcome.ok() || !outcome->changed) {
        Mismatch(absl::StrCat(
            "command ", command.sequence(), " does not replay: ",
            outcome.ok() ? "it changes nothing" : outcome.status().ToString()));
        stopped_ = true;
        break;
      }
      after_ = command.sequence();
      ++report_.commands;
      CompareSnapshot();
      ++applied;
      RETURN_IF_ERROR(CheckUsage(absl::MakeConstSpan(commands.data(), i + 1)));
      RETURN_IF_ERROR(CheckAudit(command, outcome->response.get()));
      // A command's entries are stored in the same transaction as the
      // command: they are there by now.
      for (const pb::JournalEntry& produced : state_.TakeJournal()) {
        ASSIGN_OR_RETURN(const pb::JournalEntry* stored, cursor_->Next());
        if (!stored) {
          Mismatch(absl::StrCat("journal entry ", produced.sequence(),
                                " posted by command ", command.sequence(),
                                " is missing from the store"));
          continue;
        }
        // Equal to the entry the ledger posted and hashed, hash included:
        // then its hash is sound too, and need not be computed again.
        const size_t place =
            static_cast<size_t>(produced.sequence() - first_posted_);
        const bool equal =
            produced.hash() == stored->hash() &&
            ((place < known_equal_.size() && known_equal_[place]) ||
             SameContents(produced, *stored));
        if (!equal) {
          Mismatch(absl::StrCat("journal entry ", stored->sequence(),
                                " differs from what command ",
                                command.sequence(), " posts on replay"));
        }
        verifier_.Add(*stored, equal);
      }
      RETURN_IF_ERROR(CheckRetired(command));
    }
    const bool short_read =
        commands.size() < static_cast<size_t>(kCommandChunk);
    Dispose(std::move(commands));
    if (short_read) break;
  }
  return applied;
}

const std::string* Replayer::HashOf(const pb::JournalEntry& entry) {
  // The entries the command posted before this one are still in the cursor.
  if (entry.sequence() < first_posted_) return nullptr;
  const size_t place = static_cast<size_t>(entry.sequence() - first_posted_);
  const pb::JournalEntry* stored = cursor_->Ahead(place);
  if (stored == nullptr || !SameContents(entry, *stored)) return nullptr;
  if (known_equal_.size() <= place) known_equal_.resize(place + 1);
  known_equal_[place] = true;
  return &stored->hash();
}

absl::Status Replayer::CheckUsage(absl::Span<const pb::Command> replayed) {
  const pb::Command& command = replayed.back();
  std::vector<pb::ChargedUsage> accepted = state_.TakeUsage();
  if (usage_cursor_ == nullptr) return absl::OkStatus();
  for (const pb::ChargedUsage& produced : accepted) {
    ++report_.usage_records;
    ASSIGN_OR_RETURN(const store::UsageRow* stored, usage_cursor_->Next());
    if (stored == nullptr) {
      Mismatch(absl::StrCat(NameUsage(report_.usage_records, produced.record()),
                            " accepted by command ", command.sequence(),
                            " is missing from the store"));
    } else {
      store::UsageRow reread;
      ASSIGN_OR_RETURN(const pb::UsageRecord* record,
                       StoredRecord(*stored, replayed, reread));
      if (record == nullptr || !SameCharge(produced, stored->usage, *record)) {
        Mismatch(absl::StrCat(NameStored(*stored, record),
                              " differs from what command ", command.sequence(),
                              " accepts on replay"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<const pb::UsageRecord*> Replayer::StoredRecord(
    const store::UsageRow& row, absl::Span<const pb::Command> replayed,
    store::UsageRow& reread) {
  if (row.command == 0) return &row.usage.record();
  // Their sequences have no gaps.
  const int64_t index =
      replayed.empty() ? -1 : row.command - replayed.front().sequence();
  if (index >= 0 && index < static_cast<int64_t>(replayed.size())) {
    const auto& records =
        replayed[static_cast<size_t>(index)].report_usage().records();
    if (row.record_index < 0 || row.record_index >= records.size()) {
      return nullptr;
    }
    return &records[row.record_index];
  }
  // A command replayed before these: read the record again with its row.
  store::UsageQuery query;
  query.after = row.position - 1;
  query.limit = 1;
  ASSIGN_OR_RETURN(std::vector<store::UsageRow> rows, usage_->ReadUsage(query));
  if (rows.empty() || rows[0].position != row.position) return nullptr;
  reread = std::move(rows[0]);
  return &reread.usage.record();
}

absl::Status Replayer::CheckRetired(const pb::Command& command) {
  const std::vector<pb::Allocation> retired = state_.TakeRetired();
  const std::vector<pb::Voucher> vouchers = state_.TakeRetiredVouchers();
  for (const pb::Allocation& produced : retired) verifier_.Forget(produced);
  for (const pb::Voucher& produced : vouchers) verifier_.Forget(produced);
  if (retired_ == nullptr) return absl::OkStatus();
  for (const pb::Allocation& produced : retired) {
    ++report_.retired_allocations;
    // Readers find it by these columns: they must be its own.
    store::RetiredQuery query;
    query.allocation_id = produced.allocation_id();
    query.enterprise_id = produced.enterprise_id();
    query.provider_id = produced.provider_id();
    query.cluster_id = produced.cluster_id();
    query.voucher_id = produced.voucher_id();
    store::RetiredQuery by_id;
    by_id.allocation_id = produced.allocation_id();
    RETURN_IF_ERROR(CompareRetired(
        absl::StrCat("retired allocation ", produced.allocation_id()),
        "an enterprise, provider, cluster, voucher", command, produced, query,
        by_id));
  }
  for (const pb::Voucher& produced : vouchers) {
    ++report_.retired_vouchers;
    store::RetiredVoucherQuery query;
    query.voucher_id = produced.voucher_id();
    query.program_id = produced.program_id();
    query.enterprise_id = produced.enterprise_id();
    query.state = pb::VoucherState_Name(produced.state());
    store::RetiredVoucherQuery by_id;
    by_id.voucher_id = produced.voucher_id();
    RETURN_IF_ERROR(CompareRetired(
        absl::StrCat("retired voucher ", produced.voucher_id()),
        "a program, enterprise, state", command, produced, query, by_id));
  }
  return absl::OkStatus();
}

template <typename Message, typename Selection>
absl::Status Replayer::CompareRetired(const std::string& name,
                                      absl::string_view columns,
                                      const pb::Command& command,
                                      const Message& produced,
                                      Selection by_columns, Selection by_id) {
  ASSIGN_OR_RETURN(by_columns.retired_from,
                   FromProto("retired_at", produced.retired_at()));
  by_columns.retired_until = by_columns.retired_from;
  by_columns.limit = 1;
  by_id.limit = 1;
  ASSIGN_OR_RETURN(std::vector<Message> stored,
                   ReadRetired<Message>(by_columns));
  if (stored.empty()) {
    ASSIGN_OR_RETURN(stored, ReadRetired<Message>(by_id));
    Mismatch(absl::StrCat(name, ", retired by command ", command.sequence(),
                          stored.empty()
                              ? std::string(", is missing from the store")
                              : absl::StrCat(", is stored under ", columns,
                                             " or time other than its own")));
  } else if (!google::protobuf::util::MessageDifferencer::Equals(stored.front(),
                                                                 produced)) {
    Mismatch(absl::StrCat(name, " differs from what command ",
                          command.sequence(), " retires on replay"));
  }
  return absl::OkStatus();
}

template <typename Message, typename Selection>
absl::StatusOr<std::vector<Message>> Replayer::ReadRetired(
    const Selection& query) {
  absl::StatusOr<std::vector<Message>> read = ReadFrom(*retired_, query);
  if (read.status().code() == absl::StatusCode::kDataLoss) {
    Mismatch(std::string(read.status().message()));
    return std::vector<Message>();
  }
  return read;
}

absl::StatusOr<const pb::AuditEvent*> Replayer::PeekAudit(int64_t command) {
  // An event is stored with its command: none is stored for a command read
  // before a read that found no more.
  if (audit_ahead_.empty() && !audit_unreadable_ && command > audit_complete_) {
    const int64_t commands_read = commands_read_;
    store::AuditQuery query;
    query.after = audit_read_;
    query.limit = 1000;
    absl::StatusOr<std::vector<pb::AuditEvent>> page =
        ReadFrom(*retired_, query);
    if (page.status().code() == absl::StatusCode::kDataLoss) {
      // Reported once; the events after it go unchecked.
      Mismatch(std::string(page.status().message()));
      audit_unreadable_ = true;
      return nullptr;
    }
    if (!page.ok()) return page.status();
    if (page->size() < static_cast<size_t>(query.limit))
      audit_complete_ = commands_read;
    for (pb::AuditEvent& e : *page) audit_ahead_.push_back(std::move(e));
    if (!audit_ahead_.empty()) audit_read_ = audit_ahead_.back().sequence();
  }
  return audit_ahead_.empty() ? nullptr : &audit_ahead_.front();
}

absl::Status Replayer::CheckAudit(const pb::Command& command,
                                  const google::protobuf::Message* response) {
  if (retired_ == nullptr) return absl::OkStatus();
  // Stored for a command before this one that has no event: forged.
  ASSIGN_OR_RETURN(const pb::AuditEvent* stored, PeekAudit(command.sequence()));
  while (stored != nullptr && stored->sequence() < command.sequence()) {
    Mismatch(absl::StrCat("audit event of command ", stored->sequence(),
                          " is stored, but that command sends none"));
    audit_started_ = true;
    audit_ahead_.pop_front();
    ASSIGN_OR_RETURN(stored, PeekAudit(command.sequence()));
  }
  const std::optional<pb::AuditEvent> produced =
      core::AuditEventOf(command, response);
  if (!produced) return absl::OkStatus();
  if (stored == nullptr || stored->sequence() != command.sequence()) {
    if (audit_started_) {
      Mismatch(absl::StrCat("audit event of command ", command.sequence(),
                            " is missing from the store"));
    }
    return absl::OkStatus();
  }
  audit_started_ = true;
  ++report_.audit_events;
  if (!google::protobuf::util::MessageDifferencer::Equals(*stored, *produced)) {
    Mismatch(absl::StrCat("audit event of command ", command.sequence(),
                          " differs from the command's"));
  }
  audit_ahead_.pop_front();
  return absl::OkStatus();
}

absl::Status Replayer::CountRetired() {
  if (retired_ == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(CountStored(store::RetiredQuery(), "allocations",
                              report_.retired_allocations));
  return CountStored(store::RetiredVoucherQuery(), "vouchers",
                     report_.retired_vouchers);
}

template <typename Selection>
absl::Status Replayer::CountStored(Selection query, absl::string_view what,
                                   int64_t retired) {
  query.limit = 10'000;
  // Not those a leader still running retired after the commands replayed.
  query.retired_until = state_.now();
  int64_t stored = 0;
  while (true) {
    auto page = ReadFrom(*retired_, query);
    if (page.status().code() == absl::StatusCode::kDataLoss) {
      return absl::OkStatus();  // reported where it was read
    }
    if (!page.ok()) return page.status();
    stored += static_cast<int64_t>(page->size());
    if (page->size() < static_cast<size_t>(query.limit)) break;
    query.after_id = IdOf(page->back());
  }
  if (stored != retired) {
    Mismatch(absl::StrCat("the store holds ", stored, " retired ", what,
                          "; the stored commands retire ", retired));
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplayReport> Replayer::Finish() {
  while (true) {
    ASSIGN_OR_RETURN(const pb::JournalEntry* stored, cursor_->Next());
    if (!stored) break;
    Mismatch(absl::StrCat("journal entry ", stored->sequence(),
                          " was posted by no stored command"));
    verifier_.Add(*stored);
  }
  while (usage_cursor_ != nullptr) {
    ASSIGN_OR_RETURN(const store::UsageRow* stored, usage_cursor_->Next());
    if (!stored) break;
    store::UsageRow reread;
    ASSIGN_OR_RETURN(const pb::UsageRecord* record,
                     StoredRecord(*stored, {}, reread));
    Mismatch(absl::StrCat(NameStored(*stored, record),
                          " was accepted by no stored command"));
  }
  RETURN_IF_ERROR(CountRetired());
  while (retired_ != nullptr) {
    ASSIGN_OR_RETURN(const pb::AuditEvent* stored, PeekAudit(after_));
    // Not those of commands a leader still running applied since.
    if (stored == nullptr || stored->sequence() > after_) break;
    Mismatch(absl::StrCat("audit event of command ", stored->sequence(),
                          " is stored, but that command sends none"));
    audit_ahead_.pop_front();
  }
  for (const auto& [position, unused] : snapshots_) {
    Mismatch(absl::StrCat("snapshot at command ", position,
                          " is beyond the last stored command ", after_));
    ++report_.snapshots_checked;
  }
  snapshots_.clear();
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

absl::StatusOr<ReplayReport> Replay(store::CommandLog& log,
                                    store::UsageIndex& usage,
                                    store::RetiredRecords& retired,
                                    core::StateMachine& state) {
  // The rows are read and decoded on a thread of their own while the
  // commands are applied.
  ReadAhead ahead(log, usage);
  Replayer replayer(ahead, state, &ahead, &retired);
  replayer.DisposeBy(ahead);
  RETURN_IF_ERROR(replayer.CheckStoredSnapshots());
  RETURN_IF_ERROR(replayer.CatchUp().status());
  return replayer.Finish();
}

void ReleaseReplayMemory(store::CommandLog& store) {
  store.DropReadCache();
  ReleaseFreeMemory();
}

std::string DescribeStart(const ReplayReport& report) {
  if (report.snapshot == 0) {
    return absl::StrCat(report.commands, " commands replayed from the first");
  }
  return absl::StrCat("the snapshot at command ", report.snapshot, ", then ",
                      report.commands, " commands replayed");
}

absl::StatusOr<std::unique_ptr<core::StateMachine>> Recover(
    store::CommandLog& store) {
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(Recovered recovered, LoadNewestSnapshot(store));
  ReplayReport report;
  {
    Replayer replayer(store, *recovered.state);
    RETURN_IF_ERROR(replayer.CatchUp().status());
    ASSIGN_OR_RETURN(report, replayer.Finish());
  }
  ReleaseReplayMemory(store);
  RETURN_IF_ERROR(CheckReport(report));
  Log(absl::StrCat("state recovered in ",
                   absl::FormatDuration(absl::Now() - start), ": ",
                   DescribeStart(report)));
  return std::move(recovered.state);
}

}  // namespace computevoucher::engine
