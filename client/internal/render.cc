#include "client/internal/render.h"

#include <iconv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "client/internal/structured.h"
#include "common/money.h"
#include "common/time_util.h"

namespace computevoucher::client {
namespace {

// Decodes one UTF-8 code point at `s[*i]` and advances `*i`; a malformed
// byte is returned as itself.
uint32_t NextCodePoint(absl::string_view s, size_t* i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = byte(*i);
  int extra = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
  if (*i + extra >= s.size()) extra = 0;
  uint32_t cp = extra == 0 ? b : (b & (0x3F >> extra));
  for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (byte(*i + k) & 0x3F);
  *i += 1 + extra;
  return cp;
}

bool IsWide(uint32_t cp) {
  return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
         (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
         (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD);
}

bool RightAligned(const Cell& cell) {
  return !std::holds_alternative<std::string>(cell) &&
         !std::holds_alternative<google::protobuf::Timestamp>(cell) &&
         !std::holds_alternative<Day>(cell);
}

// `text` safe to print on a terminal: tabs and line breaks become spaces
// (kept as line breaks when `keep_lines`), and other control characters,
// which could move the cursor or recolour the terminal, '?'. What others
// wrote (an application's purpose, a memo) cannot forge rows this way.
std::string Printable(absl::string_view text, bool keep_lines) {
  std::string out(text);
  for (char& ch : out) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (ch == '\n' && keep_lines) continue;
    if (ch == '\t' || ch == '\n' || ch == '\r') {
      ch = ' ';
    } else if (u < 0x20 || u == 0x7f) {
      ch = '?';
    }
  }
  return out;
}

std::string Pad(const std::string& text, int width, bool right) {
  const std::string spaces(std::max(0, width - DisplayWidth(text)), ' ');
  return right ? spaces + text : text + spaces;
}

// "FACE VALUE" -> "Face value", "USED GPU-HOURS" -> "Used GPU-hours".
std::string Label(const std::string& header) {
  std::string label;
  std::string word;
  const auto flush = [&] {
    if (word == "ID" || word == "OK" || word == "SME" || word == "GPU") {
      label += word;
    } else if (word == "GPUS") {
      label += "GPUs";
    } else {
      label += absl::AsciiStrToLower(word);
    }
    word.clear();
  };
  for (const char c : header) {
    if (c == ' ' || c == '-') {
      flush();
      label += c;
    } else {
      word += c;
    }
  }
  flush();
  if (!label.empty()) label[0] = absl::ascii_toupper(label[0]);
  return label;
}

}  // namespace

const std::vector<std::string>& FormatWords() {
  static const auto* const kWords =
      new std::vector<std::string>{"table", "json", "csv", "wide", "yaml"};
  return *kWords;
}

Format FormatFromWord(absl::string_view word) {
  if (word == "json") return Format::kJson;
  if (word == "yaml") return Format::kYaml;
  if (word == "csv") return Format::kCsv;
  if (word == "wide") return Format::kWide;
  return Format::kTable;
}

std::string FormatPercent(int32_t bp) {
  std::string text = absl::StrFormat("%d.%02d", bp / 100, bp % 100);
  absl::string_view trimmed = text;
  if (absl::EndsWith(trimmed, ".00")) {
    trimmed.remove_suffix(3);
  } else if (absl::EndsWith(trimmed, "0")) {
    trimmed.remove_suffix(1);
  }
  return absl::StrCat(trimmed, "%");
}

std::string FormatGpuHours(int64_t gpu_ms) {
  const int64_t milli_hours = gpu_ms / 3600;
  return absl::StrFormat("%d.%03d", milli_hours / 1000, milli_hours % 1000);
}

int DisplayWidth(absl::string_view s) {
  int width = 0;
  for (size_t i = 0; i < s.size();)
    width += IsWide(NextCodePoint(s, &i)) ? 2 : 1;
  return width;
}

std::string CsvLine(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line += ',';
    const std::string& f = fields[i];
    if (f.find_first_of(",\"\r\n") == std::string::npos) {
      line += f;
      continue;
    }
    line += '"';
    for (const char c : f) {
      if (c == '"') line += '"';
      line += c;
    }
    line += '"';
  }
  return line;
}

