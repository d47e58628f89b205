#include "client/voucherctl.h"

#include "absl/strings/str_cat.h"
#include "client/internal/cli.h"
#include "client/internal/commands.h"
#include "client/internal/completion.h"
#include "client/internal/connection.h"
#include "client/internal/exit_codes.h"
#include "client/internal/render.h"
#include "client/internal/values.h"
#include "common/validate.h"
#include "common/version.h"

namespace computevoucher::client {
namespace {

// Checks the global flags that do not depend on the command.
absl::Status CheckGlobals(const Args& args) {
  if (args.Has("output")) {
    RETURN_IF_ERROR(CheckChoiceArg("-o", args.Value("output"), FormatWords()));
  }
  if (args.Has("encoding")) {
    RETURN_IF_ERROR(
        CheckChoiceArg("--encoding", args.Value("encoding"), EncodingWords()));
    if (args.Value("output") != "csv") {
      return absl::InvalidArgumentError(
          "--encoding: applies to CSV only; add -o csv");
    }
    if (args.Value("encoding") == "gb18030") RETURN_IF_ERROR(CheckGb18030());
  }
  if (args.Has("request-id")) {
    const absl::Status s = CheckRequestId(args.Value("request-id"));
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--request-id: ", s.message()));
    }
  }
  return absl::OkStatus();
}

int Fail(std::ostream& err, const absl::Status& status,
         const std::string& path) {
  const int code = ExitCodeOf(status);
  err << "voucherctl: " << status.message() << "\n";
  if (code == kExitUsage) {
    err << "Run 'voucherctl" << (path.empty() ? "" : " ") << path
        << " --help' for usage.\n";
  }
  return code;
}

}  // namespace

int RunVoucherctl(std::vector<std::string> args, std::istream& in,
                  std::ostream& out, std::ostream& err) {
  if (!args.empty() && args[0] == kCompleteCommand) {
    return RunComplete({args.begin() + 1, args.end()}, out);
  }
  // "voucherctl help allocate" is "voucherctl allocate --help".
  if (!args.empty() && args[0] == "help") {
    args.erase(args.begin());
    args.push_back("--help");
  }
  std::string path;
  absl::StatusOr<Invocation> inv =
      ParseCommandLine(Commands(), GlobalFlags(), args, &path);
  if (!inv.ok()) return Fail(err, inv.status(), path);
  const Args& a = inv->args;
  if (a.Has("version")) {
    out << VersionLine("voucherctl") << "\n";
    return kExitOk;
  }
  if (a.Has("help") || inv->command == nullptr ||
      inv->command->handler == nullptr) {
    out << HelpText(Commands(), GlobalFlags(), inv->path);
    return kExitOk;
  }
  if (absl::Status s = CheckGlobals(a); !s.ok()) return Fail(err, s, path);
  absl::StatusOr<Settings> settings = ResolveSettings(a);
  // `version` and `completion` talk to no scheduler: broken settings do
  // not stop them.
  if (!settings.ok() && inv->path != "version" && inv->path != "completion") {
    return Fail(err, settings.status(), path);
  }
  Connection server(settings.ok() ? *std::move(settings) : Settings(), err);
  Printer printer(FormatFromWord(a.Value("output")), a.Switch("utc"), out,
                  EncodingFromWord(a.Value("encoding")));
  printer.set_headers(!a.Switch("no-headers"));
  Context context(a, server, printer, in, err);
  const absl::Status status = inv->command->handler(context);
  out.flush();
  return status.ok() ? kExitOk : Fail(err, status, path);
}

}  // namespace computevoucher::client
