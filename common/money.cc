#include "common/money.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace computevoucher {

absl::StatusOr<int64_t> CheckedAdd(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) {
    return absl::OutOfRangeError(absl::StrCat("overflow: ", a, " + ", b));
  }
  return out;
}

absl::StatusOr<int64_t> CheckedSub(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_sub_overflow(a, b, &out)) {
    return absl::OutOfRangeError(absl::StrCat("overflow: ", a, " - ", b));
  }
  return out;
}

absl::StatusOr<int64_t> CheckedMul(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_mul_overflow(a, b, &out)) {
    return absl::OutOfRangeError(absl::StrCat("overflow: ", a, " * ", b));
  }
  return out;
}

std::string FormatFen(int64_t fen) {
  // Work in unsigned so that INT64_MIN formats correctly.
  const bool negative = fen < 0;
  const uint64_t magnitude = negative ? uint64_t{0} - static_cast<uint64_t>(fen)
                                      : static_cast<uint64_t>(fen);
  return absl::StrFormat("%s%d.%02d CNY", negative ? "-" : "", magnitude / 100,
                         magnitude % 100);
}

namespace {

absl::Status BadMoney(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("amount \"", text, "\": ", why,
                   " (expected e.g. 1234.56, ¥8,000,000, 8M, 300k or 50万)"));
}

// Checks that commas in `digits` separate groups of exactly three digits
// and returns the digits without them.
absl::StatusOr<std::string> StripGrouping(absl::string_view text,
                                          absl::string_view digits) {
  if (!absl::StrContains(digits, ',')) return std::string(digits);
  std::string out;
  size_t group = 0;
  bool first_group = true;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (digits[i] == ',') {
      if ((first_group && (group == 0 || group > 3)) ||
          (!first_group && group != 3)) {
        return BadMoney(text, "commas must separate groups of three digits");
      }
      first_group = false;
      group = 0;
      continue;
    }
    out.push_back(digits[i]);
    ++group;
  }
  if (group != 3) {
    return BadMoney(text, "commas must separate groups of three digits");
  }
  return out;
}

}  // namespace

absl::StatusOr<int64_t> ParseMoney(absl::string_view text) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  if (s.empty()) return BadMoney(text, "empty");
  bool negative = false;
  if (absl::ConsumePrefix(&s, "-")) negative = true;
  if (!absl::ConsumePrefix(&s, "¥")) absl::ConsumePrefix(&s, "￥");
  if (absl::ConsumeSuffix(&s, "CNY")) s = absl::StripTrailingAsciiWhitespace(s);

  // Multiplier suffix, expressed as a power of ten of yuan.
  int suffix_exponent = 0;
  if (absl::ConsumeSuffix(&s, "万")) {
    suffix_exponent = 4;
  } else if (!s.empty() && (s.back() == 'M' || s.back() == 'm')) {
    suffix_exponent = 6;
    s.remove_suffix(1);
  } else if (!s.empty() && (s.back() == 'K' || s.back() == 'k')) {
    suffix_exponent = 3;
    s.remove_suffix(1);
  }
  if (s.empty()) return BadMoney(text, "no digits");

  absl::string_view int_part = s;
  absl::string_view frac_part;
  const size_t dot = s.find('.');
  if (dot != absl::string_view::npos) {
    int_part = s.substr(0, dot);
    frac_part = s.substr(dot + 1);
    if (frac_part.empty()) return BadMoney(text, "no digits after '.'");
  }
  if (int_part.empty()) return BadMoney(text, "no digits before '.'");
  ASSIGN_OR_RETURN(std::string whole, StripGrouping(text, int_part));
  for (char c : whole) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return BadMoney(
          text, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
  }
  for (char c : frac_part) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return BadMoney(
          text, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
  }
  // Value in fen = (whole.frac) × 10^(suffix_exponent + 2). Shift the
  // decimal point right and require no non-zero digit left behind it.
  const int shift = suffix_exponent + 2;
  std::string digits = whole + std::string(frac_part);
  const int frac_len = static_cast<int>(frac_part.size());
  if (frac_len > shift) {
    for (size_t i = whole.size() + shift; i < digits.size(); ++i) {
      if (digits[i] != '0') {
        return BadMoney(text, "more precision than one fen");
      }
    }
    digits.resize(whole.size() + shift);
  } else {
    digits.append(shift - frac_len, '0');
  }
  // Accumulate the magnitude in uint64 so that INT64_MIN, whose magnitude
  // does not fit in int64, parses too.
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  uint64_t magnitude = 0;
  for (char c : digits) {
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (magnitude > (limit - digit) / 10) {
      return absl::OutOfRangeError(
          absl::StrCat("amount \"", text, "\": too large"));
    }
    magnitude = magnitude * 10 + digit;
  }
  return negative ? static_cast<int64_t>(uint64_t{0} - magnitude)
                  : static_cast<int64_t>(magnitude);
}

}  // namespace computevoucher
