// The voucher book of the state machine: applications, vouchers (issue
// within the program's budget and the per-enterprise yearly cap, suspend,
// resume, revoke, adjust), expiry, and what flows between a voucher and its
// program's budget. Placement holds and releases on vouchers through it.
//
// Ending a voucher's allocations is placement's: the state machine calls
// Placement::EndVoucherAllocations between Suspend/Revoke/Expire and what
// follows. Handlers validate before their first change: on error nothing
// changed. Not thread-safe; owned by StateMachine.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_VOUCHER_BOOK_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_VOUCHER_BOOK_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "computevoucher/v1/journal.pb.h"
#include "computevoucher/v1/snapshot.pb.h"
#include "computevoucher/v1/types.pb.h"
#include "scheduler/core/books.h"
#include "scheduler/core/records.h"
#include "scheduler/core/registry.h"
#include "scheduler/core/response.h"

namespace computevoucher::core {

// The idempotency keys of the entries about a voucher but those about its
// allocations. Retirement forgets them all (VoucherKeys), so every such key
// is made here.
std::string IssueKey(absl::string_view voucher_id);
std::string ExpireKey(absl::string_view voucher_id);
std::string RevokeKey(absl::string_view voucher_id);
// Of the voucher's `n`th adjustment (from 1).
std::string AdjustKey(absl::string_view voucher_id, int64_t n);
// All of them, for a voucher adjusted `adjustments` times.
std::vector<std::string> VoucherKeys(absl::string_view voucher_id,
                                     int64_t adjustments);

class VoucherBook {
 public:
  // Retired vouchers' sums by program, enterprise, year of issue
  // (Asia/Shanghai) and final state.
  using RetiredKey = std::tuple<std::string, std::string, int, int>;
  struct State {
    absl::btree_map<std::string, pb::Application> applications;
    absl::btree_map<std::string, VoucherRec> vouchers;
    // Derived from the vouchers: ids by enterprise, in issue order; active
    // or suspended ones by expiry.
    absl::flat_hash_map<std::string, std::vector<std::string>>
        enterprise_vouchers;
    absl::btree_set<std::pair<absl::Time, std::string>> expiry_index;
    // Derived: every voucher by the end of its window, for retirement.
    absl::btree_set<std::pair<absl::Time, std::string>> window_index;
    absl::btree_map<RetiredKey, RetiredVoucherSums> retired;
    int64_t next_application = 0;
    int64_t next_voucher = 0;
  };

  VoucherBook(const Registry& registry, Books& books)
      : registry_(registry), books_(books) {}
  VoucherBook(const VoucherBook&) = delete;
  VoucherBook& operator=(const VoucherBook&) = delete;

  // --- Commands, at books.now(). ---
  absl::StatusOr<Response> ApplyForVoucher(const pb::Principal& p,
                                           const pb::ApplyRequest& r);
  // Approves a pending application by issuing its voucher.
  absl::StatusOr<Response> ApproveApplication(
      const pb::ApproveApplicationRequest& r);
  absl::StatusOr<Response> RejectApplication(
      const pb::RejectApplicationRequest& r);
  absl::StatusOr<Response> IssueVoucher(const pb::IssueVoucherRequest& r);
  // All rows or none: with any row refused, the answer lists the refusals
  // and nothing changed (Reply::changed is false).
  absl::StatusOr<Reply> BatchIssueVouchers(
      const pb::BatchIssueVouchersRequest& r);
  absl::StatusOr<Response> ResumeVoucher(const pb::ResumeVoucherRequest& r);
  // Moves face value between the voucher and its program's budget.
  absl::StatusOr<Response> AdjustVoucher(const pb::AdjustVoucherRequest& r);
  // Suspends an active voucher; the caller then ends its allocations.
  absl::StatusOr<VoucherRec*> Suspend(const pb::SuspendVoucherRequest& r);
  // Revokes a voucher that is neither revoked nor expired; the caller then
  // ends its allocations and returns what is left (ReturnAvailable).
  absl::StatusOr<VoucherRec*> Revoke(const pb::RevokeVoucherRequest& r);

  // --- Expiry, for the tick. ---
  // Takes the next voucher whose window ended by `now` off the expiry
  // index; nullopt when none is due.
  std::optional<std::string> TakeExpired(absl::Time now);
  // Marks voucher `id` expired; false (and nothing changed) when it is
  // exhausted, which needs nothing more.
  bool Expire(const std::string& id);

