// The double-entry journal: accounts, entries, the hash chain, idempotency
// keys and cached balances (DESIGN.md, "Money flow").
//
// Accounts are named by strings built with the helpers below. Value moves
// from an entry's credit account to its debit account. Only program source
// accounts (where a program's budget comes from) may go negative.
//
// Not thread-safe: owned by the state machine, which is driven by one
// writer thread.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_LEDGER_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_LEDGER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/journal_hash.h"
#include "computevoucher/v1/snapshot.pb.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::core {

// The form of one kind of account's name: prefix, id, suffix.
struct AccountForm {
  absl::string_view prefix;
  absl::string_view suffix;

  std::string Name(absl::string_view id) const;
  // Whether `account` is Name(id), without building that name (the
  // verifier checks the accounts of every entry).
  bool Names(absl::string_view account, absl::string_view id) const;
};

inline constexpr AccountForm kProgramSourceForm{"program/", "/source"};
inline constexpr AccountForm kProgramBudgetForm{"program/", "/budget"};
inline constexpr AccountForm kVoucherForm{"voucher/", ""};
inline constexpr AccountForm kHoldForm{"hold/", ""};
inline constexpr AccountForm kPayableForm{"provider/", "/payable"};
inline constexpr AccountForm kPaidForm{"provider/", "/paid"};

std::string ProgramSourceAccount(absl::string_view program_id);
std::string ProgramBudgetAccount(absl::string_view program_id);
std::string VoucherAccount(absl::string_view voucher_id);
std::string HoldAccount(absl::string_view allocation_id);
std::string PayableAccount(absl::string_view provider_id);
std::string PaidAccount(absl::string_view provider_id);

// Where a replay finds the hashes of the entries its commands post again:
// the stored entries, whose hashes the reader computed from their contents
// (a store's rows and an archive's parts alike; a hash read as written
// would let a forged one through). Saves hashing every entry twice on
// replay.
class KnownHashes {
 public:
  virtual ~KnownHashes() = default;
  // The hash of the stored entry at `entry`'s sequence when its contents
  // (SameContents, prev_hash included) equal `entry`'s; null otherwise.
  virtual const std::string* HashOf(
      const computevoucher::v1::JournalEntry& entry) = 0;
};

// True for accounts allowed to go negative.
bool IsSourceAccount(absl::string_view account);
// The idempotency key of the anchor of the archive through command
// `through_command` (ArchiveCommand.through.command).
std::string ArchiveKey(int64_t through_command);

class Ledger {
 public:
  Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Checks that `entry` could be posted: amount > 0, two distinct
  // accounts, an unused idempotency key, and a credit account (unless a
  // source account) holding at least the amount. FailedPrecondition or
  // AlreadyExists otherwise; changes nothing.
  //
  // A usage charge (usage_sequence > 0) is unique by its allocation and
  // sequence: its sequence must be above the allocation's last charged one.
  // Only that mark is kept for it, not its key, so that memory grows with
  // allocations rather than with every usage record ever charged.
  absl::Status CheckPost(const computevoucher::v1::JournalEntry& entry) const;

  // CheckPost, then appends `entry` with its sequence, time and hashes
  // filled in, and updates the cached balances. Takes an rvalue: moving a
  // protobuf message builds one and swaps every field, and a replay posts
  // an entry for nearly every usage record.
  absl::Status Post(computevoucher::v1::JournalEntry&& entry, absl::Time time);
  // Appends `entry`, an ENTRY_KIND_ARCHIVE entry (no accounts, amount 0),
  // with its sequence, time and hashes filled in. It moves nothing: it puts
  // an archive's description (its memo) into the hash chain. AlreadyExists
  // when its idempotency key was used; InvalidArgument when it is not such
  // an entry.
  absl::Status Anchor(computevoucher::v1::JournalEntry entry, absl::Time time);
  // The entry posted last since TakePosted(); requires one.
  const computevoucher::v1::JournalEntry& LastPosted() const {
    return posted_.back();
  }

  // Cached balance of `account`; 0 for an account never used.
  int64_t Balance(absl::string_view account) const;
  // Every account with its balance (accounts whose entries net to zero
  // included).
  const absl::flat_hash_map<std::string, int64_t>& balances() const {
    return balances_;
  }

  // The idempotency keys of the entries posted but usage charges, and by
  // allocation the last usage sequence charged.
  const absl::flat_hash_set<std::string>& keys() const { return keys_; }
  const absl::flat_hash_map<std::string, int64_t>& charge_marks() const {
    return charge_marks_;
  }

  // Forgets an account that nets to zero and will never be used again (a
  // retired allocation's hold), the idempotency keys `keys`, which are
  // never posted again, and `allocation_id`'s charge mark. Internal (a
  // broken invariant) when the account does not net to zero; changes
  // nothing then.
  absl::Status Forget(absl::string_view account,
                      const std::vector<std::string>& keys,
                      absl::string_view allocation_id);

  int64_t last_sequence() const { return last_sequence_; }
  const std::string& last_hash() const { return last_hash_; }

  // Hashes entries by `known` where it knows them (a replay's stored
  // entries), by EntryHash otherwise; null: EntryHash only. `known` must
  // outlive its use.
  void set_known_hashes(KnownHashes* known) { known_ = known; }

  // Entries posted since the previous call, in order; the ledger keeps
  // none of them.
  std::vector<computevoucher::v1::JournalEntry> TakePosted();

  // The ledger as a snapshot, and back into a fresh ledger.
  void Save(computevoucher::v1::LedgerSnapshot* out) const;
  absl::Status Load(const computevoucher::v1::LedgerSnapshot& in);

 private:
  absl::flat_hash_map<std::string, int64_t> balances_;
  absl::flat_hash_set<std::string> keys_;  // of entries but usage charges
  absl::flat_hash_map<std::string, int64_t> charge_marks_;  // by allocation
  int64_t last_sequence_ = 0;
  std::string last_hash_;
  std::vector<computevoucher::v1::JournalEntry> posted_;
  KnownHashes* known_ = nullptr;

  // Chains `entry` after the last one and keeps it for TakePosted.
  void Append(computevoucher::v1::JournalEntry&& entry, absl::Time time);
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_LEDGER_H_
