// Field validation shared by the scheduler core, the API layer and the
// client. Every error is InvalidArgument and names the field, the value and
// the rule, e.g. "gpu_count: must be 1..1024, got 0".
#ifndef COMPUTEVOUCHER_COMMON_VALIDATE_H_
#define COMPUTEVOUCHER_COMMON_VALIDATE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace computevoucher {

// Number of Unicode code points in UTF-8 `s`; every byte that is not part
// of a well-formed sequence counts as one.
int64_t Utf8Length(absl::string_view s);

// The longest prefix of `s` of at most `max_bytes` bytes that does not cut
// a UTF-8 sequence in two.
absl::string_view TruncateUtf8(absl::string_view s, size_t max_bytes);

// `value` quoted for an error message, cut after at most 64 bytes (never
// inside a UTF-8 sequence) so that a huge input does not make a huge
// message.
std::string Quoted(absl::string_view value);

// `value` has min..max code points.
absl::Status CheckLength(absl::string_view field, absl::string_view value,
                         int64_t min, int64_t max);

// Whether line feeds are allowed in CheckText.
enum class TextLines { kOne, kMany };

// `value` is text that is safe to store, log and show: well-formed UTF-8
// (no overlong forms or surrogates), no control character (U+0000..U+001F,
// U+007F..U+009F) except a line feed where `lines` is kMany, and
// min..max code points. A value that fails one of the first two rules is
// not echoed (the message gives the byte or character where it fails); an
// over-long one is echoed as Quoted() shortens it.
absl::Status CheckText(absl::string_view field, absl::string_view value,
                       int64_t min, int64_t max, TextLines lines);

// `value` made to pass CheckText(…, 0, max_chars, lines): malformed bytes
// and control characters become '?' (a line feed too where `lines` is
// kOne), and the result is cut to `max_chars` code points. For text a
// process forwards from elsewhere (Slurm's job and step names are the
// tenant's) and must not have refused.
std::string CleanText(absl::string_view value, int64_t max_chars,
                      TextLines lines);

// min <= value <= max.
absl::Status CheckRange(absl::string_view field, int64_t value, int64_t min,
                        int64_t max);

// A client-chosen idempotency key: 1..128 characters of [A-Za-z0-9._:-].
absl::Status CheckRequestId(absl::string_view request_id);

// A reference to an object by id: 1..128 characters.
absl::Status CheckIdRef(absl::string_view field, absl::string_view id);

// An optional filter by id: empty (no filter) or as CheckIdRef.
absl::Status CheckIdFilter(absl::string_view field, absl::string_view id);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_VALIDATE_H_
