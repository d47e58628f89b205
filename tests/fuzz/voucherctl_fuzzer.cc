// libFuzzer target: voucherctl's command line against its real command
// table (client/internal/cli.h) and the parsers of what people type as
// values (client/internal/values.h). Input: arguments separated by NUL
// bytes. Never crashes; a refusal is InvalidArgument; and the promises of
// the headers hold:
//   - a parsed command line selects a command of the table (or the root);
//   - a parsed hours value is 60..31,536,000 s, a percentage 0..10,000 bp,
//     an id 1..128 characters, a duration at least its minimum;
//   - the help of whatever path was reached can be rendered.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/internal/cli.h"
#include "client/internal/commands.h"
#include "client/internal/values.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

template <typename T>
void RequireClean(const absl::StatusOr<T>& s) {
  Require(s.ok() || s.status().code() == absl::StatusCode::kInvalidArgument);
}

void RequireClean(const absl::Status& s) {
  Require(s.ok() || s.code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace client = computevoucher::client;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string> argv =
      size == 0 ? std::vector<std::string>()
                : absl::StrSplit(input, absl::ByChar('\0'));
  std::string path;
  absl::StatusOr<client::Invocation> invocation = client::ParseCommandLine(
      client::Commands(), client::GlobalFlags(), argv, &path);
  RequireClean(invocation.status());
  if (invocation.ok()) {
    if (invocation->command != nullptr) {
      Require(invocation->path == invocation->command->path);
      const client::Args& args = invocation->args;
      for (const client::FlagSpec& flag : invocation->command->flags) {
        if (!args.Has(flag.name)) continue;
        RequireClean(args.Amount(flag.name));
        RequireClean(args.Date(flag.name));
        RequireClean(args.Count(flag.name, 1, 1024));
        RequireClean(args.Id(flag.name));
      }
      for (size_t i = 0; i < args.positionals().size(); ++i) {
        RequireClean(args.PositionalId(i));
      }
    }
    path = invocation->path;
  }
  // Help for the path reached, refused or not (an unknown path has none).
  bool known = path.empty();
  for (const client::CommandSpec& c : client::Commands()) known |= c.path == path;
  if (known) {
    Require(!client::HelpText(client::Commands(), client::GlobalFlags(), path)
                 .empty());
  }
  for (const std::string& arg : argv) {
    if (auto hours = client::ParseHoursArg("--hours", arg); hours.ok()) {
      Require(*hours >= 60 && *hours <= 31'536'000);
    } else {
      RequireClean(hours.status());
    }
    if (auto bp = client::ParsePercentArg("--ratio", arg); bp.ok()) {
      Require(*bp >= 0 && *bp <= 10'000);
    } else {
      RequireClean(bp.status());
    }
    if (auto id = client::ParseIdArg("ID", arg); id.ok()) {
      Require(!id->empty() && id->size() <= 128);
    } else {
      RequireClean(id.status());
    }
    if (auto d = client::ParseDurationArg("--leader-wait", arg,
                                          absl::Seconds(1));
        d.ok()) {
      Require(*d >= absl::Seconds(1));
    } else {
      RequireClean(d.status());
    }
    RequireClean(client::ParseBoolArg("--yes", arg));
    RequireClean(client::ParseDateArg("--from", arg));
    RequireClean(client::ParseCountArg("--gpus", arg, 1, 1024));
  }
  return 0;
}
