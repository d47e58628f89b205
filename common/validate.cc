#include "common/validate.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace cv {

absl::string_view TruncateUtf8(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t end = max_bytes;
  // Back up over continuation bytes to the lead byte of the sequence that
  // would be cut, and drop that sequence whole.
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) {
    --end;
  }
  return s.substr(0, end);
}

std::string Quoted(absl::string_view value) {
  if (value.size() <= 64) return absl::StrCat("\"", value, "\"");
  return absl::StrCat("\"", TruncateUtf8(value, 64), "...\" (", value.size(),
                      " bytes)");
}

int64_t Utf8Length(absl::string_view s) {
  int64_t n = 0;
  size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    size_t continuation = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      continuation = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      continuation = 2;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      continuation = 3;
    }
    size_t j = 1;
    while (j <= continuation && i + j < s.size() &&
           (static_cast<unsigned char>(s[i + j]) & 0xC0) == 0x80) {
      ++j;
    }
    // A complete sequence is one code point; otherwise only the lead byte
    // is consumed and counted, and what follows is counted on its own.
    i += (j == continuation + 1) ? j : 1;
    ++n;
  }
  return n;
}

absl::Status CheckLength(absl::string_view field, absl::string_view value,
                         int64_t min, int64_t max) {
  const int64_t length = Utf8Length(value);
  if (length >= min && length <= max) return absl::OkStatus();
  if (length == 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  const std::string rule =
      min == max ? absl::StrCat(min) : absl::StrCat(min, "..", max);
  return absl::InvalidArgumentError(absl::StrCat(field, ": must be ", rule,
                                                 " characters, got ", length,
                                                 ": ", Quoted(value)));
}

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t min,
                        int64_t max) {
  if (value >= min && value <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be ", min, "..", max, ", got ", value));
}

absl::Status CheckRequestId(absl::string_view request_id) {
  if (request_id.empty()) {
    return absl::InvalidArgumentError(
        "request_id: required (a client-chosen idempotency key)");
  }
  if (request_id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id: must be 1..128 characters, got ",
                     request_id.size(), ": ", Quoted(request_id)));
  }
  for (char c : request_id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != ':' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("request_id: ", Quoted(request_id),
                       " may contain only A-Z a-z 0-9 . _ : -"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckIdRef(absl::string_view field, absl::string_view id) {
  if (id.empty())
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (Utf8Length(id) > 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", Quoted(id), " is not a valid id (1..128 characters)"));
  }
  return absl::OkStatus();
}

}  // namespace cv
