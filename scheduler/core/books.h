// The books of the state machine: the ledger, the per-program sums kept
// current by posting, and the time and sequence of the command being
// applied, which every posted entry carries. The bottom of the components
// (registry, voucher book, placement, usage charging all post through it).
//
// Not thread-safe; owned by StateMachine.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_BOOKS_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_BOOKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "computevoucher/v1/journal.pb.h"
#include "computevoucher/v1/snapshot.pb.h"
#include "computevoucher/v1/types.pb.h"
#include "scheduler/core/ledger.h"
#include "scheduler/core/records.h"

namespace computevoucher::core {

// An entry moving `amount` from `credit` to `debit`, with its idempotency
// key; the caller adds the ids it is about.
pb::JournalEntry Entry(pb::EntryKind kind, std::string debit,
                       std::string credit, int64_t amount, std::string key);
// An entry about `allocation`, its voucher, program and provider.
pb::JournalEntry AllocationEntry(pb::EntryKind kind, std::string debit,
                                 std::string credit, int64_t amount,
                                 std::string key,
                                 const pb::Allocation& allocation);

class Books {
 public:
  Books() = default;
  Books(const Books&) = delete;
  Books& operator=(const Books&) = delete;

  // The time of the command being applied (of the last one between
  // commands); InfinitePast() before the first.
  absl::Time now() const { return now_; }
  void set_now(absl::Time now) { now_ = now; }
  // The sequence stamped on the entries the current command posts.
  void set_command_sequence(int64_t sequence) { command_sequence_ = sequence; }

  // Posts `entry` at now() and adds its amounts to the sums of `voucher` and
  // `allocation` (the records named by the entry's voucher_id and
  // allocation_id; null when it names none) and of its program. Errors: what
  // Ledger::Post refuses (nothing changed), Internal when a record passed
  // does not match the entry. An rvalue, as Ledger::Post.
  absl::Status Post(pb::JournalEntry&& entry, pb::Voucher* voucher = nullptr,
                    pb::Allocation* allocation = nullptr);

  // Ledger::Anchor at now(), for the current command.
  absl::Status Anchor(pb::JournalEntry entry) {
    entry.set_command_sequence(command_sequence_);
    return ledger_.Anchor(std::move(entry), now_);
  }

  int64_t Balance(absl::string_view account) const {
    return ledger_.Balance(account);
  }
  const Ledger& ledger() const { return ledger_; }
  Ledger& ledger() { return ledger_; }
  // The sums of `program_id`; all zero for a program without entries.
  ProgramTotals Totals(const std::string& program_id) const;

  // The books as a snapshot, and back into fresh books
  // (scheduler/core/snapshot.cc).
  void Save(pb::BooksSnapshot* out) const;
  absl::Status Load(const pb::BooksSnapshot& in);

 private:
  Ledger ledger_;
  absl::Time now_ = absl::InfinitePast();
  int64_t command_sequence_ = 0;
  absl::flat_hash_map<std::string, ProgramTotals> program_totals_;
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_BOOKS_H_
