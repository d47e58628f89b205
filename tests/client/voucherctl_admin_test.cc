// The program office's month-end through voucherctl against a real
// voucher-scheduler (issue 16): recording a payment to a provider,
// adjusting a voucher, reading the journal and every enterprise's
// allocations, setting related providers, reviewing applications with what
// they ask for.
#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/voucherctl_fixture.h"
#include "tests/testing/world.h"

namespace computevoucher {
namespace {

namespace pb = ::computevoucher::v1;
using ::computevoucher::testing::Cny;
using ::computevoucher::testing::ParseJson;
using ::computevoucher::testing::Result;
using ::computevoucher::testing::SimpleCsv;
using ::computevoucher::testing::VoucherctlTest;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

using VoucherctlAdminTest = VoucherctlTest;

TEST_F(VoucherctlAdminTest, RecordsAPaymentToAProvider) {
  pb::Allocation a;
  const int64_t subsidy = UseOnce(a);
  ASSERT_FALSE(HasFailure());
  // More than is payable: refused, and nothing recorded.
  const Result over =
      Admin({"admin", "provider", "pay", "PR-000001", "--amount",
             Cny(subsidy + 1), "--reference", "ICBC 0041"});
  EXPECT_EQ(over.exit_code, 1) << over;
  EXPECT_THAT(over.err, HasSubstr("payable"));

  const Result paid =
      Admin({"admin", "provider", "pay", "PR-000001", "--amount", Cny(subsidy),
             "--reference", "ICBC 0042", "-o", "json"});
  ASSERT_EQ(paid.exit_code, 0) << paid;
  const auto payment = ParseJson<pb::SettleProviderResponse>(paid.out);
  EXPECT_EQ(payment.provider().paid_fen(), subsidy);
  EXPECT_EQ(payment.provider().payable_fen(), 0);
  EXPECT_EQ(payment.entry().kind(), pb::ENTRY_KIND_SETTLE);
  EXPECT_EQ(payment.entry().memo(), "ICBC 0042");
  EXPECT_EQ(payment.entry().amount_fen(), subsidy);

  const Result providers = Admin({"admin", "provider", "list", "-o", "csv"});
  ASSERT_EQ(providers.exit_code, 0) << providers;
  const auto rows = SimpleCsv(providers.out);
  ASSERT_EQ(rows.size(), 3u) << providers.out;
  EXPECT_THAT(rows[0], ElementsAre("provider_id", "name", "credit_code",
                                   "payable_cny", "paid_cny"));
  EXPECT_THAT(rows[1], ElementsAre("PR-000001", ::testing::_, ::testing::_,
                                   "0.00", Cny(subsidy)));
  // The journal shows it, with its reference.
  const Result journal = Admin({"admin", "journal", "list", "--from-sequence",
                                absl::StrCat(payment.entry().sequence())});
  ASSERT_EQ(journal.exit_code, 0) << journal;
  EXPECT_THAT(journal.out, AllOf(HasSubstr("settle"), HasSubstr("ICBC 0042"),
                                 HasSubstr("provider/PR-000001/payable")));

  ExpectUsageErrors({
      {{"admin", "provider", "pay", "PR-000001", "--amount", "-5",
        "--reference", "x"},
       "--amount"},
      {{"admin", "provider", "pay", "PR-000001", "--amount", "5"},
       "--reference"},
      {{"admin", "provider", "pay", "PR-000001", "--amount", "5", "--reference",
        std::string(201, 'x')},
       "--reference"},
  });
}

TEST_F(VoucherctlAdminTest, ReadsTheJournalOfAVoucherAPageAtATime) {
  pb::Allocation a;
  UseOnce(a);
  ASSERT_FALSE(HasFailure());
  const Result all = Admin(
      {"admin", "journal", "list", "--voucher", a.voucher_id(), "-o", "json"});
  ASSERT_EQ(all.exit_code, 0) << all;
  const auto entries = ParseJson<pb::ListJournalResponse>(all.out);
  ASSERT_GE(entries.entries_size(), 3);
  EXPECT_EQ(entries.entries(0).kind(), pb::ENTRY_KIND_ISSUE);
  for (const pb::JournalEntry& e : entries.entries())
    EXPECT_EQ(e.voucher_id(), a.voucher_id()) << e.ShortDebugString();

  const Result first = Admin({"admin", "journal", "list", "--voucher",
                              a.voucher_id(), "--limit", "1", "-o", "csv"});
  ASSERT_EQ(first.exit_code, 0) << first;
  EXPECT_EQ(SimpleCsv(first.out).size(), 2u) << first.out;
  EXPECT_THAT(first.err, HasSubstr(absl::StrCat(
                             "more entries may follow: --from-sequence ",
                             entries.entries(0).sequence() + 1)));
  ExpectUsageErrors({
      {{"admin", "journal", "list", "--limit", "0"}, "--limit"},
      {{"admin", "journal", "list", "--from-sequence", "x"}, "--from-sequence"},
  });
}

TEST_F(VoucherctlAdminTest, AdjustsAVoucherAndListsEveryonesAllocations) {
  pb::Allocation a;
  UseOnce(a);
  ASSERT_FALSE(HasFailure());
  const std::string v = a.voucher_id();
  const auto before = ParseJson<pb::AdminListVouchersResponse>(
      Admin({"admin", "voucher", "list", "--enterprise", "E-000001", "-o",
             "json"})
          .out);
  int64_t face = -1;
  for (const pb::Voucher& x : before.vouchers())
    if (x.voucher_id() == v) face = x.face_value_fen();
  ASSERT_GT(face, 0);

  const Result added = Admin({"admin", "voucher", "adjust", v, "--add", "1000",
                              "--reason", "second tranche", "-o", "json"});
  ASSERT_EQ(added.exit_code, 0) << added;
  EXPECT_EQ(ParseJson<pb::Voucher>(added.out).face_value_fen(), face + 1000'00);
  const Result removed =
      Admin({"admin", "voucher", "adjust", v, "--remove", "250.50", "--reason",
             "correction", "-o", "json"});
  ASSERT_EQ(removed.exit_code, 0) << removed;
  EXPECT_EQ(ParseJson<pb::Voucher>(removed.out).face_value_fen(),
            face + 1000'00 - 250'50);
  ExpectUsageErrors({
      {{"admin", "voucher", "adjust", v, "--reason", "x"}, "exactly one"},
      {{"admin", "voucher", "adjust", v, "--add", "1", "--remove", "1",
        "--reason", "x"},
       "exactly one"},
      {{"admin", "voucher", "adjust", v, "--add", "1"}, "--reason"},
  });

  // Any enterprise's voucher and allocation, by id.
  const Result voucher = Admin({"admin", "voucher", "show", v, "-o", "json"});
  ASSERT_EQ(voucher.exit_code, 0) << voucher;
  EXPECT_EQ(ParseJson<pb::Voucher>(voucher.out).face_value_fen(),
            face + 1000'00 - 250'50);
  const Result allocation =
      Admin({"admin", "allocation", "show", a.allocation_id(), "-o", "json"});
  ASSERT_EQ(allocation.exit_code, 0) << allocation;
  EXPECT_EQ(ParseJson<pb::Allocation>(allocation.out).enterprise_id(),
            "E-000001");

  // Every enterprise's allocations, filtered.
  const Result mine = Admin(
      {"admin", "allocation", "list", "--enterprise", "E-000001", "-o", "csv"});
  ASSERT_EQ(mine.exit_code, 0) << mine;
  const auto rows = SimpleCsv(mine.out);
  ASSERT_EQ(rows.size(), 2u) << mine.out;
  EXPECT_EQ(rows[1][0], a.allocation_id());
  const Result none =
      Admin({"admin", "allocation", "list", "--cluster", "sz-b", "-o", "csv"});
  ASSERT_EQ(none.exit_code, 0) << none;
  EXPECT_EQ(SimpleCsv(none.out).size(), 1u) << none.out;
}

TEST_F(VoucherctlAdminTest, SetsRelatedProvidersAndShowsWhatApplicationsAsk) {
  const std::string enterprise = BuildWorld();
  ASSERT_FALSE(HasFailure());
  const Result set =
      Admin({"admin", "enterprise", "related", "E-000001", "--providers",
             "PR-000001,PR-000002", "-o", "json"});
  ASSERT_EQ(set.exit_code, 0) << set;
  EXPECT_THAT(ParseJson<pb::Enterprise>(set.out).related_provider_ids(),
              ElementsAre("PR-000001", "PR-000002"));
  const Result cleared = Admin({"admin", "enterprise", "related", "E-000001",
                                "--providers", "None", "-o", "json"});
  ASSERT_EQ(cleared.exit_code, 0) << cleared;
  EXPECT_EQ(ParseJson<pb::Enterprise>(cleared.out).related_provider_ids_size(),
            0);
  const Result unknown = Admin({"admin", "enterprise", "related", "E-000001",
                                "--providers", "PR-000009"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown;
  ExpectUsageErrors({
      {{"admin", "enterprise", "related", "E-000001", "--providers", ""},
       "--providers"},
      {{"admin", "enterprise", "related", "E-000001", "--providers",
        "none,PR-000001"},
       "\"none\" alone"},
      {{"admin", "enterprise", "related", "E-000001"}, "--providers"},
  });

  const Result applied =
      As(enterprise, {"apply", "--program", "P-000001", "--amount", "50万",
                      "--purpose", "training a grasping policy"});
  ASSERT_EQ(applied.exit_code, 0) << applied;
  const Result listed = Admin({"admin", "application", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed;
  EXPECT_THAT(listed.out, AllOf(HasSubstr("PURPOSE"), HasSubstr("REQUESTED"),
                                HasSubstr("training a grasping policy"),
                                HasSubstr("500000.00")));
  EXPECT_THAT(listed.out, Not(HasSubstr("DECISION REASON")));
  const Result application =
      Admin({"admin", "application", "show", "AP-000001", "-o", "json"});
  ASSERT_EQ(application.exit_code, 0) << application;
  EXPECT_EQ(ParseJson<pb::Application>(application.out).purpose(),
            "training a grasping policy");
  EXPECT_EQ(Admin({"admin", "application", "show", "AP-000009"}).exit_code, 1);

  // An enterprise by id or by its credit code, a provider by id.
  const pb::RegisterEnterpriseRequest e1 =
      ::computevoucher::testing::WorldEnterprises()[0];
  const Result by_code =
      Admin({"admin", "enterprise", "show", e1.credit_code(), "-o", "json"});
  ASSERT_EQ(by_code.exit_code, 0) << by_code;
  EXPECT_EQ(ParseJson<pb::Enterprise>(by_code.out).enterprise_id(), "E-000001");
  std::string lower = e1.credit_code();
  for (char& ch : lower) ch = static_cast<char>(std::tolower(ch));
  const Result lowered =
      Admin({"admin", "enterprise", "show", lower, "-o", "json"});
  ASSERT_EQ(lowered.exit_code, 0) << lowered;
  EXPECT_EQ(ParseJson<pb::Enterprise>(lowered.out).enterprise_id(), "E-000001");
  const Result no_code =  // valid, but nobody's
      Admin({"admin", "enterprise", "show", "913301000000000009"});
  EXPECT_EQ(no_code.exit_code, 1) << no_code;
  EXPECT_THAT(no_code.err, HasSubstr("no enterprise has credit code"));
  ExpectUsageErrors({
      {{"admin", "enterprise", "show", "91330100000000000X"}, "CREDIT_CODE"},
  });
  const Result provider =
      Admin({"admin", "provider", "show", "PR-000002", "-o", "json"});
  ASSERT_EQ(provider.exit_code, 0) << provider;
  EXPECT_EQ(ParseJson<pb::Provider>(provider.out).provider_id(), "PR-000002");
}

// An auditor reads any enterprise's balance, vouchers, allocations, usage
// and statement by naming it; an enterprise token naming another is refused.
TEST_F(VoucherctlAdminTest, AnAuditorReadsAnyEnterprisesAccounts) {
  pb::Allocation a;
  const int64_t subsidy = UseOnce(a);
  const std::string auditor = CreateToken({"--role", "auditor"});
  ASSERT_FALSE(HasFailure());
  const Result balance =
      As(auditor, {"balance", "--enterprise", "E-000001", "-o", "json"});
  ASSERT_EQ(balance.exit_code, 0) << balance;
  const auto b = ParseJson<pb::Balance>(balance.out);
  EXPECT_EQ(b.enterprise_id(), "E-000001");
  EXPECT_EQ(b.charged_fen(), subsidy);
  const std::string today =
      absl::FormatTime("%Y-%m-%d", absl::Now(), ShanghaiZone());
  const Result statement =
      As(auditor, {"statement", "--enterprise", "E-000001", "--from", today,
                   "--to", today, "-o", "json"});
  ASSERT_EQ(statement.exit_code, 0) << statement;
  const auto st = ParseJson<pb::Statement>(statement.out);
  ASSERT_EQ(st.lines_size(), 1);
  EXPECT_EQ(st.lines(0).allocation_id(), a.allocation_id());
  EXPECT_EQ(st.total().subsidy_fen(), subsidy);
  const Result usage =
      As(auditor, {"usage", "--enterprise", "E-000001", "-o", "csv"});
  ASSERT_EQ(usage.exit_code, 0) << usage;
  EXPECT_EQ(SimpleCsv(usage.out).size(), 2u) << usage.out;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"allocations", "list", "--enterprise", "E-000001"},
           {"allocations", "show", a.allocation_id()},
           {"vouchers", "list", "--enterprise", "E-000001"},
           {"vouchers", "show", a.voucher_id()},
           {"applications", "list", "--enterprise", "E-000001"}}) {
    const Result r = As(auditor, args);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << "\n" << r;
  }
  // Whose must be said; an enterprise reads only its own.
  const Result whose = As(auditor, {"balance"});
  EXPECT_EQ(whose.exit_code, 1) << whose;
  EXPECT_THAT(whose.err, HasSubstr("enterprise_id: required"));
  const std::string e2 =
      CreateToken({"--role", "enterprise", "--enterprise", "E-000002"});
  const Result other = As(e2, {"balance", "--enterprise", "E-000001"});
  EXPECT_EQ(other.exit_code, 1) << other;
  EXPECT_THAT(other.err, HasSubstr("reads only its own"));
  EXPECT_EQ(As(e2, {"balance", "--enterprise", "E-000002"}).exit_code, 0);
}

}  // namespace
}  // namespace computevoucher
