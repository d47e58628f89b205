// The journal's hash chain: what each entry's hash covers. Shared by the
// ledger, which posts entries, and the stores, which keep entries without
// their hashes and chain them again when they read them.
#ifndef COMPUTEVOUCHER_COMMON_JOURNAL_HASH_H_
#define COMPUTEVOUCHER_COMMON_JOURNAL_HASH_H_

#include <string>

#include "computevoucher/v1/types.pb.h"

namespace computevoucher {

// The SHA-256 chaining `entry` (its `prev_hash` and every other field but
// `hash`) to its predecessor.
std::string EntryHash(const computevoucher::v1::JournalEntry& entry);

// Whether `a` and `b` agree on every field EntryHash hashes (all but
// `hash`).
bool SameContents(const computevoucher::v1::JournalEntry& a,
                  const computevoucher::v1::JournalEntry& b);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_JOURNAL_HASH_H_
