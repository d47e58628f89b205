#include "agent/internal/slurm_text.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/money.h"
#include "common/validate.h"

namespace computevoucher::agent::slurm {
namespace {

// Most GPUs of one type a node's GRES may name: far above any machine, and
// far below where a sum of counts could overflow.
constexpr int kMaxGresGpus = 1'000'000;

std::optional<absl::Time> ParseTime(absl::string_view text) {
  int64_t seconds = 0;
  if (!absl::SimpleAtoi(text, &seconds) || seconds <= 0) return std::nullopt;
  return absl::FromUnixSeconds(seconds);
}

absl::Status Unparsable(absl::string_view what, absl::string_view line) {
  return absl::InternalError(absl::StrCat("cannot read Slurm's ", what,
                                          " line ", Quoted(line)));
}

std::vector<absl::string_view> Lines(absl::string_view text) {
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

}  // namespace

absl::StatusOr<std::vector<Job>> ParseJobs(absl::string_view text) {
  std::vector<Job> jobs;
  for (absl::string_view line : Lines(text)) {
    // The name is last and may hold anything, '|' included.
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits('|', 7));
    Job j;
    if (f.size() != 8 || !absl::SimpleAtoi(f[0], &j.id)) {
      return Unparsable("job", line);
    }
    j.state = std::string(f[1]);
    j.start = ParseTime(f[2]);
    j.end = ParseTime(f[3]);
    j.user = std::string(f[4]);
    j.account = std::string(f[5]);
    j.reason = std::string(f[6]);
    j.name = std::string(f[7]);
    jobs.push_back(std::move(j));
  }
  return jobs;
}

absl::StatusOr<std::vector<Step>> ParseSteps(absl::string_view text) {
  std::vector<Step> steps;
  for (absl::string_view line : Lines(text)) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits('|', 2));
    if (f.size() != 3) return Unparsable("step", line);
    std::pair<absl::string_view, absl::string_view> id =
        absl::StrSplit(f[0], absl::MaxSplits('.', 1));
    Step s;
    if (!absl::SimpleAtoi(id.first, &s.job_id) || id.second.empty()) {
      return Unparsable("step", line);
    }
    s.step = std::string(id.second);
    absl::StatusOr<absl::Duration> elapsed = ParseElapsed(f[1]);
    if (!elapsed.ok()) return Unparsable("step", line);
    s.elapsed = *elapsed;
    s.name = std::string(f[2]);
    steps.push_back(std::move(s));
  }
  return steps;
}

absl::StatusOr<std::map<std::string, int>> ParseGpuGres(absl::string_view gres) {
  std::map<std::string, int> gpus;
  if (gres.empty() || gres == "(null)") return gpus;
  // Items are separated by commas outside parentheses: "(IDX:0,2)" holds
  // commas of its own.
  std::vector<std::string> items;
  int depth = 0;
  std::string item;
  for (char c : gres) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      items.push_back(std::move(item));
      item.clear();
      continue;
    }
    item += c;
  }
  items.push_back(std::move(item));
  for (absl::string_view it : items) {
    it = it.substr(0, it.find('('));
    std::vector<absl::string_view> parts = absl::StrSplit(it, ':');
    if (parts.empty() || parts[0] != "gpu") continue;
    int count = 0;
    std::string type;
    if (parts.size() == 2 && absl::SimpleAtoi(parts[1], &count)) {
    } else if (parts.size() == 3 && absl::SimpleAtoi(parts[2], &count)) {
      type = std::string(parts[1]);
    } else {
      return absl::InternalError(
          absl::StrCat("cannot read Slurm's GRES ", Quoted(gres)));
    }
    int& total = gpus[type];
    if (count < 0 || count > kMaxGresGpus - total) {
      return absl::InternalError(absl::StrCat(
          "cannot read Slurm's GRES ", Quoted(gres), ": GPU counts must be 0..",
          kMaxGresGpus, " a type"));
    }
    total += count;
  }
  return gpus;
}

