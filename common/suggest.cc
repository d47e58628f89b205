#include "common/suggest.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace computevoucher {

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string Nearest(absl::string_view word,
                    const std::vector<std::string>& candidates) {
  std::string nearest;
  size_t best = 3;
  for (const std::string& candidate : candidates) {
    const size_t d = EditDistance(word, candidate);
    if (d < best || (nearest.empty() && !word.empty() &&
                     absl::StartsWith(candidate, word))) {
      best = std::min(d, best);
      nearest = candidate;
    }
  }
  return nearest;
}

}  // namespace computevoucher
