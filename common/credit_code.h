// Unified social credit codes (统一社会信用代码, GB 32100-2015).
#ifndef COMPUTEVOUCHER_COMMON_CREDIT_CODE_H_
#define COMPUTEVOUCHER_COMMON_CREDIT_CODE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace computevoucher {

// Trims surrounding whitespace, upper-cases, and checks the code: 18
// characters from "0123456789ABCDEFGHJKLMNPQRTUWXY", an administrative
// division code of six digits in positions 3..8, and the GB 32100-2015
// check character in position 18. Returns the normalised code, or
// InvalidArgument naming `field`, the input and the rule broken.
absl::StatusOr<std::string> NormalizeCreditCode(absl::string_view field,
                                                absl::string_view code);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_CREDIT_CODE_H_