absl::StatusOr<std::vector<Node>> ParseNodes(absl::string_view text) {
  std::vector<Node> nodes;
  for (absl::string_view line : Lines(text)) {
    std::vector<absl::string_view> f = absl::StrSplit(line, '|');
    if (f.size() < 4) return Unparsable("node", line);
    Node n;
    n.name = std::string(absl::StripAsciiWhitespace(f[0]));
    absl::StatusOr<std::map<std::string, int>> gpus =
        ParseGpuGres(absl::StripAsciiWhitespace(f[1]));
    absl::StatusOr<std::map<std::string, int>> used =
        ParseGpuGres(absl::StripAsciiWhitespace(f[2]));
    if (n.name.empty() || !gpus.ok() || !used.ok()) {
      return Unparsable("node", line);
    }
    n.gpus = *std::move(gpus);
    n.gpus_used = *std::move(used);
    n.state = std::string(absl::StripAsciiWhitespace(f[3]));
    nodes.push_back(std::move(n));
  }
  return nodes;
}

absl::StatusOr<absl::Duration> ParseElapsed(absl::string_view text) {
  int64_t days = 0;
  const size_t dash = text.find('-');
  if (dash != absl::string_view::npos) {
    if (!absl::SimpleAtoi(text.substr(0, dash), &days)) {
      return absl::InvalidArgumentError(
          absl::StrCat("elapsed: cannot read ", Quoted(text)));
    }
    text.remove_prefix(dash + 1);
  }
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  if (parts.size() < 2 || parts.size() > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("elapsed: cannot read ", Quoted(text)));
  }
  if (days < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("elapsed: cannot read ", Quoted(text)));
  }
  int64_t total = 0;
  for (absl::string_view p : parts) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(p, &v) || v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("elapsed: cannot read ", Quoted(text)));
    }
    absl::StatusOr<int64_t> scaled = CheckedMul(total, 60);
    if (scaled.ok()) scaled = CheckedAdd(*scaled, v);
    if (!scaled.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("elapsed: out of range: ", Quoted(text)));
    }
    total = *scaled;
  }
  // Duration arithmetic saturates instead of overflowing.
  return absl::Hours(24) * days + absl::Seconds(total);
}

bool IsTerminal(absl::string_view state) {
  static constexpr absl::string_view kTerminal[] = {
      "COMPLETED", "CANCELLED", "FAILED",   "TIMEOUT",      "NODE_FAIL",
      "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "REVOKED"};
  return std::find(std::begin(kTerminal), std::end(kTerminal), state) !=
         std::end(kTerminal);
}

bool IsUsable(absl::string_view state) {
  for (absl::string_view bad :
       {"down", "drain", "fail", "maint", "reboot", "unknown", "future",
        "inval", "power"}) {
    if (absl::StrContains(state, bad)) return false;
  }
  // A trailing '*' means the node does not respond.
  return !absl::EndsWith(state, "*");
}

std::optional<int> ParseExitCode(absl::string_view line) {
  for (absl::string_view token : absl::StrSplit(line, ' ')) {
    if (!absl::ConsumePrefix(&token, "ExitCode=")) continue;
    std::pair<absl::string_view, absl::string_view> p =
        absl::StrSplit(token, absl::MaxSplits(':', 1));
    int code = 0, signal = 0;
    if (!absl::SimpleAtoi(p.first, &code)) return std::nullopt;
    if (absl::SimpleAtoi(p.second, &signal) && signal > 0) return 128 + signal;
    return code;
  }
  return std::nullopt;
}

int64_t TimeLimitMinutes(absl::Time from, absl::Time deadline) {
  const int64_t seconds =
      std::max<int64_t>(0, absl::ToInt64Seconds(absl::Ceil(
                               deadline - from, absl::Seconds(1))));
  return (seconds + 59) / 60 + 1;
}

std::string ShellQuote(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    out += '\'';
    for (char c : a) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

}  // namespace computevoucher::agent::slurm
