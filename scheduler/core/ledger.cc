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
namespace {

using computevoucher::v1::JournalEntry;

// Canonical encoding for hashing: fixed-width integers and length-prefixed
// strings, in a fixed field order. Independent of protobuf's wire format so
// that the chain survives any change of serialisation library.
void PutInt(std::string* out, int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  char bytes[8];  // little-endian
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(u >> (8 * i));
  out->append(bytes, sizeof(bytes));
}

void PutString(std::string* out, absl::string_view s) {
  PutInt(out, static_cast<int64_t>(s.size()));
  out->append(s.data(), s.size());
}

}  // namespace

std::string ProgramSourceAccount(absl::string_view program_id) {
  return absl::StrCat("program/", program_id, "/source");
}
std::string ProgramBudgetAccount(absl::string_view program_id) {
  return absl::StrCat("program/", program_id, "/budget");
}
std::string VoucherAccount(absl::string_view voucher_id) {
  return absl::StrCat("voucher/", voucher_id);
}
std::string HoldAccount(absl::string_view allocation_id) {
  return absl::StrCat("hold/", allocation_id);
}
std::string PayableAccount(absl::string_view provider_id) {
  return absl::StrCat("provider/", provider_id, "/payable");
}
std::string PaidAccount(absl::string_view provider_id) {
  return absl::StrCat("provider/", provider_id, "/paid");
}

bool IsSourceAccount(absl::string_view account) {
  return absl::StartsWith(account, "program/") &&
         absl::EndsWith(account, "/source");
}

namespace {

// What EntryHash hashes, in `buf`.
void PutContents(const JournalEntry& e, std::string& buf) {
  buf.clear();
  PutString(&buf, e.prev_hash());
  PutInt(&buf, e.sequence());
  PutInt(&buf, e.kind());
  PutString(&buf, e.debit_account());
  PutString(&buf, e.credit_account());
  PutInt(&buf, e.amount_fen());
  PutString(&buf, e.program_id());
  PutString(&buf, e.voucher_id());
  PutString(&buf, e.allocation_id());
  PutString(&buf, e.provider_id());
  PutInt(&buf, e.usage_sequence());
  PutString(&buf, e.idempotency_key());
  PutInt(&buf, e.time().seconds());
  PutInt(&buf, e.time().nanos());
  PutString(&buf, e.memo());
  PutInt(&buf, e.command_sequence());
}

}  // namespace

std::string EntryHash(const JournalEntry& e) {
  thread_local std::string buf;
  PutContents(e, buf);
  return Sha256(buf);
}

bool SameContents(const JournalEntry& a, const JournalEntry& b) {
  // The fields of PutContents, the cheapest compared first.
  return a.sequence() == b.sequence() && a.kind() == b.kind() &&
         a.amount_fen() == b.amount_fen() &&
         a.usage_sequence() == b.usage_sequence() &&
         a.command_sequence() == b.command_sequence() &&
         a.time().seconds() == b.time().seconds() &&
         a.time().nanos() == b.time().nanos() &&
         a.prev_hash() == b.prev_hash() &&
         a.debit_account() == b.debit_account() &&
         a.credit_account() == b.credit_account() &&
         a.program_id() == b.program_id() && a.voucher_id() == b.voucher_id() &&
         a.allocation_id() == b.allocation_id() &&
         a.provider_id() == b.provider_id() &&
         a.idempotency_key() == b.idempotency_key() && a.memo() == b.memo();
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

absl::Status Ledger::Post(JournalEntry entry, absl::Time time) {
  RETURN_IF_ERROR(CheckPost(entry));
  entry.set_sequence(last_sequence_ + 1);
  *entry.mutable_time() = ToProto(time);
  entry.set_prev_hash(last_hash_);
  entry.set_hash(EntryHash(entry));
  balances_[entry.credit_account()] -= entry.amount_fen();
  balances_[entry.debit_account()] += entry.amount_fen();
  if (entry.usage_sequence() != 0) {
    charge_marks_[entry.allocation_id()] = entry.usage_sequence();
  } else {
    keys_.insert(entry.idempotency_key());
  }
  last_sequence_ = entry.sequence();
  last_hash_ = entry.hash();
  posted_.push_back(std::move(entry));
  return absl::OkStatus();
}

int64_t Ledger::Balance(absl::string_view account) const {
  auto it = balances_.find(account);
  return it == balances_.end() ? 0 : it->second;
}

std::vector<JournalEntry> Ledger::TakePosted() {
  return std::exchange(posted_, {});
}

}  // namespace computevoucher::core
