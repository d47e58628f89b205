#include "common/journal_hash.h"

#include <cstdint>

#include "common/sha256.h"

namespace computevoucher {
namespace {

using ::computevoucher::v1::JournalEntry;

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

}  // namespace computevoucher
