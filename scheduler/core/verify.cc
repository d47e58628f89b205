#include "scheduler/core/verify.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/money.h"
#include "common/sha256.h"

namespace computevoucher::core {
namespace {

// More than this many violations are counted, not listed.
constexpr size_t kMaxListed = 100;

}  // namespace

JournalVerifier::JournalVerifier() : last_hash_(kSha256Bytes, '\0') {}

void JournalVerifier::Report(std::vector<std::string>& out, int64_t& suppressed,
                             std::string message) {
  if (out.size() < kMaxListed) {
    out.push_back(std::move(message));
  } else {
    ++suppressed;
  }
}

void JournalVerifier::CheckShape(const pb::JournalEntry& e) {
  // The forms and ids of the expected debit and credit accounts.
  const AccountForm* debit = nullptr;
  const AccountForm* credit = nullptr;
  absl::string_view debit_id, credit_id;
  const std::string& v = e.voucher_id();
  const std::string& a = e.allocation_id();
  const std::string& p = e.program_id();
  const std::string& provider = e.provider_id();
  auto expect = [&](const AccountForm& d, absl::string_view d_id,
                    const AccountForm& c, absl::string_view c_id) {
    debit = &d;
    debit_id = d_id;
    credit = &c;
    credit_id = c_id;
  };
  switch (e.kind()) {
    case pb::ENTRY_KIND_FUND:
      expect(kProgramBudgetForm, p, kProgramSourceForm, p);
      break;
    case pb::ENTRY_KIND_ISSUE:
      expect(kVoucherForm, v, kProgramBudgetForm, p);
      break;
    case pb::ENTRY_KIND_HOLD:
      expect(kHoldForm, a, kVoucherForm, v);
      break;
    case pb::ENTRY_KIND_CHARGE:
      expect(kPayableForm, provider, kHoldForm, a);
      break;
    case pb::ENTRY_KIND_RELEASE:
      expect(kVoucherForm, v, kHoldForm, a);
      break;
    case pb::ENTRY_KIND_EXPIRE:
    case pb::ENTRY_KIND_REVOKE:
      expect(kProgramBudgetForm, p, kVoucherForm, v);
      break;
    case pb::ENTRY_KIND_ADJUST:
      if (kVoucherForm.Names(e.debit_account(), v)) {
        expect(kVoucherForm, v, kProgramBudgetForm, p);
      } else {
        expect(kProgramBudgetForm, p, kVoucherForm, v);
      }
      break;
    case pb::ENTRY_KIND_SETTLE:
      expect(kPaidForm, provider, kPayableForm, provider);
      break;
    default:
      Violation(
          absl::StrCat("entry ", e.sequence(), ": unknown kind ", e.kind()));
      return;
  }
  if (!debit->Names(e.debit_account(), debit_id) ||
      !credit->Names(e.credit_account(), credit_id)) {
    Violation(absl::StrCat(
        "entry ", e.sequence(), " (", pb::EntryKind_Name(e.kind()), "): moves ",
        e.credit_account(), " -> ", e.debit_account(), ", expected ",
        credit->Name(credit_id), " -> ", debit->Name(debit_id)));
  }
}

void JournalVerifier::StartFrom(const StateMachine& state) {
  const Ledger& ledger = state.ledger();
  last_sequence_ = ledger.last_sequence();
  last_hash_ = ledger.last_hash();
  balances_.insert(ledger.balances().begin(), ledger.balances().end());
  keys_ = ledger.keys();
  for (const auto& [id, mark] : ledger.charge_marks()) {
    allocations_[id].last_usage_sequence = mark;
  }
  for (const auto& [id, rec] : state.vouchers()) {
    const pb::Voucher v = state.VoucherViewOf(rec);
    vouchers_[id] =
        VoucherSums{v.face_value_fen(), v.held_fen(), v.charged_fen(),
                    v.returned_fen(), rec.adjustments};
  }
  for (const auto& [id, rec] : state.allocations()) {
    allocations_[id].charged = state.AllocationViewOf(rec).charged_fen();
  }
}

void JournalVerifier::AddAnchor(const pb::JournalEntry& e) {
  if (e.amount_fen() != 0 || !e.debit_account().empty() ||
      !e.credit_account().empty() || e.usage_sequence() != 0) {
    Violation(absl::StrCat("entry ", e.sequence(),
                           " (ENTRY_KIND_ARCHIVE): moves ", e.amount_fen(),
                           " fen from \"", e.credit_account(), "\" to \"",
                           e.debit_account(), "\"; an anchor moves nothing"));
  }
  if (!AddKey(e)) {
    Violation(absl::StrCat("entry ", e.sequence(), ": idempotency key ",
                           e.idempotency_key(), " posted twice"));
  }
}

void JournalVerifier::Add(const pb::JournalEntry& e, bool hash_checked) {
  if (e.sequence() != last_sequence_ + 1) {
    Violation(absl::StrCat("entry ", e.sequence(), ": expected sequence ",
                           last_sequence_ + 1));
  }
  if (e.prev_hash() != last_hash_) {
    Violation(absl::StrCat(
        "entry ", e.sequence(), ": prev_hash ", ToHex(e.prev_hash()),
        " does not match the previous entry's hash ", ToHex(last_hash_)));
  }
  if (!hash_checked && EntryHash(e) != e.hash()) {
    Violation(absl::StrCat("entry ", e.sequence(), ": hash ", ToHex(e.hash()),
                           " does not match its contents"));
  }
  last_sequence_ = e.sequence();
  last_hash_ = e.hash();
  if (e.kind() == pb::ENTRY_KIND_ARCHIVE) return AddAnchor(e);
  if (e.amount_fen() <= 0) {
    Violation(absl::StrCat("entry ", e.sequence(), ": amount ", e.amount_fen(),
                           " is not positive"));
  }
  if (e.usage_sequence() == 0 && !AddKey(e)) {
    Violation(absl::StrCat("entry ", e.sequence(), ": idempotency key ",
                           e.idempotency_key(), " posted twice"));
  }
  CheckShape(e);

  const int64_t amount = e.amount_fen();
  balances_[e.debit_account()] += amount;
  const int64_t credit_balance = balances_[e.credit_account()] -= amount;
  if (credit_balance < 0 && !IsSourceAccount(e.credit_account())) {
    Violation(absl::StrCat("entry ", e.sequence(), ": ", e.credit_account(),
                           " goes negative (", FormatFen(credit_balance), ")"));
  }

  VoucherSums* sums =
      e.voucher_id().empty() ? nullptr : &vouchers_[e.voucher_id()];
  switch (e.kind()) {
    case pb::ENTRY_KIND_ISSUE:
      if (sums) sums->face += amount;
      break;
    case pb::ENTRY_KIND_ADJUST:
      if (sums) {
        ++sums->adjustments;
        sums->face += kVoucherForm.Names(e.debit_account(), e.voucher_id())
                          ? amount
                          : -amount;
      }
      break;
    case pb::ENTRY_KIND_HOLD:
      if (sums) sums->held += amount;
      break;
    case pb::ENTRY_KIND_CHARGE: {
      if (sums) {
        sums->held -= amount;
        sums->charged += amount;
      }
      AllocationSums& allocation = allocations_[e.allocation_id()];
      allocation.charged += amount;
      int64_t& mark = allocation.last_usage_sequence;
      if (e.usage_sequence() <= mark) {
        Violation(absl::StrCat("entry ", e.sequence(), ": usage ",
                               e.allocation_id(), "/", e.usage_sequence(),
                               " charged twice (or out of order, after ",
                               mark, ")"));
      }
      mark = std::max(mark, e.usage_sequence());
      break;
    }
    case pb::ENTRY_KIND_RELEASE:
      if (sums) sums->held -= amount;
      break;
    case pb::ENTRY_KIND_EXPIRE:
    case pb::ENTRY_KIND_REVOKE:
      if (sums) sums->returned += amount;
      break;
    default:
      break;
  }
}

bool JournalVerifier::AddKey(const pb::JournalEntry& e) {
  const std::string& key = e.idempotency_key();
  if (e.allocation_id().empty()) return keys_.insert(key).second;
  // Keys a snapshot started from are all in keys_.
  std::vector<std::string>& keys = allocation_keys_[e.allocation_id()];
  if (keys_.contains(key) ||
      std::find(keys.begin(), keys.end(), key) != keys.end()) {
    return false;
  }
  keys.push_back(key);
  return true;
}

void JournalVerifier::Forget(const pb::Allocation& retired) {
  // Its last check: nothing can change it after.
  CheckAllocation(retired, MaxChargeOf(retired, absl::InfiniteFuture()),
                  violations_, suppressed_);
  const std::string& id = retired.allocation_id();
  balances_.erase(HoldAccount(id));
  allocation_keys_.erase(id);
  // Those of its entries posted without its id (what a revoked or expired
  // voucher passes on) and those a snapshot started from.
  for (const std::string& key : AllocationKeys(id, 0)) keys_.erase(key);
  allocations_.erase(id);
}

void JournalVerifier::Forget(const pb::Voucher& retired) {
  const std::string& id = retired.voucher_id();
  CheckVoucher(retired, violations_, suppressed_);
  if (retired.available_fen() != 0 || retired.held_fen() != 0) {
    Violation(absl::StrCat(
        "voucher ", id, ": retired with ", FormatFen(retired.available_fen()),
        " available and ", FormatFen(retired.held_fen()), " held"));
  }
  auto found = vouchers_.find(id);
  const int64_t adjustments =
      found == vouchers_.end() ? 0 : found->second.adjustments;
  balances_.erase(VoucherAccount(id));
  for (const std::string& key : VoucherKeys(id, adjustments)) keys_.erase(key);
  if (found != vouchers_.end()) vouchers_.erase(found);
}

std::vector<std::string> JournalVerifier::Check(
    const StateMachine& state) const {
  std::vector<std::string> out = violations_;
  int64_t suppressed = suppressed_;
  auto violation = [&](std::string message) {
    Report(out, suppressed, std::move(message));
  };
  const Ledger& ledger = state.ledger();
  if (ledger.last_sequence() != last_sequence_ ||
      ledger.last_hash() != last_hash_) {
    violation(absl::StrCat("journal head ", last_sequence_, "/",
                           ToHex(last_hash_), " differs from the state's ",
                           ledger.last_sequence(), "/",
                           ToHex(ledger.last_hash())));
  }
  for (const auto& [account, balance] : balances_) {
    if (ledger.Balance(account) != balance) {
      violation(absl::StrCat(
          account, ": cached balance ", FormatFen(ledger.Balance(account)),
          " differs from the journal's ", FormatFen(balance)));
    }
  }
  for (const auto& [account, balance] : ledger.balances()) {
    if (!balances_.contains(account) && balance != 0) {
      violation(absl::StrCat(account, ": cached balance ", FormatFen(balance),
                             " has no journal entries"));
    }
  }
  for (const auto& [id, rec] : state.vouchers())
    CheckVoucher(state.VoucherViewOf(rec), out, suppressed);
  CheckAllocations(state, out, suppressed);
  if (suppressed > 0)
    out.push_back(absl::StrCat("... and ", suppressed, " more violations"));
  return out;
}

void JournalVerifier::CheckVoucher(const pb::Voucher& v,
                                   std::vector<std::string>& out,
                                   int64_t& suppressed) const {
  const std::string& id = v.voucher_id();
  auto found = vouchers_.find(id);
  const VoucherSums sums =
      found == vouchers_.end() ? VoucherSums{} : found->second;
  const int64_t available = Derived(VoucherAccount(id));
  if (sums.face != v.face_value_fen() || sums.held != v.held_fen() ||
      sums.charged != v.charged_fen() || sums.returned != v.returned_fen()) {
    Report(out, suppressed,
           absl::StrCat("voucher ", id, ": state (face ", v.face_value_fen(),
                        ", held ", v.held_fen(), ", charged ", v.charged_fen(),
                        ", returned ", v.returned_fen(),
                        ") differs from the journal (face ", sums.face,
                        ", held ", sums.held, ", charged ", sums.charged,
                        ", returned ", sums.returned, ")"));
  }
  if (sums.face != available + sums.held + sums.charged + sums.returned) {
    Report(out, suppressed,
           absl::StrCat("voucher ", id, ": face value ", FormatFen(sums.face),
                        " != available ", FormatFen(available), " + held ",
                        FormatFen(sums.held), " + charged ",
                        FormatFen(sums.charged), " + returned ",
                        FormatFen(sums.returned)));
  }
  if (available < 0 || sums.held < 0) {
    Report(out, suppressed, absl::StrCat("voucher ", id, ": negative balance"));
  }
}

int64_t JournalVerifier::Derived(const std::string& account) const {
  auto it = balances_.find(account);
  return it == balances_.end() ? 0 : it->second;
}

void JournalVerifier::CheckAllocations(const StateMachine& state,
                                       std::vector<std::string>& out,
                                       int64_t& suppressed) const {
  for (const std::string& id : state.AllocationIds()) {
    CheckAllocation(*state.AllocationView(id), state.MaxChargeFen(id), out,
                    suppressed);
  }
}

void JournalVerifier::CheckAllocation(const pb::Allocation& a,
                                      const absl::StatusOr<int64_t>& max_charge,
                                      std::vector<std::string>& out,
                                      int64_t& suppressed) const {
  const std::string& id = a.allocation_id();
  auto sums = allocations_.find(id);
  const int64_t charged = sums == allocations_.end() ? 0 : sums->second.charged;
  const int64_t hold = Derived(HoldAccount(id));
  if (charged != a.charged_fen() || hold != a.held_fen()) {
    Report(out, suppressed,
           absl::StrCat("allocation ", id, ": state (charged ",
                        a.charged_fen(), ", held ", a.held_fen(),
                        ") differs from the journal (charged ", charged,
                        ", held ", hold, ")"));
  }
  if (!max_charge.ok() || charged > *max_charge) {
    Report(out, suppressed,
           absl::StrCat(
               "allocation ", id, ": charged ", FormatFen(charged),
               " exceeds ", a.gpu_count(), " GPUs × its billable life (",
               max_charge.ok() ? FormatFen(*max_charge)
                               : std::string(max_charge.status().message()),
               ")"));
  }
}

}  // namespace computevoucher::core