  // --- Retirement, for the tick. ---
  // Retires up to `at_most` vouchers whose window ended at least `retain`
  // ago, in that order, each not `in_use` (allocations of it still in the
  // state); passes over up to `at_most` in use. Each leaves the state and
  // the ledger (its account and its keys); its sums go to state().retired,
  // its final view to TakeRetired(). One still active or suspended (an
  // exhausted voucher topped up after its window ended, which expiry had
  // passed by) is expired first, its money returned to the budget. Whether
  // any was retired; Internal (a broken invariant) when one still holds
  // money.
  absl::StatusOr<bool> RetireDue(
      absl::Duration retain, int at_most,
      absl::FunctionRef<bool(const std::string&)> in_use);
  // The final views of the vouchers retired since the last call, in order.
  std::vector<pb::Voucher> TakeRetired() { return std::exchange(retired_, {}); }

  // --- Money between a voucher and its program's budget. ---
  // Returns `amount` (nothing when <= 0) to the budget as `kind` (EXPIRE or
  // REVOKE) under idempotency key `key`.
  absl::Status ReturnToBudget(VoucherRec& rec, pb::EntryKind kind,
                              int64_t amount, const std::string& key);
  // Returns the voucher's whole available balance.
  absl::Status ReturnAvailable(VoucherRec& rec, pb::EntryKind kind,
                               const std::string& key);
  // Moves an active voucher with nothing available or held to EXHAUSTED,
  // and an exhausted one that has something again back to ACTIVE.
  void UpdateExhausted(VoucherRec& rec);

  // --- Lookups. ---
  // InvalidArgument for a malformed id, NotFound for an unknown one.
  absl::StatusOr<VoucherRec*> FindVoucher(const std::string& id);
  // The voucher `id`, which must exist.
  VoucherRec& voucher(const std::string& id) { return state_.vouchers.at(id); }
  const VoucherRec& voucher(const std::string& id) const {
    return state_.vouchers.at(id);
  }
  // The vouchers that could pay for `enterprise_id`'s allocation, in the
  // order they are chosen: `voucher_id` alone when set (NotFound when it is
  // unknown or another enterprise's), else all of the enterprise's by
  // priority (highest first), then earliest expiry, then id.
  absl::StatusOr<std::vector<const VoucherRec*>> Payers(
      const std::string& enterprise_id, const std::string& voucher_id) const;
  int64_t Available(const std::string& voucher_id) const;
  // Face value issued in `year` (Asia/Shanghai, adjustments included,
  // retired vouchers too) by (program, enterprise): what counts against
  // each program's annual cap per enterprise.
  std::map<std::pair<std::string, std::string>, int64_t>
  IssuedInYearByEnterprise(int year) const;

  // --- Views. ---
  pb::Voucher VoucherViewOf(const VoucherRec& rec) const;
  absl::StatusOr<pb::Voucher> VoucherView(const std::string& voucher_id) const;
  std::vector<std::string> VoucherIds() const;

  const State& state() const { return state_; }

  // The component as a snapshot, and back into a fresh component
  // (scheduler/core/snapshot.cc).
  void Save(pb::VoucherBookSnapshot* out) const;
  absl::Status Load(const pb::VoucherBookSnapshot& in);

 private:
  // One voucher of an issue, checked and ready to execute.
  struct IssuePlan {
    const pb::Program* program;
    std::string enterprise_id;
    int64_t face_value_fen;
    absl::Time valid_from;
    absl::Time valid_until;
    int32_t priority;
  };
  // Face value already planned in the same command, per program and per
  // (program, enterprise).
  struct PendingIssue {
    absl::flat_hash_map<std::string, int64_t> by_program;
    absl::flat_hash_map<std::string, int64_t> by_cap_key;
  };
  absl::StatusOr<IssuePlan> PlanIssue(const pb::IssueVoucherRequest& r,
                                      PendingIssue* pending) const;
  absl::StatusOr<pb::Voucher> ExecuteIssue(const IssuePlan& plan,
                                           const std::string& application_id);
  absl::Status CheckCap(const pb::Program& program,
                        const std::string& enterprise_id, int year,
                        int64_t amount, int64_t already_pending) const;
  int64_t IssuedInYear(const std::string& program_id,
                       const std::string& enterprise_id, int year) const;
  absl::StatusOr<pb::Application*> FindPendingApplication(
      const std::string& application_id);
  // Expires `rec` if it is still active or suspended, returning what is
  // available to the budget, for RetireDue (its window has ended).
  absl::Status ExpireLate(VoucherRec& rec);
  // Retires voucher `id`, which has nothing available or held, but for its
  // enterprise's list, which RetireDue updates.
  absl::Status Retire(const std::string& id);

  const Registry& registry_;
  Books& books_;
  State state_;
  std::vector<pb::Voucher> retired_;
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_VOUCHER_BOOK_H_
