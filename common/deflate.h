// Deflated bytes that say their own length: what the scheduler stores of
// snapshots and of each batch of the command log, which are mostly repeated
// ids, account names and timestamps.
#ifndef COMPUTEVOUCHER_COMMON_DEFLATE_H_
#define COMPUTEVOUCHER_COMMON_DEFLATE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace computevoucher {

// The length of `bytes` (8 bytes, little-endian), then `bytes` deflated at
// level 1 (most of the gain for a fraction of the time).
std::string Deflate(absl::string_view bytes);

// What Deflate was given; DataLossError saying what is wrong with `stored`
// (as "it ...") when it is not the output of Deflate, or says it holds more
// than `max_bytes` (so that a corrupt length asks for no more).
absl::StatusOr<std::string> Inflate(absl::string_view stored,
                                    uint64_t max_bytes);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_DEFLATE_H_
