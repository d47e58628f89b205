#include "scheduler/core/ledger.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/money.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace computevoucher::core {

using computevoucher::v1::JournalEntry;

std::string AccountForm::Name(absl::string_view id) const {
  return absl::StrCat(prefix, id, suffix);
}

bool AccountForm::Names(absl::string_view account, absl::string_view id) const {
  return account.size() == prefix.size() + id.size() + suffix.size() &&
         absl::StartsWith(account, prefix) && absl::EndsWith(account, suffix) &&
         account.substr(prefix.size(), id.size()) == id;
}

std::string ProgramSourceAccount(absl::string_view program_id) {
  return kProgramSourceForm.Name(program_id);
}
std::string ProgramBudgetAccount(absl::string_view program_id) {
  return kProgramBudgetForm.Name(program_id);
}
std::string VoucherAccount(absl::string_view voucher_id) {
  return kVoucherForm.Name(voucher_id);
}
std::string HoldAccount(absl::string_view allocation_id) {
  return kHoldForm.Name(allocation_id);
}
std::string PayableAccount(absl::string_view provider_id) {
  return kPayableForm.Name(provider_id);
}
std::string PaidAccount(absl::string_view provider_id) {
  return kPaidForm.Name(provider_id);
}

bool IsSourceAccount(absl::string_view account) {
  return absl::StartsWith(account, kProgramSourceForm.prefix) &&
         absl::EndsWith(account, kProgramSourceForm.suffix);
}

std::string ArchiveKey(int64_t through_command) {
  return absl::StrCat("archive/", through_command);
}

Ledger::Ledger() : last_hash_(kSha256Bytes, '\0') {}

absl::Status Ledger::CheckPost(const JournalEntry& entry) const {
  if (entry.amount_fen() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("journal entry ", entry.idempotency_key(),
                     ": amount must be positive, got ", entry.amount_fen()));
  }
  if (entry.debit_account().empty() || entry.credit_account().empty() ||
      entry.debit_account() == entry.credit_account()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "journal entry ", entry.idempotency_key(),
        ": needs two distinct accounts, got \"", entry.debit_account(),
        "\" and \"", entry.credit_account(), "\""));
  }
  if (entry.idempotency_key().empty()) {
    return absl::InvalidArgumentError(
        "journal entry: idempotency key required");
  }
  if (entry.usage_sequence() != 0) {
    if (entry.allocation_id().empty() || entry.usage_sequence() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "journal entry ", entry.idempotency_key(),
          ": a usage charge needs an allocation and a positive sequence"));
    }
    auto mark = charge_marks_.find(entry.allocation_id());
    if (mark != charge_marks_.end() && entry.usage_sequence() <= mark->second) {
      return absl::AlreadyExistsError(absl::StrCat(
          "journal entry ", entry.idempotency_key(), ": usage sequence ",
          entry.usage_sequence(), " of ", entry.allocation_id(),
          " is not after the last one charged, ", mark->second));
    }
  } else if (keys_.contains(entry.idempotency_key())) {
    return absl::AlreadyExistsError(absl::StrCat(
        "journal entry ", entry.idempotency_key(), ": already posted"));
  }
  const int64_t credit_balance = Balance(entry.credit_account());
  if (!IsSourceAccount(entry.credit_account()) &&
      credit_balance < entry.amount_fen()) {
    return absl::FailedPreconditionError(absl::StrCat(
        entry.credit_account(), ": insufficient balance: need ",
        FormatFen(entry.amount_fen()), ", have ", FormatFen(credit_balance)));
  }
  RETURN_IF_ERROR(CheckedSub(credit_balance, entry.amount_fen()).status());
  RETURN_IF_ERROR(
      CheckedAdd(Balance(entry.debit_account()), entry.amount_fen()).status());
  return absl::OkStatus();
}

absl::Status Ledger::Post(JournalEntry&& entry, absl::Time time) {
  RETURN_IF_ERROR(CheckPost(entry));
  balances_[entry.credit_account()] -= entry.amount_fen();
  balances_[entry.debit_account()] += entry.amount_fen();
  if (entry.usage_sequence() != 0) {
    charge_marks_[entry.allocation_id()] = entry.usage_sequence();
  } else {
    keys_.insert(entry.idempotency_key());
  }
  Append(std::move(entry), time);
  return absl::OkStatus();
}

absl::Status Ledger::Anchor(JournalEntry entry, absl::Time time) {
  if (entry.kind() != computevoucher::v1::ENTRY_KIND_ARCHIVE ||
      entry.amount_fen() != 0 || !entry.debit_account().empty() ||
      !entry.credit_account().empty() || entry.usage_sequence() != 0 ||
      entry.idempotency_key().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("journal entry ", entry.idempotency_key(),
                     ": an anchor moves nothing and needs a key"));
  }
  if (keys_.contains(entry.idempotency_key())) {
    return absl::AlreadyExistsError(absl::StrCat(
        "journal entry ", entry.idempotency_key(), ": already posted"));
  }
  keys_.insert(entry.idempotency_key());
  Append(std::move(entry), time);
  return absl::OkStatus();
}

void Ledger::Append(JournalEntry&& entry, absl::Time time) {
  entry.set_sequence(last_sequence_ + 1);
  *entry.mutable_time() = ToProto(time);
  entry.set_prev_hash(last_hash_);
  const std::string* known =
      known_ == nullptr ? nullptr : known_->HashOf(entry);
  entry.set_hash(known != nullptr ? *known : EntryHash(entry));
  last_sequence_ = entry.sequence();
  last_hash_ = entry.hash();
  posted_.push_back(std::move(entry));
}

int64_t Ledger::Balance(absl::string_view account) const {
  auto it = balances_.find(account);
  return it == balances_.end() ? 0 : it->second;
}

absl::Status Ledger::Forget(absl::string_view account,
                            const std::vector<std::string>& keys,
                            absl::string_view allocation_id) {
  if (const int64_t balance = Balance(account); balance != 0) {
    return absl::InternalError(
        absl::StrCat(account, ": cannot be forgotten with a balance of ",
                     FormatFen(balance)));
  }
  balances_.erase(account);
  for (const std::string& key : keys) keys_.erase(key);
  charge_marks_.erase(allocation_id);
  return absl::OkStatus();
}

std::vector<JournalEntry> Ledger::TakePosted() {
  return std::exchange(posted_, {});
}

}  // namespace computevoucher::core