absl::StatusOr<std::vector<std::vector<std::string>>> ParseCsv(
    absl::string_view name, absl::string_view text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;
  bool field_started = false;
  int line = 1;
  int quote_line = 0;
  const auto end_record = [&] {
    if (field_started || !record.empty()) {
      record.push_back(std::move(field));
      records.push_back(std::move(record));
    }
    record.clear();
    field.clear();
    field_started = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      quote_line = line;
      field_started = true;
    } else if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
      field_started = true;
    } else if (c == '\n') {
      end_record();
      ++line;
    } else if (c != '\r') {
      field += c;
      field_started = true;
    }
  }
  if (quoted) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": line ", quote_line, ": a quoted field is never closed"));
  }
  end_record();
  return records;
}

std::string Printer::Text(const Cell& cell, bool csv) const {
  if (const auto* text = std::get_if<std::string>(&cell)) return *text;
  if (const auto* number = std::get_if<int64_t>(&cell)) {
    return absl::StrCat(*number);
  }
  if (const auto* money = std::get_if<Money>(&cell)) {
    const std::string text = FormatFen(money->fen);
    return csv ? std::string(absl::StripSuffix(text, " CNY")) : text;
  }
  if (const auto* hours = std::get_if<GpuHours>(&cell)) {
    return FormatGpuHours(hours->gpu_ms);
  }
  if (const auto* bound = std::get_if<Day>(&cell)) {
    // CSV keeps the instant itself, as before, for the programs reading it.
    if (csv) return Text(bound->at, csv);
    const absl::Time at = absl::FromUnixSeconds(bound->at.seconds()) +
                          absl::Nanoseconds(bound->at.nanos());
    const absl::CivilDay day = absl::ToCivilDay(at, ShanghaiZone());
    if (bound->at.seconds() != 0 && at == StartOfDay(day)) {
      return absl::FormatCivilTime(bound->end ? day - 1 : day);
    }
    return Text(bound->at, csv);
  }
  const auto& ts = std::get<google::protobuf::Timestamp>(cell);
  if (ts.seconds() == 0 && ts.nanos() == 0) return csv ? "" : "-";
  return FormatInstant(
      absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos()),
      utc_);
}

void Printer::Print(const View& view) {
  switch (format_) {
    case Format::kJson:
      if (view.message != nullptr) out_ << ToJson(*view.message, false) << "\n";
      return;
    case Format::kYaml:
      if (view.message != nullptr) out_ << ToYaml(*view.message);
      return;
    case Format::kCsv:
      PrintCsv(Narrow(view));
      return;
    case Format::kTable:
    case Format::kWide:
      view.record ? PrintRecord(view)
                  : PrintTable(format_ == Format::kWide ? view : Narrow(view));
      if (!view.footer.empty()) out_ << view.footer << "\n";
      return;
  }
}

View Narrow(const View& view) {
  View out;
  out.record = view.record;
  out.message = view.message;
  out.footer = view.footer;
  std::vector<size_t> kept;
  for (size_t i = 0; i < view.columns.size(); ++i) {
    if (view.columns[i].wide) continue;
    kept.push_back(i);
    out.columns.push_back(view.columns[i]);
  }
  for (const std::vector<Cell>& row : view.rows) {
    std::vector<Cell>& cells = out.rows.emplace_back();
    for (size_t i : kept) cells.push_back(row[i]);
  }
  return out;
}

void Printer::PrintChange(const google::protobuf::Message& message) {
  if (format_ == Format::kYaml) {
    out_ << "---\n" << ToYaml(message);
  } else {
    out_ << ToJson(message, true) << "\n";
  }
  // A stream of changes is read as it comes, through a pipe too.
  out_.flush();
}

void Printer::PrintTable(const View& view) {
  std::vector<std::vector<std::string>> texts;
  std::vector<int> widths;
  for (const Column& column : view.columns) {
    widths.push_back(DisplayWidth(column.header));
  }
  for (const std::vector<Cell>& row : view.rows) {
    std::vector<std::string>& line = texts.emplace_back();
    for (size_t i = 0; i < row.size(); ++i) {
      line.push_back(Printable(Text(row[i], false), false));
      widths[i] = std::max(widths[i], DisplayWidth(line.back()));
    }
  }
  const auto print_line = [&](const std::vector<std::string>& cells,
                              const std::vector<Cell>* row) {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i > 0) line += "  ";
      line +=
          Pad(cells[i], widths[i], row != nullptr && RightAligned((*row)[i]));
    }
    out_ << std::string(absl::StripTrailingAsciiWhitespace(line)) << "\n";
  };
  std::vector<std::string> headers;
  for (const Column& column : view.columns) headers.push_back(column.header);
  if (headers_) print_line(headers, nullptr);
  for (size_t r = 0; r < texts.size(); ++r) print_line(texts[r], &view.rows[r]);
}

