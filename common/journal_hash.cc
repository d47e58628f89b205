#include "common/journal_hash.h"

#include <cstdint>
#include <cstring>

#include "common/sha256.h"

namespace computevoucher {
namespace {

using ::computevoucher::v1::JournalEntry;

// Canonical encoding for hashing: fixed-width integers and length-prefixed
// strings, in a fixed field order. Independent of protobuf's wire format so
// that the chain survives any change of serialisation library. `put` is
// given each field in that order: a Sizer, then a Writer into a buffer of
// that size (this runs for every entry posted and every entry read).
template <typename Put>
void Encode(const JournalEntry& e, Put& put) {
  put.String(e.prev_hash());
  put.Int(e.sequence());
  put.Int(e.kind());
  put.String(e.debit_account());
  put.String(e.credit_account());
  put.Int(e.amount_fen());
  put.String(e.program_id());
  put.String(e.voucher_id());
  put.String(e.allocation_id());
  put.String(e.provider_id());
  put.Int(e.usage_sequence());
  put.String(e.idempotency_key());
  put.Int(e.time().seconds());
  put.Int(e.time().nanos());
  put.String(e.memo());
  put.Int(e.command_sequence());
}

struct Sizer {
  void Int(int64_t) { size += 8; }
  void String(absl::string_view s) { size += 8 + s.size(); }
  size_t size = 0;
};

// Writes into a buffer of the size a Sizer gave for the same entry: the
// one Encode drives both, so they agree on every width.
struct Writer {
  void Int(int64_t v) {  // little-endian
    const auto u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(u >> (8 * i));
    out += 8;
  }
  void String(absl::string_view s) {
    Int(static_cast<int64_t>(s.size()));
    std::memcpy(out, s.data(), s.size());
    out += s.size();
  }
  char* out;
};

// What EntryHash hashes, in `buf`.
void PutContents(const JournalEntry& e, std::string& buf) {
  Sizer sizer;
  Encode(e, sizer);
  buf.resize(sizer.size);
  Writer writer{buf.data()};
  Encode(e, writer);
}

}  // namespace

std::string EntryHash(const JournalEntry& e) {
  thread_local std::string buf;
  PutContents(e, buf);
  return Sha256(buf);
}

bool SameContents(const JournalEntry& a, const JournalEntry& b) {
  // The fields Encode hashes, the cheapest compared first.
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
