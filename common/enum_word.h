// Enum values as people read and type them, in messages of the servers and
// in voucherctl: the value's name without the enum's prefix, in lower case
// with dashes (VOUCHER_STATE_ACTIVE is "active", END_REASON_DURATION_REACHED
// "duration-reached").
#ifndef COMPUTEVOUCHER_COMMON_ENUM_WORD_H_
#define COMPUTEVOUCHER_COMMON_ENUM_WORD_H_

#include <string>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/generated_enum_reflection.h"

namespace computevoucher {

// The word of value `number`; the number itself when it is not a value.
std::string EnumWord(const google::protobuf::EnumDescriptor& descriptor,
                     int number);

template <typename E>
std::string EnumWord(E value) {
  return EnumWord(*google::protobuf::GetEnumDescriptor<E>(),
                  static_cast<int>(value));
}

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_ENUM_WORD_H_
