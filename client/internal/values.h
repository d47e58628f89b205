// Parsing of what people type as argument values, shared by flags,
// positional arguments and CSV cells. Every error is InvalidArgument and
// names the argument (`name`, e.g. "--gpus" or "row 3: amount"), the value
// and the rule, e.g. `--gpus: must be a whole number 1..1024, got "0"`.
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_VALUES_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_VALUES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/enum_word.h"
#include "google/protobuf/generated_enum_reflection.h"

namespace computevoucher::client {

// A positive amount of CNY in any form ParseMoney takes; returns fen.
absl::StatusOr<int64_t> ParseAmountArg(absl::string_view name,
                                       absl::string_view text);

// "YYYY-MM-DD", an Asia/Shanghai calendar date.
absl::StatusOr<absl::CivilDay> ParseDateArg(absl::string_view name,
                                            absl::string_view text);

// A whole number in min..max.
absl::StatusOr<int64_t> ParseCountArg(absl::string_view name,
                                      absl::string_view text, int64_t min,
                                      int64_t max);

// Hours as a decimal ("2", "1.5", "0.25"); returns whole seconds, which
// must be 60..31536000 (one minute to one year).
absl::StatusOr<int64_t> ParseHoursArg(absl::string_view name,
                                      absl::string_view text);

// A percentage 0..100 with at most two decimals ("30", "30%", "12.5%");
// returns basis points.
absl::StatusOr<int32_t> ParsePercentArg(absl::string_view name,
                                        absl::string_view text);

// An object id: 1..128 characters of [A-Za-z0-9._:-].
absl::StatusOr<std::string> ParseIdArg(absl::string_view name,
                                       absl::string_view text);

// A duration such as "2s", "500ms" or "1m", at least `min`.
absl::StatusOr<absl::Duration> ParseDurationArg(absl::string_view name,
                                                absl::string_view text,
                                                absl::Duration min);

// yes/no, true/false, 1/0 (any case).
absl::StatusOr<bool> ParseBoolArg(absl::string_view name,
                                  absl::string_view text);

// One of `choices`, exactly.
absl::Status CheckChoiceArg(absl::string_view name, absl::string_view text,
                            const std::vector<std::string>& choices);

// The words (EnumWord, common/enum_word.h) of every value except the
// unspecified one (number 0).
std::vector<std::string> EnumWords(
    const google::protobuf::EnumDescriptor& descriptor);
absl::StatusOr<int> ParseEnumWord(
    absl::string_view name, const google::protobuf::EnumDescriptor& descriptor,
    absl::string_view text);

template <typename E>
absl::StatusOr<E> ParseEnumArg(absl::string_view name, absl::string_view text) {
  absl::StatusOr<int> number =
      ParseEnumWord(name, *google::protobuf::GetEnumDescriptor<E>(), text);
  if (!number.ok()) return number.status();
  return static_cast<E>(*number);
}

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_VALUES_H_
