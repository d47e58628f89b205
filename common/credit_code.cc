#include "common/credit_code.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/validate.h"

namespace computevoucher {
namespace {

// The 31 characters of the code, by value (I, O, S, V and Z are excluded).
constexpr absl::string_view kAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
// Weight of position i is 3^i mod 31.
constexpr int kWeights[17] = {1,  3,  9,  27, 19, 26, 16, 17, 20,
                              29, 25, 13, 8,  24, 10, 30, 28};

int ValueOf(char c) {
  const size_t pos = kAlphabet.find(c);
  return pos == absl::string_view::npos ? -1 : static_cast<int>(pos);
}

}  // namespace

absl::StatusOr<std::string> NormalizeCreditCode(absl::string_view field,
                                                absl::string_view code) {
  std::string normal = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(code));
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": invalid unified social credit code ",
                     Quoted(code), ": ", why));
  };
  if (normal.size() != 18) {
    return bad(absl::StrCat("must be 18 characters, got ", normal.size()));
  }
  int sum = 0;
  for (size_t i = 0; i < normal.size(); ++i) {
    const int value = ValueOf(normal[i]);
    if (value < 0) {
      return bad(absl::StrCat("character ", i + 1, " '", normal.substr(i, 1),
                              "' is not one of ", kAlphabet));
    }
    if (i >= 2 && i < 8 && value > 9) {
      return bad(absl::StrCat(
          "characters 3-8 are the administrative division code and must be "
          "digits, character ",
          i + 1, " is '", normal.substr(i, 1), "'"));
    }
    if (i < 17) sum += value * kWeights[i];
  }
  const int check = (31 - sum % 31) % 31;
  if (ValueOf(normal[17]) != check) {
    return bad(absl::StrCat("check character must be '",
                            kAlphabet.substr(check, 1), "', got '",
                            normal.substr(17, 1), "'"));
  }
  return normal;
}

}  // namespace computevoucher
