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
  for (computevoucher::TextLines lines : {computevoucher::TextLines::kOne, computevoucher::TextLines::kMany}) {
    const std::string clean = computevoucher::CleanText(text, 1024, lines);
    Require(computevoucher::CheckText("f", clean, 0, 1024, lines).ok());
    (void)computevoucher::CheckText("f", text, 0, 1024, lines);
  }
  for (size_t max : {size_t{0}, size_t{1}, size_t{7}, size_t{64}, size}) {
    const absl::string_view cut = computevoucher::TruncateUtf8(text, max);
    Require(cut.size() <= max || text.size() <= max);
    Require(text.substr(0, cut.size()) == cut);
  }
  Require(computevoucher::Quoted(text).size() <= 100);
  (void)computevoucher::CheckLength("f", text, 1, 64);
  (void)computevoucher::CheckRequestId(text);
  (void)computevoucher::CheckIdRef("f", text);
  (void)computevoucher::Utf8Length(text);
  if (absl::StatusOr<int64_t> fen = computevoucher::ParseMoney(text); fen.ok()) {
    absl::StatusOr<int64_t> again = computevoucher::ParseMoney(computevoucher::FormatFen(*fen));
    Require(again.ok() && *again == *fen);
  }
  if (absl::StatusOr<std::vector<computevoucher::agent::pb::GpuModel>> inventory =
          computevoucher::agent::ParseInventory(text);
      inventory.ok()) {
    (void)computevoucher::agent::ApplyPrices(text, *inventory);
  }
  return 0;
}
