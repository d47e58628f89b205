#include "client/internal/values.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/money.h"
#include "common/time_util.h"
#include "common/validate.h"

namespace computevoucher::client {
namespace {

absl::Status Bad(absl::string_view name, absl::string_view rule,
                 absl::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, ": ", rule, ", got ", Quoted(text)));
}

// Parses a non-negative decimal with at most `decimals` decimals into an
// integer scaled by 10^decimals; false when `text` is not one.
bool ParseFixedPoint(absl::string_view text, int decimals, int64_t* scaled) {
  absl::string_view whole = text;
  absl::string_view fraction;
  if (const size_t dot = text.find('.'); dot != absl::string_view::npos) {
    whole = text.substr(0, dot);
    fraction = text.substr(dot + 1);
    if (fraction.empty() || static_cast<int>(fraction.size()) > decimals) {
      return false;
    }
  }
  if (whole.empty() || whole.size() > 12) return false;
  for (const char c : absl::StrCat(whole, fraction)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(whole, &value)) return false;
  for (int i = 0; i < decimals; ++i) {
    value = value * 10 +
            (i < static_cast<int>(fraction.size()) ? fraction[i] - '0' : 0);
  }
  *scaled = value;
  return true;
}

}  // namespace

absl::StatusOr<int64_t> ParseAmountArg(absl::string_view name,
                                       absl::string_view text) {
  absl::StatusOr<int64_t> fen = ParseMoney(text);
  if (!fen.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", fen.status().message()));
  }
  if (*fen <= 0) return Bad(name, "must be an amount above 0 CNY", text);
  return *fen;
}

absl::StatusOr<absl::CivilDay> ParseDateArg(absl::string_view name,
                                            absl::string_view text) {
  return ParseDate(name, text);
}

absl::StatusOr<int64_t> ParseCountArg(absl::string_view name,
                                      absl::string_view text, int64_t min,
                                      int64_t max) {
  int64_t value = 0;
  const bool digits =
      !text.empty() &&
      (absl::ascii_isdigit(static_cast<unsigned char>(text[0])) ||
       text[0] == '-');
  if (!digits || !absl::SimpleAtoi(text, &value) || value < min ||
      value > max) {
    return Bad(name, absl::StrCat("must be a whole number ", min, "..", max),
               text);
  }
  return value;
}

absl::StatusOr<int64_t> ParseHoursArg(absl::string_view name,
                                      absl::string_view text) {
  constexpr int64_t kMinSeconds = 60;
  constexpr int64_t kMaxSeconds = 365 * 86'400;
  int64_t milli_hours = 0;
  if (!ParseFixedPoint(text, 3, &milli_hours) ||
      milli_hours * 3600 / 1000 < kMinSeconds ||
      milli_hours * 3600 / 1000 > kMaxSeconds) {
    return Bad(name,
               "must be a number of hours from 0.017 (one minute) to 8760 "
               "(one year) with at most three decimals",
               text);
  }
  return milli_hours * 3600 / 1000;
}

absl::StatusOr<int32_t> ParsePercentArg(absl::string_view name,
                                        absl::string_view text) {
  int64_t bp = 0;
  if (!ParseFixedPoint(absl::StripSuffix(text, "%"), 2, &bp) || bp > 10'000) {
    return Bad(name,
               "must be a percentage 0..100 with at most two decimals, e.g. "
               "30% or 12.5",
               text);
  }
  return static_cast<int32_t>(bp);
}

absl::StatusOr<std::string> ParseIdArg(absl::string_view name,
                                       absl::string_view text) {
  bool ok = !text.empty() && text.size() <= 128;
  for (const char c : text) {
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                c == '.' || c == '_' || c == ':' || c == '-');
  }
  if (!ok) {
    return Bad(name, "must be an id of 1..128 characters of [A-Za-z0-9._:-]",
               text);
  }
  return std::string(text);
}

absl::StatusOr<absl::Duration> ParseDurationArg(absl::string_view name,
                                                absl::string_view text,
                                                absl::Duration min) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < min) {
    return Bad(name,
               absl::StrCat("must be a duration of at least ",
                            absl::FormatDuration(min), " such as 2s or 500ms"),
               text);
  }
  return d;
}

absl::StatusOr<bool> ParseBoolArg(absl::string_view name,
                                  absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "yes" || lower == "true" || lower == "1") return true;
  if (lower == "no" || lower == "false" || lower == "0") return false;
  return Bad(name, "must be yes or no (or true/false, 1/0)", text);
}

absl::Status CheckChoiceArg(absl::string_view name, absl::string_view text,
                            const std::vector<std::string>& choices) {
  for (const std::string& choice : choices) {
    if (text == choice) return absl::OkStatus();
  }
  return Bad(name,
             absl::StrCat("must be one of ", absl::StrJoin(choices, ", ")),
             text);
}

std::vector<std::string> EnumWords(
    const google::protobuf::EnumDescriptor& descriptor) {
  std::vector<std::string> words;
  for (int i = 0; i < descriptor.value_count(); ++i) {
    const int number = descriptor.value(i)->number();
    if (number != 0) words.push_back(EnumWord(descriptor, number));
  }
  return words;
}

absl::StatusOr<int> ParseEnumWord(
    absl::string_view name, const google::protobuf::EnumDescriptor& descriptor,
    absl::string_view text) {
  const std::string word =
      absl::StrReplaceAll(absl::AsciiStrToLower(text), {{"_", "-"}});
  for (int i = 0; i < descriptor.value_count(); ++i) {
    const int number = descriptor.value(i)->number();
    if (number != 0 && EnumWord(descriptor, number) == word) return number;
  }
  const absl::Status bad = CheckChoiceArg(name, text, EnumWords(descriptor));
  return bad;
}

}  // namespace computevoucher::client
