// Runs the real voucherctl binary as a user would, against a real
// voucher-scheduler: help, bad input of each argument type, golden tables,
// parsed JSON and CSV, every exit code, login and the precedence of
// settings. Workflows are in voucherctl_flow_test.cc, TLS and replicas in
// voucherctl_replica_test.cc.
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/config.h"
#include "common/version.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/config.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/voucherctl_fixture.h"

namespace computevoucher {
namespace {

namespace pb = ::computevoucher::v1;
using ::computevoucher::testing::ParseJson;
using ::computevoucher::testing::Result;
using ::computevoucher::testing::SimpleCsv;
using ::computevoucher::testing::Slurp;
using ::computevoucher::testing::VoucherctlTest;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST_F(VoucherctlTest, HelpListsCommandsAndEveryCommandHasUsageAndExample) {
  const Result root = Run({});
  EXPECT_EQ(root.exit_code, 0);
  EXPECT_EQ(Run({"help"}).out, root.out);
  EXPECT_THAT(root.out, AllOf(HasSubstr("Usage:\n  voucherctl COMMAND"),
                              HasSubstr("admin voucher issue-batch"),
                              HasSubstr("-o, --output FORMAT")));
  // Every command listed has a help with a usage line, flags and example.
  std::vector<std::string> commands;
  const std::string listed(root.out.substr(
      root.out.find("Commands:\n") + 10,
      root.out.find("\nGlobal flags") - root.out.find("Commands:\n") - 10));
  for (absl::string_view line :
       absl::StrSplit(listed, '\n', absl::SkipEmpty())) {
    const std::string name(
        absl::StripAsciiWhitespace(line.substr(0, line.find("   ", 2))));
    const std::vector<std::string> words = absl::StrSplit(name, ' ');
    std::vector<std::string> args = words;
    args.push_back(commands.size() % 2 == 0 ? "--help" : "-h");
    commands.push_back(name);
    const Result help = Run(args);
    EXPECT_EQ(help.exit_code, 0) << name << "\n" << help;
    EXPECT_THAT(help.out, AllOf(HasSubstr("Usage:\n  voucherctl " + name),
                                HasSubstr("Global flags:"),
                                HasSubstr("Example:\n  voucherctl " + name)))
        << name;
  }
  EXPECT_GE(commands.size(), 40u);
  const Result group = Run({"admin", "voucher"});
  EXPECT_EQ(group.exit_code, 0);
  EXPECT_THAT(group.out,
              AllOf(HasSubstr("voucherctl admin voucher COMMAND"),
                    HasSubstr("  issue-batch "), HasSubstr("  revoke ")));
  EXPECT_THAT(Run({"help", "allocate"}).out,
              HasSubstr("--gpus N               number of GPUs, 1..1024 "
                        "(required)"));
}

TEST_F(VoucherctlTest, BadValuesAreUsageErrorsNamingArgumentValueAndRule) {
  // Counts, hours and durations, amounts and dates.
  ExpectUsageErrors({
      // Counts.
      {{"allocate", "--model", "H100", "--gpus", "0", "--hours", "1"},
       "--gpus: must be a whole number 1..1024, got \"0\""},
      {{"allocate", "--model", "H100", "--gpus", "-1", "--hours", "1"},
       "--gpus: must be a whole number 1..1024, got \"-1\""},
      {{"quote", "--model", "H100", "--gpus", "x", "--hours", "1"},
       "--gpus: must be a whole number 1..1024, got \"x\""},
      {{"admin", "voucher", "issue", "--program", "P-000001", "--enterprise",
        "E-000001", "--amount", "1", "--priority", "1001"},
       "--priority: must be a whole number 0..1000, got \"1001\""},
      // Hours and durations.
      {{"quote", "--model", "H100", "--gpus", "1", "--hours", "0"},
       "--hours: must be a number of hours from 0.017 (one minute) to 8760"},
      {{"allocations", "watch", "AL-000001", "--interval", "soon"},
       "--interval: must be a duration of at least 100ms such as 2s or "
       "500ms, got \"soon\""},
      // Amounts.
      {{"admin", "voucher", "issue", "--program", "P-000001", "--enterprise",
        "E-000001", "--amount", "12.345"},
       "--amount: amount \"12.345\""},
      {{"apply", "--program", "P-000001", "--amount", "abc", "--purpose", "x"},
       "--amount: amount \"abc\""},
      {{"apply", "--program", "P-000001", "--amount", "-5", "--purpose", "x"},
       "--amount: must be an amount above 0 CNY, got \"-5\""},
      {{"admin", "program", "create", "--name", "n", "--issuer", "i",
        "--budget", "1M", "--valid-from", "2025-01-01", "--valid-until",
        "2025-12-31", "--domestic-ratio", "130%", "--other-ratio", "20"},
       "--domestic-ratio: must be a percentage 0..100 with at most two "
       "decimals, e.g. 30% or 12.5, got \"130%\""},
      // Dates.
      {{"statement", "--from", "2025-13-01", "--to", "2025-12-31"},
       "--from: \"2025-13-01\" is not a date of the form YYYY-MM-DD"},
      {{"statement", "--from", "2025-03-31", "--to", "2025-03-01"},
       "--to: 2025-03-01 is before --from 2025-03-31"},
      {{"admin", "settlement", "--from", "2025-03-01"},
       "missing required flag --to DATE"},
  });
}

TEST_F(VoucherctlTest,
       BadIdsAndChoicesAreUsageErrorsNamingArgumentValueAndRule) {
  // Ids, choices, replica lists and how long to wait for a leader.
  ExpectUsageErrors({
      // Ids and choices.
      {{"vouchers", "show", "CV 1"},
       "VOUCHER_ID: must be an id of 1..128 characters of [A-Za-z0-9._:-], "
       "got \"CV 1\""},
      {{"admin", "voucher", "list", "--enterprise", "E/1"},
       "--enterprise: must be an id of 1..128 characters"},
      {{"vouchers", "list", "--state", "lost"},
       "--state: must be one of active, suspended, revoked, expired, "
       "exhausted, got \"lost\""},
      {{"quote", "--class", "gold", "--gpus", "1", "--hours", "1"},
       "--class: must be one of domestic, other, got \"gold\""},
      {{"quote", "--model", "H100", "--class", "other", "--gpus", "1",
        "--hours", "1"},
       "--model, --class: give exactly one"},
      {{"admin", "token", "create", "--role", "enterprise"},
       "--enterprise: required with --role enterprise"},
      {{"vouchers", "list", "-o", "xml"},
       "-o: must be one of table, json, csv, wide, yaml, got \"xml\""},
      {{"admin", "audit", "verify", "--request-id", "a b"}, "--request-id: "},
      // Replicas and how long to wait for one to lead.
      {{"admin", "audit", "verify", "--endpoint", "127.0.0.1:1,,127.0.0.1:2"},
       "--endpoint: \"127.0.0.1:1,,127.0.0.1:2\" must be one address or a "
       "comma-separated list of addresses (host:port), none empty"},
      {{"admin", "audit", "verify", "--leader-wait", "soon"},
       "--leader-wait: must be a duration of at least 0 such as 2s or 500ms, "
       "got \"soon\""},
      {{"admin", "audit", "verify", "--leader-wait", "-1s"},
       "--leader-wait: must be a duration of at least 0 such as 2s or 500ms, "
       "got \"-1s\""},
  });
}

TEST_F(VoucherctlTest, BadCommandLinesAreUsageErrorsSayingWhatIsWrong) {
  ExpectUsageErrors({
      // The command line itself.
      {{"vouchrs", "list"},
       "unknown command \"vouchrs\" for \"voucherctl\"; did you mean "
       "\"vouchers\"?"},
      {{"vouchers", "list", "--colour"},
       "voucherctl vouchers list: unknown flag --colour"},
      {{"vouchers", "show"},
       "voucherctl vouchers show: missing argument "
       "VOUCHER_ID"},
      {{"balance", "extra"}, "unexpected argument \"extra\""},
      {{"allocate", "--model"}, "--model: needs a value (MODEL"},
      {{"balance", "--", "x"}, "voucherctl balance takes no arguments after"},
      {{"admin", "enterprise", "import", "/nonexistent.csv"},
       "/nonexistent.csv"},
  });
}

TEST_F(VoucherctlTest, TablesAreGolden) {
  const std::string enterprise = BuildWorld();
  // Windows show the days typed (--valid-until 2035-12-31), the last
  // included, not the instant after it.
  EXPECT_EQ(Admin({"admin", "program", "list"}).out,
            "ID        NAME                         BUDGET            "
            "UNISSUED          VALID FROM  VALID UNTIL\n"
            "P-000001  杭州市人形机器人算力券 2025  250000000.00 CNY  "
            "248300000.00 CNY  2025-01-01  2035-12-31\n");
  EXPECT_EQ(
      As(enterprise, {"vouchers", "list"}).out,
      WithVoucherYear(
          "ID              PROGRAM   ENTERPRISE  STATE   FACE VALUE      "
          "AVAILABLE       HELD      CHARGED   VALID UNTIL\n"
          "CV-YYYY-000001  P-000001  E-000001    active  1000000.00 CNY  "
          "1000000.00 CNY  0.00 CNY  0.00 CNY  2035-12-31\n"
          "CV-YYYY-000002  P-000001  E-000001    active   500000.00 CNY   "
          "500000.00 CNY  0.00 CNY  0.00 CNY  2035-12-31\n"));
  // Without the header line (the columns as wide as with it); with every
  // field.
  EXPECT_EQ(
      As(enterprise, {"vouchers", "list", "--no-headers"}).out,
      WithVoucherYear(
          "CV-YYYY-000001  P-000001  E-000001    active  1000000.00 CNY  "
          "1000000.00 CNY  0.00 CNY  0.00 CNY  2035-12-31\n"
          "CV-YYYY-000002  P-000001  E-000001    active   500000.00 CNY   "
          "500000.00 CNY  0.00 CNY  0.00 CNY  2035-12-31\n"));
  const std::string wide =
      As(enterprise, {"vouchers", "list", "-o", "wide"}).out;
  EXPECT_THAT(wide,
              AllOf(HasSubstr("  RETURNED  "), HasSubstr("  PRIORITY  "),
                    HasSubstr("  VALID FROM  "), HasSubstr("2035-12-31")));
  EXPECT_EQ(As(enterprise, {"balance"}).out,
            "Enterprise:       E-000001\n"
            "Available:        1500000.00 CNY\n"
            "Held:             0.00 CNY\n"
            "Charged:          0.00 CNY\n"
            "Active vouchers:  2\n");
  EXPECT_EQ(As(enterprise, {"balance", "--utc", "-o", "csv"}).out,
            "enterprise_id,available_cny,held_cny,charged_cny,active_vouchers"
            "\r\nE-000001,1500000.00,0.00,0.00,2\r\n");
  EXPECT_THAT(Admin({"admin", "program", "show", "P-000001", "--utc"}).out,
              AllOf(HasSubstr("\nValid from:          2025-01-01\n"),
                    HasSubstr("\nValid until:         2035-12-31\n"),
                    HasSubstr("\nSME ratio:           50%\n"),
                    HasSubstr("\nCap per enterprise:  8000000.00 CNY\n")));
}

TEST_F(VoucherctlTest, JsonAndCsvParse) {
  BuildWorld();
  const Result json = Admin({"admin", "voucher", "list", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json;
  const auto vouchers = ParseJson<pb::AdminListVouchersResponse>(json.out);
  ASSERT_EQ(vouchers.vouchers_size(), 3);
  EXPECT_EQ(vouchers.vouchers(1).face_value_fen(), 500'000'00);
  EXPECT_EQ(vouchers.vouchers(0).priority(), 10);
  EXPECT_EQ(vouchers.vouchers(2).enterprise_id(), "E-000002");

  const Result csv = Admin({"admin", "voucher", "list", "-o", "csv",
                            "--enterprise", "E-000001", "--state", "active"});
  ASSERT_EQ(csv.exit_code, 0) << csv;
  const auto rows = SimpleCsv(csv.out);
  ASSERT_EQ(rows.size(), 3u) << csv.out;
  EXPECT_THAT(rows[0], ElementsAre("voucher_id", "program_id", "enterprise_id",
                                   "state", "face_value_cny", "available_cny",
                                   "held_cny", "charged_cny", "valid_until"));
  EXPECT_EQ(rows[2][4], "500000.00");
  EXPECT_EQ(rows[2][3], "active");

  // RFC 4180: a field with a comma or quotes is quoted, quotes doubled.
  const Result enterprises =
      Admin({"admin", "enterprise", "list", "-o", "csv"});
  EXPECT_THAT(enterprises.out,
              HasSubstr("E-000003,\"北京人形机器人创新中心, \"\"BHRIC\"\"\","
                        "91110108551385082Q,科研平台,余杭区,no,-\r\n"));
  EXPECT_THAT(enterprises.out,
              HasSubstr("E-000002,福州灵巧手算法有限公司,91350100M000100Y43,"
                        "软件算法,余杭区,yes,PR-000002\r\n"));
}

TEST_F(VoucherctlTest, ExitCodesSayWhoFailed) {
  const std::string enterprise = BuildWorld();
  // 0: success.
  EXPECT_EQ(Admin({"admin", "audit", "verify"}).exit_code, 0);
  // 1: the server refused, with its message and the code in words.
  const Result missing = Admin({"admin", "program", "show", "P-999999"});
  EXPECT_EQ(missing.exit_code, 1) << missing;
  EXPECT_THAT(missing.err, HasSubstr("voucherctl: program P-999999 not "
                                     "found\n"));
  // The code in words only where the message does not say it already.
  const Result denied = As(enterprise, {"admin", "program", "list"});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_EQ(denied.err,
            "voucherctl: permission denied for this token's role\n");
  const Result wrong = As("cvt_wrong", {"balance"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err,
              AllOf(HasSubstr("voucherctl: unauthenticated: "),
                    HasSubstr("Check the token (--token, VOUCHERCTL_TOKEN")));
  const Result over =
      Admin({"admin", "voucher", "issue", "--program", "P-000001",
             "--enterprise", "E-000001", "--amount", "7M"});
  EXPECT_EQ(over.exit_code, 1);
  EXPECT_THAT(over.err, HasSubstr("voucherctl: failed precondition: "));
  const Result batch = Admin(
      {"admin", "voucher", "issue-batch",
       File("bad.csv", "program,enterprise,amount\nP-000001,E-000404,1\n")});
  EXPECT_EQ(batch.exit_code, 1) << batch;
  EXPECT_THAT(batch.err,
              HasSubstr("nothing was issued:\n  " + dir_ + "/bad.csv row 1: "));
  // 2: usage, checked before anything is sent.
  EXPECT_EQ(Admin({"admin", "program", "show"}).exit_code, 2);
  // 3: nobody answered.
  const Result down = Run({"--endpoint", "127.0.0.1:1", "--token", admin_token_,
                           "admin", "program", "list"});
  EXPECT_EQ(down.exit_code, 3) << down;
  EXPECT_THAT(down.err,
              AllOf(HasSubstr("cannot reach the scheduler at 127.0.0.1:1 "
                              "(from --endpoint)"),
                    HasSubstr("point --endpoint at it")));
  // No token at all is a usage error that says where a token comes from.
  const Result no_token = Run({"--endpoint", endpoint_, "balance"});
  EXPECT_EQ(no_token.exit_code, 2);
  EXPECT_THAT(no_token.err, HasSubstr("no token: pass --token"));
}

TEST_F(VoucherctlTest, VersionSaysWhichBuild) {
  // Without a token, and with settings no other command could use.
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"version"}, {"--version"}}) {
    const Result version =
        Run(args, {"VOUCHERCTL_TOKEN=", "VOUCHERCTL_ENDPOINT=,,"});
    EXPECT_EQ(version.exit_code, 0) << version;
    EXPECT_EQ(version.out, VersionLine("voucherctl") + "\n");
  }
}

TEST_F(VoucherctlTest, LoginWritesAPrivateConfigThatLaterCommandsUse) {
  const Result login =
      Run({"login", "--endpoint", endpoint_}, {}, admin_token_ + "\n");
  ASSERT_EQ(login.exit_code, 0) << login;
  const std::string path = dir_ + "/config/voucherctl/config";
  EXPECT_THAT(login.out, HasSubstr(path + " (mode 0600)"));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  pb::ClientConfig config;
  ASSERT_TRUE(LoadTextProto(path, &config).ok());
  EXPECT_EQ(config.endpoint(), endpoint_);
  EXPECT_EQ(config.token(), admin_token_);
  EXPECT_EQ(Run({"admin", "program", "list"}).exit_code, 0);

  // A token the scheduler refuses is not saved, unless --no-check says so.
  const Result refused = Run({"login", "--token", "cvt_other"});
  EXPECT_EQ(refused.exit_code, 1) << refused;
  EXPECT_THAT(refused.err, HasSubstr("login: nothing saved: unauthenticated"));
  ASSERT_TRUE(LoadTextProto(path, &config).ok());
  EXPECT_EQ(config.token(), admin_token_);
  // A second login replaces the file; with no XDG_CONFIG_HOME it goes to
  // ~/.config.
  EXPECT_EQ(Run({"login", "--token", "cvt_other", "--no-check"}).exit_code, 0);
  ASSERT_TRUE(LoadTextProto(path, &config).ok());
  EXPECT_EQ(config.token(), "cvt_other");
  EXPECT_EQ(config.endpoint(), endpoint_);
  EXPECT_EQ(Run({"login", "--endpoint", endpoint_, "--no-check"},
                {"XDG_CONFIG_HOME="}, "cvt_home\n")
                .exit_code,
            0);
  EXPECT_THAT(Slurp(dir_ + "/home/.config/voucherctl/config"),
              HasSubstr("cvt_home"));
  // No token anywhere is a usage error.
  const Result no_token =
      Run({"login"}, {"XDG_CONFIG_HOME=", "HOME=" + dir_ + "/elsewhere"}, "");
  EXPECT_EQ(no_token.exit_code, 2);
  EXPECT_THAT(no_token.err, HasSubstr("login: no token: pass --token TOKEN"));
}

TEST_F(VoucherctlTest, FlagsOverrideEnvironmentOverrideConfigFile) {
  ASSERT_EQ(Run({"login", "--endpoint", endpoint_, "--token", admin_token_})
                .exit_code,
            0);
  const std::vector<std::string> list = {"admin", "program", "list"};
  // The file alone works.
  EXPECT_EQ(Run(list).exit_code, 0);
  // The environment overrides the file...
  const Result env_endpoint = Run(list, {"VOUCHERCTL_ENDPOINT=127.0.0.1:1"});
  EXPECT_EQ(env_endpoint.exit_code, 3);
  EXPECT_THAT(env_endpoint.err, HasSubstr("(from VOUCHERCTL_ENDPOINT)"));
  EXPECT_EQ(Run(list, {"VOUCHERCTL_TOKEN=cvt_wrong"}).exit_code, 1);
  // ...and flags override the environment.
  std::vector<std::string> with_flags = list;
  with_flags.insert(with_flags.end(),
                    {"--endpoint", endpoint_, "--token", admin_token_});
  EXPECT_EQ(Run(with_flags, {"VOUCHERCTL_ENDPOINT=127.0.0.1:1",
                             "VOUCHERCTL_TOKEN=cvt_wrong"})
                .exit_code,
            0);
  EXPECT_EQ(
      Run({"--endpoint=127.0.0.1:1", "admin", "program", "list"}).exit_code, 3);
}

}  // namespace
}  // namespace computevoucher
