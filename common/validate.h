// Field validation shared by the scheduler core, the API layer and the
// client. Every error is InvalidArgument and names the field, the value and
// the rule, e.g. "gpu_count: must be 1..1024, got 0".
#ifndef COMPUTEVOUCHER_COMMON_VALIDATE_H_
#define COMPUTEVOUCHER_COMMON_VALIDATE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cv {

// Number of Unicode code points in UTF-8 `s`; every byte that is not part
// of a well-formed sequence counts as one.
int64_t Utf8Length(absl::string_view s);

// The longest prefix of `s` of at most `max_bytes` bytes that does not cut
// a UTF-8 sequence in two.
absl::string_view TruncateUtf8(absl::string_view s, size_t max_bytes);

// `value` quoted for an error message, cut after 64 bytes so that a huge
// input does not make a huge message.
std::string Quoted(absl::string_view value);

// `value` has min..max code points.
absl::Status CheckLength(absl::string_view field, absl::string_view value,
                         int64_t min, int64_t max);

// min <= value <= max.
absl::Status CheckRange(absl::string_view field, int64_t value, int64_t min,
                        int64_t max);

// A client-chosen idempotency key: 1..128 characters of [A-Za-z0-9._:-].
absl::Status CheckRequestId(absl::string_view request_id);

// A reference to an object by id: 1..128 characters.
absl::Status CheckIdRef(absl::string_view field, absl::string_view id);

}  // namespace cv

#endif  // COMPUTEVOUCHER_COMMON_VALIDATE_H_
