// Handlers of the program office's month-end commands: `admin report`,
// `admin audit log`; and `whoami` and `version`.
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/internal/commands.h"
#include "client/internal/values.h"
#include "client/internal/views.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "common/version.h"

namespace computevoucher::client {
namespace {

namespace pb = ::computevoucher::v1;
using Stub = pb::AdminService::Stub;

// Most days --last and --days look back or ahead (ten years).
constexpr int64_t kMaxDays = 3660;

// --by's words, in the order of pb::ReportGroup.
const std::vector<std::string>& GroupWords() {
  static const auto* const kWords = new std::vector<std::string>{
      "enterprise", "provider", "program", "class", "sme", "month"};
  return *kWords;
}

absl::Status SetGroups(const Args& args, pb::UsageReportRequest& r) {
  if (!args.Has("by")) return absl::OkStatus();
  for (absl::string_view word : absl::StrSplit(args.Value("by"), ',')) {
    const std::string w =
        absl::AsciiStrToLower(absl::StripAsciiWhitespace(word));
    const std::vector<std::string>& words = GroupWords();
    auto it = std::find(words.begin(), words.end(), w);
    if (it == words.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--by: ", Quoted(w), " is not a group; use ",
                       absl::StrJoin(words, ", "), ", comma separated"));
    }
    const auto group = static_cast<pb::ReportGroup>(it - words.begin() + 1);
    for (const int g : r.group_by()) {
      if (g == group) {
        return absl::InvalidArgumentError(
            absl::StrCat("--by: ", w, " is given twice"));
      }
    }
    r.add_group_by(group);
  }
  return absl::OkStatus();
}

// Number of days of a "30d" (or "30") argument, 1..kMaxDays.
absl::StatusOr<int64_t> Days(absl::string_view flag, absl::string_view text) {
  absl::string_view digits = text;
  absl::ConsumeSuffix(&digits, "d");
  int64_t days = 0;
  if (!absl::SimpleAtoi(digits, &days) || days < 1 || days > kMaxDays) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", Quoted(text),
                     " is not a number of days, 1d..", kMaxDays, "d"));
  }
  return days;
}

}  // namespace

absl::Status SetReportPeriod(const Args& args, bool required, absl::Time now,
                             google::protobuf::Timestamp* start,
                             google::protobuf::Timestamp* end) {
  const int ways = (args.Has("from") || args.Has("to") ? 1 : 0) +
                   (args.Has("month") ? 1 : 0) + (args.Has("last") ? 1 : 0);
  if (ways > 1) {
    return absl::InvalidArgumentError(
        "--from/--to, --month, --last: give one way of naming the period");
  }
  if (args.Has("month")) {
    absl::CivilMonth month;
    if (!absl::ParseCivilTime(args.Value("month"), &month) ||
        month.year() < 2000 || month.year() > 2200) {
      return absl::InvalidArgumentError(
          absl::StrCat("--month: ", Quoted(args.Value("month")),
                       " is not a month, YYYY-MM (e.g. 2026-11)"));
    }
    *start = ToProto(StartOfDay(absl::CivilDay(month)));
    *end = ToProto(StartOfDay(absl::CivilDay(month + 1)));
    return absl::OkStatus();
  }
  if (args.Has("last")) {
    ASSIGN_OR_RETURN(const int64_t days, Days("last", args.Value("last")));
    // The N days ending today, today included.
    const absl::CivilDay today = absl::ToCivilDay(now, ShanghaiZone());
    *start = ToProto(StartOfDay(today - (days - 1)));
    *end = ToProto(StartOfDay(today + 1));
    return absl::OkStatus();
  }
  if (required && ways == 0) {
    return absl::InvalidArgumentError(
        "--from and --to, --month or --last: required (the period)");
  }
  return SetPeriod(args, ways > 0, start, end);
}

