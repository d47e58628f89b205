// SHA-256 through OpenSSL.
#ifndef COMPUTEVOUCHER_COMMON_SHA256_H_
#define COMPUTEVOUCHER_COMMON_SHA256_H_

#include <string>

#include "absl/strings/string_view.h"

namespace computevoucher {

inline constexpr size_t kSha256Bytes = 32;

// The 32-byte digest of `data`.
std::string Sha256(absl::string_view data);

// Lower-case hexadecimal of `bytes`.
std::string ToHex(absl::string_view bytes);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_SHA256_H_
