// Money in integer fen (1 CNY = 100 fen). Arithmetic is checked: a result
// that would not fit in int64 is an error, never a wrapped value.
#ifndef COMPUTEVOUCHER_COMMON_MONEY_H_
#define COMPUTEVOUCHER_COMMON_MONEY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace computevoucher {

inline constexpr int64_t kFenPerYuan = 100;

// a + b, or OutOfRange on overflow.
absl::StatusOr<int64_t> CheckedAdd(int64_t a, int64_t b);
// a - b, or OutOfRange on overflow.
absl::StatusOr<int64_t> CheckedSub(int64_t a, int64_t b);
// a * b, or OutOfRange on overflow.
absl::StatusOr<int64_t> CheckedMul(int64_t a, int64_t b);

// "1234.56 CNY"; negative amounts get a leading '-'.
std::string FormatFen(int64_t fen);

// Parses an amount of yuan as people type it and returns fen:
//   "1234.56", "1234.5", "1234", "¥8,000,000", "8,000,000.00 CNY",
//   "8M" (million), "1.5M", "300k"/"300K" (thousand), "50万" (ten thousand),
//   and a leading '-' for negative amounts.
// Commas must group digits in threes; at most two decimals, unless a suffix
// multiplies them into whole fen. Anything else is InvalidArgument naming
// the input and what was wrong; amounts beyond int64 fen are OutOfRange.
absl::StatusOr<int64_t> ParseMoney(absl::string_view text);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_MONEY_H_
