// voucherctl as a user sets it up and finds their way: login that checks
// the token, profiles for several schedulers, what is on offer, model names
// in any case, and JSON and YAML for programs.
#include <string>
#include <vector>

#include "computevoucher/v1/enterprise.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/voucherctl_fixture.h"

namespace computevoucher::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(VoucherctlTest, ProfilesKeepSeveralSchedulersApart) {
  ASSERT_EQ(Run({"login", "--endpoint", endpoint_, "--token", admin_token_})
                .exit_code,
            0);
  // Nothing listens on port 1: a profile there fails to connect, so each
  // command shows which profile it used.
  const Result added =
      Run({"login", "--profile", "staging", "--endpoint", "127.0.0.1:1",
           "--token", "cvt_staging", "--no-check"});
  ASSERT_EQ(added.exit_code, 0) << added;
  EXPECT_THAT(added.out, HasSubstr("as profile staging in"));
  const std::vector<std::string> list = {"admin", "program", "list"};
  EXPECT_EQ(Run(list).exit_code, 0);
  const Result staging = Run({"--profile", "staging", "--leader-wait", "0s",
                              "admin", "program", "list"});
  EXPECT_EQ(staging.exit_code, 3) << staging;
  EXPECT_THAT(staging.err, HasSubstr("(profile staging)"));

  Result listed = Run({"profile", "list"});
  EXPECT_THAT(listed.out, HasSubstr("CURRENT  NAME     ENDPOINT"));
  EXPECT_THAT(listed.out, ::testing::ContainsRegex(
                              "\n\\*  +default  +" + endpoint_ +
                              "  +saved  no\n  +staging  +127.0.0.1:1  +saved  "
                              "no\n$"))
      << listed;
  // JSON and YAML show the profiles, never a token.
  for (const char* format : {"json", "yaml"}) {
    listed = Run({"profile", "list", "-o", format});
    EXPECT_EQ(listed.exit_code, 0) << listed;
    EXPECT_THAT(listed.out, HasSubstr("staging"));
    EXPECT_THAT(listed.out, Not(HasSubstr(admin_token_)));
    EXPECT_THAT(listed.out, Not(HasSubstr("cvt_staging")));
  }

  ASSERT_EQ(Run({"profile", "use", "staging"}).exit_code, 0);
  const std::vector<std::string> fast = {"--leader-wait", "0s", "admin",
                                         "program", "list"};
  EXPECT_EQ(Run(fast).exit_code, 3);
  EXPECT_EQ(Run(list, {"VOUCHERCTL_PROFILE=default"}).exit_code, 0);
  // A profile named for the command keeps its own scheduler and token: the
  // environment's do not apply to it.
  EXPECT_EQ(Run(list, {"VOUCHERCTL_PROFILE=default",
                       "VOUCHERCTL_ENDPOINT=127.0.0.1:1",
                       "VOUCHERCTL_TOKEN=cvt_wrong"})
                .exit_code,
            0);
  EXPECT_EQ(Run({"--profile", "default", "admin", "program", "list"}).exit_code,
            0);

  const Result missing = Run({"--profile", "prod", "admin", "program", "list"});
  EXPECT_EQ(missing.exit_code, 2) << missing;
  EXPECT_THAT(missing.err,
              HasSubstr("--profile: no profile \"prod\" in " + dir_ +
                        "/config/voucherctl/config (profiles: default, "
                        "staging); create it with 'voucherctl login --profile "
                        "prod"));
  const Result bad = Run({"--profile", "a b", "admin", "program", "list"});
  EXPECT_EQ(bad.exit_code, 2) << bad;
  EXPECT_THAT(bad.err, HasSubstr("--profile: \"a b\" is not a profile name"));
  EXPECT_EQ(Run({"profile", "use", "prod"}).exit_code, 2);

  EXPECT_EQ(Run({"profile", "delete", "default"}).exit_code, 2);
  ASSERT_EQ(Run({"profile", "delete", "staging"}).exit_code, 0);
  // Deleting the profile in use goes back to the default one.
  EXPECT_EQ(Run(list).exit_code, 0);
  EXPECT_THAT(Run({"profile", "list"}).out, Not(HasSubstr("staging")));
}

