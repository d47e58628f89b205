#include "common/validate.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace computevoucher {
namespace {

bool IsContinuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Decodes the well-formed UTF-8 sequence at `s[*i]` into `*code_point` and
// advances `*i` past it; false (and `*i` unchanged) if it is malformed.
bool DecodeUtf8(absl::string_view s, size_t* i, uint32_t* code_point) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = at(*i);
  if (lead < 0x80) {
    *code_point = lead;
    ++*i;
    return true;
  }
  size_t extra;
  uint32_t cp;
  // The range of the second byte rules out overlong forms, surrogates and
  // code points past U+10FFFF (RFC 3629, section 4).
  unsigned char low = 0x80, high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    extra = 1;
    cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    extra = 2;
    cp = lead & 0x0F;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    extra = 3;
    cp = lead & 0x07;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return false;
  }
  if (*i + extra >= s.size()) return false;
  if (at(*i + 1) < low || at(*i + 1) > high) return false;
  for (size_t k = 1; k <= extra; ++k) {
    if (!IsContinuation(at(*i + k))) return false;
    cp = (cp << 6) | (at(*i + k) & 0x3F);
  }
  *code_point = cp;
  *i += 1 + extra;
  return true;
}

// Whether CheckText lets code point `cp` through.
bool Allowed(uint32_t cp, TextLines lines) {
  const bool control = cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
  return !control || (cp == '\n' && lines == TextLines::kMany);
}

}  // namespace

absl::string_view TruncateUtf8(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  // Back off to the start of the sequence the cut would split; a run of
  // stray continuation bytes is cut anyway.
  size_t cut = max_bytes;
  for (int k = 0;
       k < 3 && cut > 0 && IsContinuation(static_cast<unsigned char>(s[cut]));
       ++k) {
    --cut;
  }
  if (IsContinuation(static_cast<unsigned char>(s[cut]))) cut = max_bytes;
  return s.substr(0, cut);
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

absl::Status CheckText(absl::string_view field, absl::string_view value,
                       int64_t min, int64_t max, TextLines lines) {
  int64_t character = 0;
  for (size_t i = 0; i < value.size();) {
    const size_t at = i;
    uint32_t cp = 0;
    if (!DecodeUtf8(value, &i, &cp)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field,
                       ": must be valid UTF-8, got a malformed "
                       "sequence at byte offset ",
                       at));
    }
    if (!Allowed(cp, lines)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": must be ",
          lines == TextLines::kMany ? "printable text (line feeds allowed)"
                                    : "one line of printable text",
          ", got ", absl::StrFormat("U+%04X", cp), " at character offset ",
          character));
    }
    ++character;
  }
  return CheckLength(field, value, min, max);
}

std::string CleanText(absl::string_view value, int64_t max_chars,
                      TextLines lines) {
  std::string out;
  int64_t characters = 0;
  for (size_t i = 0; i < value.size() && characters < max_chars;
       ++characters) {
    const size_t at = i;
    uint32_t cp = 0;
    if (!DecodeUtf8(value, &i, &cp)) {
      out += '?';
      i = at + 1;
    } else if (!Allowed(cp, lines)) {
      out += '?';
    } else {
      out.append(value.data() + at, i - at);
    }
  }
  return out;
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

absl::Status CheckIdFilter(absl::string_view field, absl::string_view id) {
  return id.empty() ? absl::OkStatus() : CheckIdRef(field, id);
}

}  // namespace computevoucher
