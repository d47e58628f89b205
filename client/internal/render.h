// Output of every command in one place: a View (columns and rows, or one
// record) printed as an aligned table, RFC 4180 CSV, or the API message as
// JSON. Also the CSV reader for the commands that take CSV files.
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_RENDER_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_RENDER_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace computevoucher::client {

// kWide: a table with every field, as a record shows them.
enum class Format { kTable, kJson, kCsv, kWide, kYaml };

// The words of -o: "table", "json", "csv", "wide", "yaml".
const std::vector<std::string>& FormatWords();
Format FormatFromWord(absl::string_view word);

// How CSV is encoded: UTF-8, UTF-8 with a byte-order mark (which Excel
// needs to read UTF-8), or GB18030 (what spreadsheets set up for China
// read by default).
enum class Encoding { kUtf8, kUtf8Bom, kGb18030 };

// The words of --encoding: "utf-8", "utf-8-bom", "gb18030".
const std::vector<std::string>& EncodingWords();
Encoding EncodingFromWord(absl::string_view word);

// `utf8` in GB18030, which encodes every Unicode character; a malformed
// UTF-8 byte becomes '?'.
std::string ToGb18030(absl::string_view utf8);
// FailedPrecondition when this system cannot convert to GB18030 (no gconv
// modules), so that --encoding gb18030 never writes UTF-8 silently.
absl::Status CheckGb18030();

// A text cell as CSV for spreadsheets gives it: one that looks like a
// number or date (a credit code of digits, "2026-11") as ="…", so that
// its digits stay; one a spreadsheet would run as a formula (=, +, @, -)
// with a leading '.
std::string SpreadsheetText(const std::string& text);

// An amount in fen: "1234.56 CNY" in tables, "1234.56" in CSV.
struct Money {
  int64_t fen;
};
// GPU-milliseconds shown as GPU-hours with three decimals.
struct GpuHours {
  int64_t gpu_ms;
};
// A bound of a window or period at the start of an Asia/Shanghai day shown
// as the day it names: a start as its day, an exclusive end as the last day
// it includes ("valid until 2027-12-05" is stored as 2027-12-06 00:00
// +08:00). A bound at another instant is shown as the instant, and CSV
// always has the instant.
struct Day {
  google::protobuf::Timestamp at;
  bool end = false;
};
// A cell: text (left-aligned), a number, money or GPU-hours
// (right-aligned), or an instant (Asia/Shanghai, or UTC under --utc; "-"
// when unset).
using Cell = std::variant<std::string, int64_t, Money, GpuHours,
                          google::protobuf::Timestamp, Day>;

struct Column {
  // Table header, e.g. "FACE VALUE".
  std::string header;
  // CSV header, e.g. "face_value_cny".
  std::string key;
  // Shown only with -o wide (a field a record shows but a list does not).
  bool wide = false;
};

struct View {
  std::vector<Column> columns;
  std::vector<std::vector<Cell>> rows;
  // One record: in a table, printed as "Label:  value" lines.
  bool record = false;
  // What -o json and -o yaml print (the API's answer); not owned.
  const google::protobuf::Message* message = nullptr;
  // Printed under a table only, e.g. a total.
  std::string footer;
};

// `view` without its wide-only columns.
View Narrow(const View& view);

// "30%", "12.5%".
std::string FormatPercent(int32_t bp);
// "1.500" GPU-hours.
std::string FormatGpuHours(int64_t gpu_ms);
// Columns `s` takes in a terminal: East Asian wide characters take two.
int DisplayWidth(absl::string_view s);

// One CSV record (no line end), quoting fields per RFC 4180.
std::string CsvLine(const std::vector<std::string>& fields);
// Parses RFC 4180 CSV (quoted fields may hold commas, quotes and line
// breaks; CRLF or LF line ends); blank lines are skipped. InvalidArgument
// naming `name` and the line of an unterminated quote.
absl::StatusOr<std::vector<std::vector<std::string>>> ParseCsv(
    absl::string_view name, absl::string_view text);

class Printer {
 public:
  Printer(Format format, bool utc, std::ostream& out,
          Encoding encoding = Encoding::kUtf8)
      : format_(format), utc_(utc), encoding_(encoding), out_(out) {}

  Format format() const { return format_; }
  // Tables and CSV without their header line (--no-headers).
  void set_headers(bool headers) { headers_ = headers; }
  // Prints `view` in the format.
  void Print(const View& view);
  // One change of a stream: JSON on one line, or a YAML document after
  // "---"; flushed, so that a pipe gets it at once.
  void PrintChange(const google::protobuf::Message& message);
  // A cell as the table (csv=false) or CSV shows it.
  std::string Text(const Cell& cell, bool csv) const;
  std::ostream& out() { return out_; }

 private:
  void PrintTable(const View& view);
  void PrintRecord(const View& view);
  void PrintCsv(const View& view);

  const Format format_;
  const bool utc_;
  const Encoding encoding_;
  bool headers_ = true;
  std::ostream& out_;
};

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_RENDER_H_