absl::Status ReportUsage(Context& c) {
  pb::UsageReportRequest r;
  RETURN_IF_ERROR(SetReportPeriod(c.args, true, absl::Now(),
                                  r.mutable_period_start(),
                                  r.mutable_period_end()));
  RETURN_IF_ERROR(SetGroups(c.args, r));
  RETURN_IF_ERROR(c.args.OptionalId("program", r.mutable_program_id()));
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  RETURN_IF_ERROR(c.args.OptionalId("provider", r.mutable_provider_id()));
  pb::UsageReport report;
  RETURN_IF_ERROR(c.server.Call(&Stub::GetUsageReport, r, &report));
  c.printer.Print(UsageReportView(report, c.printer.format() != Format::kCsv));
  return absl::OkStatus();
}

absl::Status ReportCaps(Context& c) {
  pb::GetCapUseRequest r;
  RETURN_IF_ERROR(c.args.OptionalId("program", r.mutable_program_id()));
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  if (c.args.Has("year")) {
    ASSIGN_OR_RETURN(const int64_t year, c.args.Count("year", 2000, 2200));
    r.set_year(static_cast<int32_t>(year));
  }
  pb::CapUse caps;
  RETURN_IF_ERROR(c.server.Call(&Stub::GetCapUse, r, &caps));
  View view = ListView(CapUseFields(), caps.lines(), caps);
  view.footer = absl::StrCat("face value issued in ", caps.year(),
                             " against each program's annual cap");
  c.printer.Print(view);
  return absl::OkStatus();
}

absl::Status ReportExpiring(Context& c) {
  pb::ListExpiringVouchersRequest r;
  ASSIGN_OR_RETURN(const int64_t days, Days("days", c.args.Value("days")));
  r.set_within_days(static_cast<int32_t>(days));
  RETURN_IF_ERROR(c.args.OptionalId("program", r.mutable_program_id()));
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  pb::ListExpiringVouchersResponse all;
  RETURN_IF_ERROR(c.server.CallAllPages(&Stub::ListExpiringVouchers, r, &all));
  View view = ListView(VoucherFields(), all.vouchers(), all);
  view.footer = absl::StrCat(all.total_vouchers(), " vouchers end within ",
                             days, " days with ",
                             FormatFen(all.total_available_fen()), " unspent");
  c.printer.Print(view);
  return absl::OkStatus();
}

absl::Status AuditLog(Context& c) {
  const Args& a = c.args;
  pb::ListAuditRequest r;
  RETURN_IF_ERROR(SetReportPeriod(
      a, false, absl::Now(), r.mutable_period_start(), r.mutable_period_end()));
  RETURN_IF_ERROR(a.OptionalId("token-id", r.mutable_token_id()));
  RETURN_IF_ERROR(a.OptionalId("object", r.mutable_object_id()));
  if (a.Has("from-sequence")) {
    ASSIGN_OR_RETURN(
        const int64_t from,
        a.Count("from-sequence", 1, std::numeric_limits<int64_t>::max()));
    if (from > 1) r.mutable_page()->set_page_token(absl::StrCat(from - 1));
  }
  int64_t limit = 100;
  if (a.Has("limit")) {
    ASSIGN_OR_RETURN(limit, a.Count("limit", 1, 1000));
  }
  r.mutable_page()->set_page_size(static_cast<int32_t>(limit));
  pb::ListAuditResponse page;
  RETURN_IF_ERROR(c.server.Call(&Stub::ListAudit, r, &page));
  c.printer.Print(ListView(AuditFields(), page.events(), page));
  if (!page.next_page_token().empty() && page.events_size() > 0) {
    c.err << "The page is full; more events may follow: --from-sequence "
          << page.events(page.events_size() - 1).sequence() + 1 << "\n";
  }
  return absl::OkStatus();
}

absl::Status Version(Context& c) {
  c.printer.out() << VersionLine("voucherctl") << "\n";
  return absl::OkStatus();
}

absl::Status WhoAmI(Context& c) {
  return CallAndShow(c, &pb::EnterpriseService::Stub::WhoAmI,
                     pb::WhoAmIRequest(), TokenFields());
}

}  // namespace computevoucher::client
