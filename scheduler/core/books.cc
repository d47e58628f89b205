#include "scheduler/core/books.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace computevoucher::core {
namespace {

// The change one entry makes to the sums of its voucher, allocation and
// program (which the invariant checker re-derives from the journal).
struct Deltas {
  int64_t issued = 0;
  int64_t held = 0;
  int64_t charged = 0;
  int64_t returned = 0;
};

Deltas DeltasOf(pb::EntryKind kind, int64_t amount, bool to_voucher) {
  Deltas d;
  switch (kind) {
    case pb::ENTRY_KIND_ISSUE:
      d.issued = amount;
      break;
    case pb::ENTRY_KIND_ADJUST:
      d.issued = to_voucher ? amount : -amount;
      break;
    case pb::ENTRY_KIND_HOLD:
      d.held = amount;
      break;
    case pb::ENTRY_KIND_CHARGE:
      d.held = -amount;
      d.charged = amount;
      break;
    case pb::ENTRY_KIND_RELEASE:
      d.held = -amount;
      break;
    case pb::ENTRY_KIND_EXPIRE:
    case pb::ENTRY_KIND_REVOKE:
      d.returned = amount;
      break;
    default:
      break;
  }
  return d;
}

}  // namespace

pb::JournalEntry Entry(pb::EntryKind kind, std::string debit,
                       std::string credit, int64_t amount, std::string key) {
  pb::JournalEntry entry;
  entry.set_kind(kind);
  entry.set_debit_account(std::move(debit));
  entry.set_credit_account(std::move(credit));
  entry.set_amount_fen(amount);
  entry.set_idempotency_key(std::move(key));
  return entry;
}

pb::JournalEntry AllocationEntry(pb::EntryKind kind, std::string debit,
                                 std::string credit, int64_t amount,
                                 std::string key,
                                 const pb::Allocation& allocation) {
  pb::JournalEntry entry =
      Entry(kind, std::move(debit), std::move(credit), amount, std::move(key));
  entry.set_program_id(allocation.program_id());
  entry.set_voucher_id(allocation.voucher_id());
  entry.set_allocation_id(allocation.allocation_id());
  entry.set_provider_id(allocation.provider_id());
  return entry;
}

absl::Status Books::Post(pb::JournalEntry&& entry, pb::Voucher* voucher,
                         pb::Allocation* allocation) {
  if (!entry.voucher_id().empty() &&
      (voucher == nullptr || voucher->voucher_id() != entry.voucher_id())) {
    return absl::InternalError(
        absl::StrCat("journal entry for unknown voucher ", entry.voucher_id()));
  }
  if (!entry.allocation_id().empty() &&
      (allocation == nullptr ||
       allocation->allocation_id() != entry.allocation_id())) {
    return absl::InternalError(absl::StrCat(
        "journal entry for unknown allocation ", entry.allocation_id()));
  }
  if (entry.voucher_id().empty()) voucher = nullptr;
  if (entry.allocation_id().empty()) allocation = nullptr;
  // Only an adjustment's direction depends on the accounts.
  const bool to_voucher =
      entry.kind() == pb::ENTRY_KIND_ADJUST && voucher != nullptr &&
      kVoucherForm.Names(entry.debit_account(), voucher->voucher_id());
  const Deltas d = DeltasOf(entry.kind(), entry.amount_fen(), to_voucher);
  entry.set_command_sequence(command_sequence_);
  RETURN_IF_ERROR(ledger_.Post(std::move(entry), now_));

  if (voucher != nullptr) {
    voucher->set_face_value_fen(voucher->face_value_fen() + d.issued);
    voucher->set_held_fen(voucher->held_fen() + d.held);
    voucher->set_charged_fen(voucher->charged_fen() + d.charged);
    voucher->set_returned_fen(voucher->returned_fen() + d.returned);
  }
  if (allocation != nullptr) {
    allocation->set_held_fen(allocation->held_fen() + d.held);
    allocation->set_charged_fen(allocation->charged_fen() + d.charged);
  }
  ProgramTotals& totals = program_totals_[ledger_.LastPosted().program_id()];
  totals.issued_fen += d.issued;
  totals.held_fen += d.held;
  totals.charged_fen += d.charged;
  totals.returned_fen += d.returned;
  return absl::OkStatus();
}

ProgramTotals Books::Totals(const std::string& program_id) const {
  auto it = program_totals_.find(program_id);
  return it == program_totals_.end() ? ProgramTotals{} : it->second;
}

}  // namespace computevoucher::core