TEST_F(VoucherctlTest, OffersShowModelsPricesAndFreeGpusInAnyLetterCase) {
  const std::string enterprise = BuildWorld();
  ApprovedCluster(1500);
  const Result offers = As(enterprise, {"offers"});
  ASSERT_EQ(offers.exit_code, 0) << offers;
  EXPECT_EQ(offers.out,
            "GPU MODEL  HARDWARE CLASS  PRICE PER GPU-HOUR  FREE GPUS  GPUS  "
            "CLUSTER  REGION       PROVIDER\n"
            "H100       other                    15.00 CNY          8     8  "
            "hz-a     cn-hangzhou  杭州算力科技有限公司\n");
  EXPECT_EQ(
      As(enterprise, {"offers", "--class", "domestic", "--no-headers"}).out,
      "");
  // An admin names whose offers; an enterprise related to the provider
  // sees none of its clusters.
  EXPECT_EQ(Admin({"offers"}).exit_code, 1);
  EXPECT_THAT(Admin({"offers", "--enterprise", "E-000001"}).out,
              HasSubstr("hz-a"));

  // "h100" is the H100 the cluster lists, in quotes and allocations.
  const Result quote = As(enterprise, {"quote", "--model", "h100", "--gpus",
                                       "2", "--hours", "1", "-o", "json"});
  ASSERT_EQ(quote.exit_code, 0) << quote;
  EXPECT_EQ(ParseJson<pb::QuoteResponse>(quote.out).gpu_model(), "H100");
  const Result allocated =
      As(enterprise, {"allocate", "--model", "h100", "--gpus", "2", "--hours",
                      "1", "-o", "json"});
  ASSERT_EQ(allocated.exit_code, 0) << allocated;
  EXPECT_EQ(ParseJson<pb::Allocation>(allocated.out).gpu_model(), "H100");
  EXPECT_THAT(As(enterprise, {"offers", "--model", "H100", "-o", "csv"}).out,
              HasSubstr("H100,other,15.00,6,8,hz-a,"));

  // A model nobody lists names those that are; a full cluster says how to
  // wait, in voucherctl's words.
  const Result unknown = As(enterprise, {"allocate", "--model", "A800",
                                         "--gpus", "1", "--hours", "1"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown;
  EXPECT_THAT(unknown.err, HasSubstr("offers 1 × A800; models on offer: H100"));
  const Result full = As(enterprise, {"allocate", "--model", "H100", "--gpus",
                                      "8", "--hours", "1"});
  EXPECT_EQ(full.exit_code, 1) << full;
  EXPECT_THAT(full.err,
              HasSubstr("no free capacity now for 8 × H100; it may "
                        "wait in the queue (run again with --queue)"));
  EXPECT_THAT(full.err, Not(HasSubstr("queue_if_busy")));
}

TEST_F(VoucherctlTest, JsonHasNumbersAndHexAndYamlSaysTheSame) {
  BuildWorld();
  const Result json = Admin({"admin", "journal", "list", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json;
  // Money is a number, hashes are the hex the tables show.
  EXPECT_THAT(json.out, HasSubstr("\"amount_fen\": 100000000,"));
  EXPECT_THAT(json.out, ::testing::ContainsRegex("\"hash\": \"[0-9a-f]{64}\""));
  const Result yaml = Admin({"admin", "journal", "list", "-o", "yaml"});
  ASSERT_EQ(yaml.exit_code, 0) << yaml;
  EXPECT_THAT(yaml.out, HasSubstr("  amount_fen: 100000000\n"));
  // A YAML reader (PyYAML) reads the same document as a JSON reader.
  const std::string yaml_file = File("journal.yaml", yaml.out);
  const std::string json_file = File("journal.json", json.out);
  EXPECT_EQ(Shell("python3 -c 'import json, sys, yaml; "
                  "a = yaml.safe_load(open(sys.argv[1])); "
                  "b = json.load(open(sys.argv[2])); "
                  "sys.exit(0 if a == b and a[\"entries\"] else 1)' " +
                  yaml_file + " " + json_file),
            0)
      << yaml.out;
}

}  // namespace
}  // namespace computevoucher::testing
