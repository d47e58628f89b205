#include "common/validate.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace cv {
namespace {

// Shows at most the first 64 characters of a rejected value, so that a huge
// input does not produce a huge message.
std::string Shown(absl::string_view value) {
  if (value.size() <= 64) return absl::StrCat("\"", value, "\"");
  return absl::StrCat("\"", value.substr(0, 64), "...\" (", value.size(),
                      " bytes)");
}

}  // namespace

int64_t Utf8Length(absl::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

absl::Status CheckLength(absl::string_view field, absl::string_view value,
                         int64_t min, int64_t max) {
  const int64_t length = Utf8Length(value);
  if (length >= min && length <= max) return absl::OkStatus();
  if (min == max) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": must be ", min, " characters, got ", length));
  }
  if (length == 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": must be ", min, "..", max, " characters, got ", length));
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
    return absl::InvalidArgumentError(absl::StrCat(
        "request_id: must be 1..128 characters, got ", request_id.size()));
  }
  for (char c : request_id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != ':' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("request_id: ", Shown(request_id),
                       " may contain only A-Z a-z 0-9 . _ : -"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckIdRef(absl::string_view field, absl::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", Shown(id), " is not a valid id"));
  }
  return absl::OkStatus();
}

}  // namespace cv