void Printer::PrintRecord(const View& view) {
  for (const std::vector<Cell>& row : view.rows) {
    int width = 0;
    for (const Column& column : view.columns) {
      width = std::max(width, DisplayWidth(column.header) + 1);
    }
    // A value of several lines continues under its first line.
    const std::string indent = "\n" + std::string(width + 2, ' ');
    for (size_t i = 0; i < row.size(); ++i) {
      out_ << Pad(Label(view.columns[i].header) + ":", width, false) << "  "
           << absl::StrReplaceAll(Printable(Text(row[i], false), true),
                                  {{"\n", indent}})
           << "\n";
    }
  }
}

void Printer::PrintCsv(const View& view) {
  std::vector<std::string> keys;
  for (const Column& column : view.columns) keys.push_back(column.key);
  std::string text = headers_ ? absl::StrCat(CsvLine(keys), "\r\n") : "";
  // The encodings for spreadsheets get text cells as spreadsheets must
  // read them.
  const bool spreadsheet = encoding_ != Encoding::kUtf8;
  for (const std::vector<Cell>& row : view.rows) {
    std::vector<std::string> fields;
    for (const Cell& cell : row) {
      fields.push_back(spreadsheet && std::holds_alternative<std::string>(cell)
                           ? SpreadsheetText(std::get<std::string>(cell))
                           : Text(cell, true));
    }
    absl::StrAppend(&text, CsvLine(fields), "\r\n");
  }
  switch (encoding_) {
    case Encoding::kUtf8:
      out_ << text;
      return;
    case Encoding::kUtf8Bom:
      out_ << "\xEF\xBB\xBF" << text;
      return;
    case Encoding::kGb18030:
      out_ << ToGb18030(text);
      return;
  }
}

const std::vector<std::string>& EncodingWords() {
  static const auto* const kWords =
      new std::vector<std::string>{"utf-8", "utf-8-bom", "gb18030"};
  return *kWords;
}

Encoding EncodingFromWord(absl::string_view word) {
  if (word == "utf-8-bom") return Encoding::kUtf8Bom;
  if (word == "gb18030") return Encoding::kGb18030;
  return Encoding::kUtf8;
}

absl::Status CheckGb18030() {
  iconv_t cd = iconv_open("GB18030", "UTF-8");
  if (cd == reinterpret_cast<iconv_t>(-1)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--encoding gb18030: this system cannot convert to GB18030 (",
        std::strerror(errno), "); install the C library's gconv modules"));
  }
  iconv_close(cd);
  return absl::OkStatus();
}

std::string ToGb18030(absl::string_view utf8) {
  iconv_t cd = iconv_open("GB18030", "UTF-8");
  if (cd == reinterpret_cast<iconv_t>(-1)) return std::string(utf8);
  std::string out;
  std::string buffer(4096, '\0');
  char* in = const_cast<char*>(utf8.data());
  size_t in_left = utf8.size();
  while (in_left > 0) {
    char* next = buffer.data();
    size_t room = buffer.size();
    const size_t rc = iconv(cd, &in, &in_left, &next, &room);
    const int error = errno;
    out.append(buffer.data(), next - buffer.data());
    // E2BIG: the buffer is full, go on; otherwise a malformed or truncated
    // sequence: one '?' for its first byte.
    if (rc == static_cast<size_t>(-1) && error != E2BIG) {
      out.push_back('?');
      ++in;
      --in_left;
    }
  }
  iconv_close(cd);
  return out;
}

std::string SpreadsheetText(const std::string& text) {
  // All digits (a credit code with no letter, an id) or a month or date:
  // a formula that yields the text keeps its digits and form.
  const bool numeric_looking =
      !text.empty() &&
      absl::ascii_isdigit(static_cast<unsigned char>(text[0])) &&
      text.find_first_not_of("0123456789-./:") == std::string::npos;
  if (numeric_looking) return absl::StrCat("=\"", text, "\"");
  // Text others wrote that a spreadsheet would run as a formula.
  if (!text.empty() && (text[0] == '=' || text[0] == '+' || text[0] == '@' ||
                        (text[0] == '-' && text.size() > 1))) {
    return absl::StrCat("'", text);
  }
  return text;
}

}  // namespace computevoucher::client
