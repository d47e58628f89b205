// The program office's month-end through voucherctl against a real
// voucher-scheduler (issue 16): usage reports grouped as finance asks, CSV
// in the encodings Chinese spreadsheets read (read back here), each
// enterprise's cap, vouchers about to expire with money on them, the audit
// log, and tokens that expire, show their last use and who revoked them.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/client/gb18030.h"
#include "tests/client/voucherctl_fixture.h"
#include "tests/testing/binaries.h"
#include "tests/testing/world.h"

namespace computevoucher {
namespace {

namespace pb = ::computevoucher::v1;
using ::computevoucher::testing::Cny;
using ::computevoucher::testing::FromGb18030;
using ::computevoucher::testing::ParseJson;
using ::computevoucher::testing::Result;
using ::computevoucher::testing::SimpleCsv;
using ::computevoucher::testing::VoucherctlTest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The Asia/Shanghai day and month `a` was placed in, which its usage ends
// in too (whatever the clock says when the test reads it back).
std::string DayOf(const pb::Allocation& a) {
  return absl::FormatTime("%Y-%m-%d",
                          absl::FromUnixSeconds(a.assigned_at().seconds()),
                          ShanghaiZone());
}
std::string MonthOf(const pb::Allocation& a) { return DayOf(a).substr(0, 7); }

using VoucherctlOfficeTest = VoucherctlTest;

TEST_F(VoucherctlOfficeTest, ReportsUsageByEnterpriseAndMonthWithTotals) {
  pb::Allocation a;
  const int64_t subsidy = UseOnce(a);
  ASSERT_FALSE(HasFailure());
  const Result json = Admin({"admin", "report", "usage", "--month", MonthOf(a),
                             "--by", "enterprise,month,sme", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json;
  const auto report = ParseJson<pb::UsageReport>(json.out);
  ASSERT_EQ(report.rows_size(), 1) << json.out;
  const pb::UsageReportRow& row = report.rows(0);
  EXPECT_EQ(row.enterprise_id(), "E-000001");
  EXPECT_EQ(row.enterprise_name(), "杭州具身智能机器人有限公司");
  EXPECT_EQ(row.enterprise_credit_code(), "914403001922038216");
  EXPECT_EQ(row.month(), MonthOf(a));
  EXPECT_FALSE(row.sme());
  EXPECT_EQ(row.records(), 1);
  EXPECT_EQ(row.amounts().subsidy_fen(), subsidy);
  // A running allocation has no exit code yet, and says why money is held.
  const Result shown =
      Admin({"admin", "allocation", "show", a.allocation_id()});
  ASSERT_EQ(shown.exit_code, 0) << shown;
  EXPECT_THAT(
      shown.out,
      ::testing::AllOf(::testing::ContainsRegex("\nExit code: *\n"),
                       ::testing::ContainsRegex(
                           "\nHold: +for the GPU-hours it may still use\n")));
  // 200 GPU-ms at 360,000.00 CNY per GPU-hour: 20.00 CNY.
  EXPECT_EQ(row.amounts().cost_fen(), 2000);
  EXPECT_EQ(report.total().amounts().subsidy_fen(), subsidy);

  // The same as CSV, with the period as days, the last included, and no
  // TOTAL row that a sum over the column would count twice.
  const std::string day = DayOf(a);
  const Result csv = Admin({"admin", "report", "usage", "--from", day, "--to",
                            day, "--by", "provider,class", "-o", "csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv;
  const auto rows = SimpleCsv(csv.out);
  ASSERT_EQ(rows.size(), 2u) << csv.out;
  EXPECT_THAT(
      rows[0],
      ElementsAre("provider_id", "provider_name", "provider_credit_code",
                  "hardware_class", "records", "gpu_hours", "cost_cny",
                  "subsidy_cny", "self_pay_cny", "period_from", "period_to"));
  EXPECT_EQ(rows[1][0], "PR-000001");
  EXPECT_EQ(rows[1][3], "other");
  EXPECT_EQ(rows[1][4], "1");
  EXPECT_EQ(rows[1][9], day);
  EXPECT_EQ(rows[1][10], day);

  // As a table: names next to ids, amounts in CNY, a TOTAL row.
  const Result table = Admin({"admin", "report", "usage", "--from", day, "--to",
                              day, "--by", "enterprise,class"});
  ASSERT_EQ(table.exit_code, 0) << table;
  // Cost, subsidy and self-pay as the JSON said (2 decimals, and 9 columns
  // wide).
  const std::string amounts = absl::StrFormat(
      "%s CNY  %s CNY  %s CNY", Cny(row.amounts().cost_fen()),
      Cny(row.amounts().subsidy_fen()), Cny(row.amounts().self_pay_fen()));
  const std::string header = absl::StrFormat(
      "%-10s  %-26s  %-18s  %-5s  %7s  %9s  %-*s  %-*s  %-*s  %-10s  %s\n",
      "ENTERPRISE", "NAME", "CREDIT CODE", "CLASS", "RECORDS", "GPU-HOURS",
      Cny(row.amounts().cost_fen()).size() + 4, "COST",
      Cny(row.amounts().subsidy_fen()).size() + 4, "SUBSIDY",
      Cny(row.amounts().self_pay_fen()).size() + 4, "SELF-PAY", "FROM", "TO");
  EXPECT_EQ(table.out,
            absl::StrCat(
                header,
                "E-000001    杭州具身智能机器人有限公司  914403001922038216  "
                "other        1      0.000  ",
                amounts, "  ", day, "  ", day, "\n",
                "TOTAL                                                      "
                "              1      0.000  ",
                amounts, "  ", day, "  ", day, "\n", "usage ending ", day,
                " to ", day, " (inclusive), computed at journal position ",
                report.journal_sequence(), "\n"));
}

TEST_F(VoucherctlOfficeTest, ReportsRefuseBadPeriodsAndGroups) {
  // A month without usage has none; bad groups and periods are refused before
  // anything is sent.
  const Result empty =
      Admin({"admin", "report", "usage", "--month", "2025-01", "-o", "json"});
  ASSERT_EQ(empty.exit_code, 0) << empty;
  EXPECT_EQ(ParseJson<pb::UsageReport>(empty.out).total().records(), 0);
  ExpectUsageErrors({
      {{"admin", "report", "usage", "--month", "2026-13"}, "--month"},
      {{"admin", "report", "usage", "--last", "0d"}, "--last"},
      {{"admin", "report", "usage"}, "required"},
      {{"admin", "report", "usage", "--month", "2026-11", "--last", "3d"},
       "one way"},
      {{"admin", "report", "usage", "--month", "2026-11", "--by", "city"},
       "\"city\" is not a group"},
      {{"admin", "report", "usage", "--month", "2026-11", "--by", "sme,sme"},
       "given twice"},
      {{"admin", "report", "usage", "--month", "2026-11", "--encoding",
        "gb18030"},
       "-o csv"},
  });
}

TEST_F(VoucherctlOfficeTest, ExportsCsvThatChineseSpreadsheetsRead) {
  pb::Allocation a;
  UseOnce(a);
  ASSERT_FALSE(HasFailure());
  const std::vector<std::string> report = {
      "admin", "report",           "usage", "--month", MonthOf(a),
      "--by",  "enterprise,month", "-o",    "csv"};
  const Result plain = Admin(report);
  ASSERT_EQ(plain.exit_code, 0) << plain;
  ASSERT_THAT(plain.out,
              HasSubstr(",杭州具身智能机器人有限公司,914403001922038216,"));

  // For Excel: a byte-order mark, and cells of digits or a month as
  // formulas that keep them as text (Excel would round an 18-digit code and
  // turn "2026-11" into a date).
  std::vector<std::string> args = report;
  args.insert(args.end(), {"--encoding", "utf-8-bom"});
  const Result bom = Admin(args);
  ASSERT_EQ(bom.exit_code, 0) << bom;
  EXPECT_THAT(bom.out, StartsWith("\xEF\xBB\xBF"));
  const std::string for_excel = bom.out.substr(3);
  EXPECT_THAT(for_excel, HasSubstr(",\"=\"\"914403001922038216\"\"\","));
  EXPECT_THAT(for_excel,
              HasSubstr(absl::StrCat(",\"=\"\"", MonthOf(a), "\"\"\",")));
  EXPECT_THAT(for_excel, HasSubstr(",杭州具身智能机器人有限公司,"));

  args = report;
  args.insert(args.end(), {"--encoding", "gb18030"});
  const Result gb = Admin(args);
  ASSERT_EQ(gb.exit_code, 0) << gb;
  // 杭 in GB18030 is 0xBA 0xBC; read back, the same as for Excel in UTF-8.
  EXPECT_THAT(gb.out, HasSubstr("\xBA\xBC"));
  EXPECT_EQ(FromGb18030(gb.out), for_excel);
  EXPECT_EQ(SimpleCsv(FromGb18030(gb.out)).size(), 2u);
}

TEST_F(VoucherctlOfficeTest, ShowsCapUseAndVouchersAboutToExpire) {
  BuildWorld();
  ASSERT_FALSE(HasFailure());
  const Result caps = Admin({"admin", "report", "caps", "-o", "json"});
  ASSERT_EQ(caps.exit_code, 0) << caps;
  const auto use = ParseJson<pb::CapUse>(caps.out);
  ASSERT_EQ(use.lines_size(), 2) << caps.out;
  // E-000001 holds 1M + 50万 of its 8M cap; E-000002 200k.
  EXPECT_EQ(use.lines(0).enterprise_id(), "E-000001");
  EXPECT_EQ(use.lines(0).issued_fen(), 150'000'000);
  EXPECT_EQ(use.lines(0).cap_fen(), 800'000'000);
  EXPECT_EQ(use.lines(0).remaining_fen(), 650'000'000);
  EXPECT_EQ(use.lines(0).used_bp(), 1875);
  EXPECT_EQ(use.lines(1).enterprise_id(), "E-000002");
  EXPECT_EQ(use.lines(1).used_bp(), 250);
  const Result table = Admin({"admin", "report", "caps"});
  ASSERT_EQ(table.exit_code, 0) << table;
  EXPECT_THAT(table.out, HasSubstr("18.75%"));
  EXPECT_EQ(
      table.out,
      absl::StrCat(
          "PROGRAM   ENTERPRISE  NAME                        CREDIT CODE     "
          "    ISSUED          CAP             REMAINING       USED\n"
          "P-000001  E-000001    杭州具身智能机器人有限公司  "
          "914403001922038216  1500000.00 CNY  8000000.00 CNY  6500000.00 "
          "CNY  18.75%\n"
          "P-000001  E-000002    福州灵巧手算法有限公司      "
          "91350100M000100Y43   200000.00 CNY  8000000.00 CNY  7800000.00 "
          "CNY  2.5%\n"
          "face value issued in ",
          absl::FormatTime("%Y", absl::Now(), ShanghaiZone()),
          " against each program's annual cap\n"));

  // A voucher ending in ten days is listed with what is left on it.
  const std::string until =
      absl::FormatCivilTime(absl::ToCivilDay(absl::Now(), ShanghaiZone()) + 10);
  const Result issued = Admin(
      {"admin", "voucher", "issue", "--program", "P-000001", "--enterprise",
       "E-000002", "--amount", "3000", "--valid-until", until, "-o", "json"});
  ASSERT_EQ(issued.exit_code, 0) << issued;
  const std::string id = ParseJson<pb::Voucher>(issued.out).voucher_id();
  const Result soon =
      Admin({"admin", "report", "expiring", "--days", "30d", "-o", "json"});
  ASSERT_EQ(soon.exit_code, 0) << soon;
  const auto expiring = ParseJson<pb::ListExpiringVouchersResponse>(soon.out);
  ASSERT_EQ(expiring.vouchers_size(), 1) << soon.out;
  EXPECT_EQ(expiring.vouchers(0).voucher_id(), id);
  EXPECT_EQ(expiring.total_available_fen(), 300'000);
  const Result none = Admin({"admin", "report", "expiring", "--days", "5"});
  ASSERT_EQ(none.exit_code, 0) << none;
  EXPECT_THAT(none.out, HasSubstr("0 vouchers end within 5 days"));
  ExpectUsageErrors({
      {{"admin", "report", "expiring", "--days", "x"}, "--days"},
      {{"admin", "report", "caps", "--year", "1999"}, "--year"},
  });
}

TEST_F(VoucherctlOfficeTest, TheAuditLogSaysWhoDidWhatFromWhere) {
  BuildWorld();
  ASSERT_FALSE(HasFailure());
  const std::string auditor =
      CreateToken({"--role", "auditor", "--description", "Wang Fang, audit"});
  const Result log = As(auditor, {"admin", "audit", "log", "-o", "json"});
  ASSERT_EQ(log.exit_code, 0) << log;
  const auto events = ParseJson<pb::ListAuditResponse>(log.out);
  ASSERT_GT(events.events_size(), 5) << log.out;
  // The scheduler's own first admin token, then the office's commands.
  EXPECT_EQ(events.events(0).method(), "bootstrap_admin");
  EXPECT_EQ(events.events(0).object_id(), "TK-000001");
  const pb::AuditEvent& first = events.events(1);
  EXPECT_EQ(first.method(), "create_program");
  EXPECT_EQ(first.object_id(), "P-000001");
  EXPECT_EQ(first.principal().role(), pb::ROLE_ADMIN);
  EXPECT_EQ(first.principal().token_id(), "TK-000001");
  EXPECT_THAT(first.token_description(), HasSubstr("bootstrap"));
  EXPECT_THAT(first.principal().peer(), HasSubstr("127.0.0.1"));
  for (const pb::AuditEvent& e : events.events()) {
    EXPECT_NE(e.method(), "tick");
    EXPECT_NE(e.method(), "heartbeat");
  }

  // By object: a voucher's issue and suspension, and nothing else.
  const Result issued =
      Admin({"admin", "voucher", "issue", "--program", "P-000001",
             "--enterprise", "E-000002", "--amount", "3000", "-o", "json"});
  ASSERT_EQ(issued.exit_code, 0) << issued;
  const std::string voucher = ParseJson<pb::Voucher>(issued.out).voucher_id();
  ASSERT_EQ(Admin({"admin", "voucher", "suspend", voucher, "--reason",
                   "under review"})
                .exit_code,
            0);
  const Result about = As(auditor, {"admin", "audit", "log", "--object",
                                    voucher, "--last", "1d", "-o", "csv"});
  ASSERT_EQ(about.exit_code, 0) << about;
  const auto rows = SimpleCsv(about.out);
  ASSERT_EQ(rows.size(), 3u) << about.out;
  // SimpleCsv splits at every comma: counted from the end, the method, the
  // object, then the request id.
  EXPECT_EQ(rows[0][6], "method");
  EXPECT_EQ(rows[1].end()[-3], "issue_voucher");
  EXPECT_EQ(rows[2].end()[-3], "suspend_voucher");
  EXPECT_EQ(rows[2].end()[-2], voucher);
  EXPECT_THAT(rows[2].back(), StartsWith("vctl-"));
  EXPECT_EQ(rows[2][3], "TK-000001");
  // By token: what the auditor's token did (nothing), and a period before
  // anything happened.
  const Result whoami = As(auditor, {"whoami", "-o", "json"});
  const std::string auditor_id = ParseJson<pb::Token>(whoami.out).token_id();
  const Result mine =
      Admin({"admin", "audit", "log", "--token-id", auditor_id, "-o", "json"});
  ASSERT_EQ(mine.exit_code, 0) << mine;
  EXPECT_EQ(ParseJson<pb::ListAuditResponse>(mine.out).events_size(), 0);
  const Result before =
      Admin({"admin", "audit", "log", "--month", "2025-01", "-o", "json"});
  ASSERT_EQ(before.exit_code, 0) << before;
  EXPECT_EQ(ParseJson<pb::ListAuditResponse>(before.out).events_size(), 0);

  // Every administrative change is one JSON line in the scheduler's log.
  const std::string scheduler_log = testing::Slurp(dir_ + "/scheduler.log");
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(scheduler_log, '\n')) {
    if (!absl::StartsWith(line, "{\"audit\":")) continue;
    ++lines;
    pb::AuditEvent event;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                    std::string(line.substr(9, line.size() - 10)), &event)
                    .ok())
        << line;
    EXPECT_EQ(event.principal().role(), pb::ROLE_ADMIN) << line;
  }
  EXPECT_GT(lines, 5) << scheduler_log;
}

TEST_F(VoucherctlOfficeTest, TokensExpireShowTheirLastUseAndWhoRevokedThem) {
  BuildWorld();
  ASSERT_FALSE(HasFailure());
  const std::string until =
      absl::FormatCivilTime(absl::ToCivilDay(absl::Now(), ShanghaiZone()) + 90);
  const std::string token =
      CreateToken({"--role", "enterprise", "--enterprise", "E-000002",
                   "--description", "Li Lei, finance", "--expires", until});
  const Result me = As(token, {"whoami", "-o", "json"});
  ASSERT_EQ(me.exit_code, 0) << me;
  const auto t = ParseJson<pb::Token>(me.out);
  EXPECT_EQ(t.role(), pb::ROLE_ENTERPRISE);
  EXPECT_EQ(t.enterprise_id(), "E-000002");
  EXPECT_EQ(t.description(), "Li Lei, finance");
  EXPECT_TRUE(t.has_expires_at());
  // The leader's next tick records the use.
  pb::Token listed;
  ASSERT_TRUE(testing::PollUntil([&] {
    const Result list = Admin({"admin", "token", "list", "-o", "json"});
    const auto tokens = ParseJson<pb::ListTokensResponse>(list.out);
    for (const pb::Token& x : tokens.tokens()) {
      if (x.token_id() == t.token_id()) listed = x;
    }
    return listed.has_last_used_at();
  }));

  const Result past = Admin({"admin", "token", "create", "--role", "auditor",
                             "--expires", "2025-01-01"});
  EXPECT_EQ(past.exit_code, 2) << past;
  EXPECT_THAT(past.err, HasSubstr("--expires: 2025-01-01 has ended"));

  const Result revoked = Admin({"admin", "token", "revoke", t.token_id()});
  ASSERT_EQ(revoked.exit_code, 0) << revoked;
  const Result after = As(token, {"whoami"});
  EXPECT_EQ(after.exit_code, 1) << after;
  const Result list = Admin({"admin", "token", "list", "-o", "json"});
  const auto tokens = ParseJson<pb::ListTokensResponse>(list.out);
  for (const pb::Token& x : tokens.tokens()) {
    if (x.token_id() != t.token_id()) continue;
    EXPECT_TRUE(x.revoked());
    EXPECT_TRUE(x.has_revoked_at());
    EXPECT_EQ(x.revoked_by(), "TK-000001");
  }
}

}  // namespace
}  // namespace computevoucher
