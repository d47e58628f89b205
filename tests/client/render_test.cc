// How voucherctl shows things (client/internal/render.h): cell formats,
// widths of Chinese text, CSV written and read back, and a table.
#include "client/internal/render.h"

#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/gb18030.h"

namespace computevoucher::client {
namespace {

using ::computevoucher::testing::FromGb18030;

TEST(Render, Percentages) {
  const std::vector<std::pair<int32_t, std::string>> cases = {
      {0, "0%"}, {3000, "30%"}, {1250, "12.5%"}, {1, "0.01%"}, {10'000, "100%"}};
  for (const auto& [bp, want] : cases) EXPECT_EQ(FormatPercent(bp), want) << bp;
}

TEST(Render, GpuHours) {
  const std::vector<std::pair<int64_t, std::string>> cases = {
      {0, "0.000"}, {3'600'000, "1.000"}, {5'400'000, "1.500"}, {3'600, "0.001"}};
  for (const auto& [ms, want] : cases) EXPECT_EQ(FormatGpuHours(ms), want) << ms;
}

TEST(Render, WideCharactersTakeTwoColumns) {
  const std::vector<std::pair<std::string, int>> cases = {
      {"", 0}, {"abc", 3}, {"算力券", 6}, {"E-1 杭州", 8}};
  for (const auto& [text, want] : cases) EXPECT_EQ(DisplayWidth(text), want) << text;
}

TEST(Render, CsvIsWrittenAndReadBack) {
  const std::vector<std::vector<std::string>> rows = {
      {"id", "name", "note"},
      {"E-000001", "杭州某机器人, 有限公司", "said \"hi\""},
      {"E-000002", "", "two\nlines"},
  };
  std::string text;
  for (const auto& row : rows) text += CsvLine(row) + "\r\n";
  EXPECT_EQ(CsvLine(rows[1]),
            "E-000001,\"杭州某机器人, 有限公司\",\"said \"\"hi\"\"\"");
  absl::StatusOr<std::vector<std::vector<std::string>>> back =
      ParseCsv("rows.csv", text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, rows);
  const auto bad = ParseCsv("rows.csv", "a,b\n\"open,c\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("rows.csv"));
}

TEST(Render, TablesAlignTextLeftAndAmountsRight) {
  View view;
  view.columns = {{"ID", "id"}, {"NAME", "name"}, {"BALANCE", "balance_cny"}};
  view.rows = {{std::string("E-1"), std::string("算力"), Money{123'45}},
               {std::string("E-22"), std::string("ab"), Money{5}}};
  std::ostringstream table;
  Printer(Format::kTable, /*utc=*/true, table).Print(view);
  EXPECT_EQ(table.str(),
            "ID    NAME  BALANCE\n"
            "E-1   算力  123.45 CNY\n"
            "E-22  ab      0.05 CNY\n");
  std::ostringstream csv;
  Printer(Format::kCsv, /*utc=*/true, csv).Print(view);
  EXPECT_EQ(csv.str(),
            "id,name,balance_cny\r\n"
            "E-1,算力,123.45\r\n"
            "E-22,ab,0.05\r\n");
}

// Text others wrote (an application's purpose) cannot forge a row or send
// escape sequences to the terminal; a record keeps its lines.
TEST(Render, ControlCharactersCannotForgeRowsOrEscapes) {
  View view;
  view.columns = {{"ID", "id"}, {"PURPOSE", "purpose"}};
  view.rows = {
      {std::string("AP-1"), std::string("x\nAP-2  forged\x1b[31mred\tend")}};
  std::ostringstream table;
  Printer(Format::kTable, /*utc=*/true, table).Print(view);
  EXPECT_EQ(table.str(),
            "ID    PURPOSE\n"
            "AP-1  x AP-2  forged?[31mred end\n");
  view.record = true;
  std::ostringstream record;
  Printer(Format::kTable, /*utc=*/true, record).Print(view);
  EXPECT_EQ(record.str(),
            "ID:       AP-1\n"
            "Purpose:  x\n"
            "          AP-2  forged?[31mred end\n");
}

TEST(Render, Gb18030EncodesEveryCharacterAndMarksMalformedBytes) {
  ASSERT_TRUE(CheckGb18030().ok());
  // Two-byte UTF-8 that takes four bytes in GB18030, a character outside
  // the BMP, and enough of them to fill the conversion buffer many times.
  std::string text;
  for (int i = 0; i < 3000; ++i) text += "é·杭😀";
  const std::string gb = ToGb18030(text);
  EXPECT_NE(gb, text);
  EXPECT_EQ(FromGb18030(gb), text);
  EXPECT_EQ(ToGb18030("a\xFF"
                      "b"),
            "a?b");
  EXPECT_EQ(ToGb18030("ab\xE6"), "ab?");  // truncated at the end
}

TEST(Render, SpreadsheetCellsKeepDigitsAndRunNoFormulas) {
  EXPECT_EQ(SpreadsheetText("914403001922038216"), "=\"914403001922038216\"");
  EXPECT_EQ(SpreadsheetText("2026-11"), "=\"2026-11\"");
  EXPECT_EQ(SpreadsheetText("91350100M000100Y43"), "91350100M000100Y43");
  EXPECT_EQ(SpreadsheetText("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
  EXPECT_EQ(SpreadsheetText("+1"), "'+1");
  EXPECT_EQ(SpreadsheetText("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(SpreadsheetText("-1+2"), "'-1+2");
  EXPECT_EQ(SpreadsheetText("-"), "-");
  EXPECT_EQ(SpreadsheetText("杭州"), "杭州");
  EXPECT_EQ(SpreadsheetText(""), "");

  View view;
  view.columns = {{"CODE", "code"}, {"AMOUNT", "amount_cny"}};
  view.rows = {{std::string("914403001922038216"), Money{-1234}}};
  std::ostringstream plain, excel;
  Printer(Format::kCsv, false, plain).Print(view);
  Printer(Format::kCsv, false, excel, Encoding::kUtf8Bom).Print(view);
  EXPECT_EQ(plain.str(), "code,amount_cny\r\n914403001922038216,-12.34\r\n");
  EXPECT_EQ(excel.str(),
            "\xEF\xBB\xBF"
            "code,amount_cny\r\n\"=\"\"914403001922038216\"\"\","
            "-12.34\r\n");
}

}  // namespace
}  // namespace computevoucher::client
