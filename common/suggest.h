// "Did you mean": the name nearest a mistyped one, for voucherctl's
// commands and flags and the servers' flags.
#ifndef COMPUTEVOUCHER_COMMON_SUGGEST_H_
#define COMPUTEVOUCHER_COMMON_SUGGEST_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace computevoucher {

// Edits (insert, delete, replace one character) from `a` to `b`.
size_t EditDistance(absl::string_view a, absl::string_view b);

// The candidate within two edits of `word`, or that starts with it, the
// nearest first; "" when none is.
std::string Nearest(absl::string_view word,
                    const std::vector<std::string>& candidates);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_SUGGEST_H_
