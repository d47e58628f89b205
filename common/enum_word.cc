#include "common/enum_word.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace computevoucher {

std::string EnumWord(const google::protobuf::EnumDescriptor& descriptor,
                     int number) {
  const google::protobuf::EnumValueDescriptor* value =
      descriptor.FindValueByNumber(number);
  if (value == nullptr) return absl::StrCat(number);
  // Proto style names values ENUM_NAME_VALUE with ENUM_NAME_UNSPECIFIED = 0.
  const google::protobuf::EnumValueDescriptor* zero =
      descriptor.FindValueByNumber(0);
  const absl::string_view prefix =
      zero == nullptr ? absl::string_view()
                      : absl::StripSuffix(zero->name(), "UNSPECIFIED");
  return absl::StrReplaceAll(
      absl::AsciiStrToLower(absl::StripPrefix(value->name(), prefix)),
      {{"_", "-"}});
}

}  // namespace computevoucher
