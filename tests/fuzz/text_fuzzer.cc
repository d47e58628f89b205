// libFuzzer target: the text every request and flag goes through —
// validation (CheckText, CheckLength, CheckRequestId, CheckIdRef), quoting,
// cleaning, money parsing, and the agent's inventory and price flags. Never
// crashes, and keeps the promises of the headers:
//   - CleanText's output passes CheckText;
//   - TruncateUtf8 returns a prefix no longer than asked;
//   - Quoted stays short whatever the input;
//   - a parsed amount formats and parses back to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/gpus.h"
#include "common/money.h"
#include "common/validate.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  for (cv::TextLines lines : {cv::TextLines::kOne, cv::TextLines::kMany}) {
    const std::string clean = cv::CleanText(text, 1024, lines);
    Require(cv::CheckText("f", clean, 0, 1024, lines).ok());
    (void)cv::CheckText("f", text, 0, 1024, lines);
  }
  for (size_t max : {size_t{0}, size_t{1}, size_t{7}, size_t{64}, size}) {
    const absl::string_view cut = cv::TruncateUtf8(text, max);
    Require(cut.size() <= max || text.size() <= max);
    Require(text.substr(0, cut.size()) == cut);
  }
  Require(cv::Quoted(text).size() <= 100);
  (void)cv::CheckLength("f", text, 1, 64);
  (void)cv::CheckRequestId(text);
  (void)cv::CheckIdRef("f", text);
  (void)cv::Utf8Length(text);
  if (absl::StatusOr<int64_t> fen = cv::ParseMoney(text); fen.ok()) {
    absl::StatusOr<int64_t> again = cv::ParseMoney(cv::FormatFen(*fen));
    Require(again.ok() && *again == *fen);
  }
  if (absl::StatusOr<std::vector<cv::agent::pb::GpuModel>> inventory =
          cv::agent::ParseInventory(text);
      inventory.ok()) {
    (void)cv::agent::ApplyPrices(text, *inventory);
  }
  return 0;
}
