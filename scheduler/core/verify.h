// Re-derives every balance from the journal and checks the invariants of
// DESIGN.md ("Money flow"):
// - the hash chain is unbroken and sequences have no gaps;
// - every entry has the account shape of its kind;
// - every account's balance equals its entries, and the state machine's
//   cached balances equal them too;
// - no voucher, hold, budget or payable is ever negative;
// - for each voucher, face value = available + held + charged + returned;
// - no idempotency key is posted twice, and an allocation's usage is
//   charged in rising sequence (so no (allocation, sequence) twice);
// - an allocation is charged at most GPUs × its billable life.
//
// Not thread-safe; feed entries in journal order.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_VERIFY_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_VERIFY_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "computevoucher/v1/types.pb.h"
#include "scheduler/core/state_machine.h"

namespace computevoucher::core {

class JournalVerifier {
 public:
  JournalVerifier();

  // Takes `state`, loaded from a snapshot, as what the entries up to its
  // journal head add up to, so that only the entries after it need to be
  // added. Requires that no entry was added yet.
  void StartFrom(const StateMachine& state);

  // Checks `entry` against its predecessor and the running balances, and
  // its hash against its contents unless `hash_checked` says the caller
  // has (replay, which found it equal to the entry the ledger posted and
  // hashed).
  void Add(const pb::JournalEntry& entry, bool hash_checked = false);

  // Checks the final view of a retired allocation against the journal as
  // Check() does a live one (charged and held, charged within GPUs × its
  // billable life), then forgets what it tracks of it (its hold account,
  // the keys of its entries, its charges), so that a full replay's memory
  // follows the allocations the state holds. Call after the entries of the
  // command that retired it were added.
  void Forget(const pb::Allocation& retired);
  // The same for a retired voucher: checks its final view against the
  // journal (nothing available or held, face value = charged + returned),
  // then forgets its account, the keys of its entries and its sums.
  void Forget(const pb::Voucher& retired);

  // Accounts tracked now.
  size_t accounts() const { return balances_.size(); }

  // Compares what the entries added so far imply with `state` (rebuilt by
  // replaying the command log, or kept live) and returns every violation
  // found, one line each; empty when all invariants hold. May be called
  // again after more entries are added.
  std::vector<std::string> Check(const StateMachine& state) const;

  int64_t entries() const { return last_sequence_; }
  const std::string& last_hash() const { return last_hash_; }

 private:
  struct VoucherSums {
    int64_t face = 0;
    int64_t held = 0;
    int64_t charged = 0;
    int64_t returned = 0;
    int64_t adjustments = 0;
  };
  // Check()'s part for one voucher, its view `v`.
  void CheckVoucher(const pb::Voucher& v, std::vector<std::string>& out,
                    int64_t& suppressed) const;
  static void Report(std::vector<std::string>& out, int64_t& suppressed,
                     std::string message);
  void Violation(std::string message) {
    Report(violations_, suppressed_, std::move(message));
  }
  void CheckShape(const pb::JournalEntry& e);
  // Add()'s part for an archive's anchor, which moves nothing.
  void AddAnchor(const pb::JournalEntry& e);
  // Notes `e`'s idempotency key; false when it was posted before.
  bool AddKey(const pb::JournalEntry& e);
  // The balance of `account` that the journal adds up to.
  int64_t Derived(const std::string& account) const;
  // Check()'s part for allocations: charges and holds against the journal,
  // charges within GPUs × billable life (`max_charge`), for each one.
  void CheckAllocations(const StateMachine& state,
                        std::vector<std::string>& out,
                        int64_t& suppressed) const;
  void CheckAllocation(const pb::Allocation& a,
                       const absl::StatusOr<int64_t>& max_charge,
                       std::vector<std::string>& out,
                       int64_t& suppressed) const;

  int64_t last_sequence_ = 0;
  std::string last_hash_;
  absl::flat_hash_map<std::string, int64_t> balances_;
  // The keys of entries but usage charges: of those about an allocation by
  // allocation, so that they are forgotten with it.
  absl::flat_hash_set<std::string> keys_;
  absl::flat_hash_map<std::string, std::vector<std::string>> allocation_keys_;
  struct AllocationSums {
    int64_t charged = 0;
    int64_t last_usage_sequence = 0;  // the last usage sequence charged
  };
  // One map for both, so that a charge looks its allocation up once.
  absl::flat_hash_map<std::string, AllocationSums> allocations_;
  absl::flat_hash_map<std::string, VoucherSums> vouchers_;
  std::vector<std::string> violations_;
  int64_t suppressed_ = 0;
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_VERIFY_H_
