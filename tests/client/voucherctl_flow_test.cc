// voucherctl through whole workflows against a real voucher-scheduler: an
// enterprise redeems a voucher and sees its usage, statement and
// settlement; the access to its GPUs and why its cluster ended it; an admin
// manages applications, vouchers and tokens.
#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/voucherctl_fixture.h"

namespace computevoucher {
namespace {

namespace pb = ::computevoucher::v1;
using ::computevoucher::testing::ParseJson;
using ::computevoucher::testing::Result;
using ::computevoucher::testing::SimpleCsv;
using ::computevoucher::testing::VoucherctlTest;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TEST_F(VoucherctlTest, EnterpriseRedeemsAVoucherAndSeesUsageAndStatement) {
  const std::string enterprise = BuildWorld();
  // 10 fen per GPU-millisecond, so that a short record costs something.
  const AgentClient agent = ApprovedCluster(36'000'000);
  ASSERT_FALSE(HasFailure());
  pb::Allocation a;
  ASSERT_NO_FATAL_FAILURE(QuoteAllocateAndExtend(enterprise, a));
  const std::string id = a.allocation_id();

  // The agent reports 200 GPU-ms: cost 20.00 CNY, 20% subsidised.
  pb::UsageAck ack;
  ASSERT_NO_FATAL_FAILURE(ReportUsage(agent, a, ack));

  // What the record was charged (capped at GPUs × the time elapsed so far)
  // is what every report shows.
  const int64_t subsidy_fen = ack.subsidy_fen();
  EXPECT_GT(subsidy_fen, 0);
  EXPECT_LE(subsidy_fen, 400);
  const std::string subsidy =
      absl::StrFormat("%d.%02d", subsidy_fen / 100, subsidy_fen % 100);
  ASSERT_NO_FATAL_FAILURE(ExpectUsageCsv(enterprise, id, subsidy));
  const std::string today =
      absl::FormatTime("%Y-%m-%d", absl::Now(), ShanghaiZone());
  ASSERT_NO_FATAL_FAILURE(
      ExpectStatement(enterprise, today, id, subsidy_fen, subsidy));
  ASSERT_NO_FATAL_FAILURE(ExpectSettlementCsv(today, subsidy));

  // Release it; watch prints the end and returns.
  EXPECT_EQ(As(enterprise, {"allocations", "release", id}).exit_code, 0);
  const Result watch =
      As(enterprise, {"allocations", "watch", id, "--interval", "100ms"});
  EXPECT_EQ(watch.exit_code, 0) << watch;
  EXPECT_THAT(watch.out, HasSubstr(id + "  ended (released)"));
  const Result listed =
      As(enterprise, {"allocations", "list", "--state", "ended", "-o", "csv"});
  EXPECT_EQ(SimpleCsv(listed.out).size(), 2u) << listed.out;
  EXPECT_EQ(Admin({"admin", "audit", "verify", "-o", "json"}).exit_code, 0);
}

TEST_F(VoucherctlTest, ShowsHowToReachTheGpusAndWhyTheClusterEndedIt) {
  const std::string enterprise = BuildWorld();
  const AgentClient agent = ApprovedCluster(2'000);
  ASSERT_FALSE(HasFailure());
  const Result allocated = As(enterprise, {"allocate", "--model", "H100",
                                           "--gpus", "1", "--hours", "1"});
  ASSERT_EQ(allocated.exit_code, 0) << allocated;
  const size_t at = allocated.out.find("AL-");
  ASSERT_NE(at, std::string::npos) << allocated;
  const std::string id =
      allocated.out.substr(at, allocated.out.find('\n', at) - at);
  // The agent has not started it yet, so the answer says where to look.
  EXPECT_THAT(allocated.out, HasSubstr("\nAccess:                  -\n"));
  EXPECT_THAT(allocated.err,
              HasSubstr("How to reach its GPUs shows once its cluster has "
                        "started it: 'voucherctl allocations show " +
                        id + "'."));

  // The agent started it and says how to reach it, on two lines.
  pb::HeartbeatRequest beat;
  beat.set_request_id("beat-1");
  pb::ObservedAllocation* o = beat.add_allocations();
  o->set_allocation_id(id);
  o->set_running(true);
  o->set_access("ssh login.hz-a\nsrun --jobid=42 --overlap --pty bash");
  pb::HeartbeatResponse desired;
  ASSERT_TRUE(
      agent.Call(&pb::AgentService::Stub::Heartbeat, beat, &desired).ok());
  const Result shown = As(enterprise, {"allocations", "show", id});
  EXPECT_EQ(shown.exit_code, 0) << shown;
  EXPECT_THAT(shown.out,
              HasSubstr("\nAccess:                  ssh login.hz-a\n"
                        "                         srun --jobid=42 --overlap "
                        "--pty bash\n"));
  const Result json = As(enterprise, {"allocations", "show", id, "-o", "json"});
  EXPECT_EQ(ParseJson<pb::Allocation>(json.out).access(), o->access());

  // The cluster cancelled its job: the reason and what the agent saw.
  o->set_running(false);
  o->set_ended_on_cluster(true);
  o->set_end_detail("slurm job 42 CANCELLED by root");
  beat.set_request_id("beat-2");
  ASSERT_TRUE(
      agent.Call(&pb::AgentService::Stub::Heartbeat, beat, &desired).ok());
  EXPECT_THAT(
      As(enterprise, {"allocations", "show", id}).out,
      HasSubstr("\nEnd reason:              ended-on-cluster: slurm job 42 "
                "CANCELLED by root\n"));
  const auto ended = ParseJson<pb::Allocation>(
      As(enterprise, {"allocations", "show", id, "-o", "json"}).out);
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_ENDED_ON_CLUSTER);
  EXPECT_EQ(ended.end_detail(), "slurm job 42 CANCELLED by root");
  EXPECT_THAT(
      As(enterprise, {"allocations", "watch", id, "--interval", "100ms"}).out,
      HasSubstr(id + "  ended (ended-on-cluster: slurm job 42 CANCELLED by "
                     "root)"));
}

TEST_F(VoucherctlTest, AdminManagesApplicationsVouchersAndTokens) {
  const std::string enterprise = BuildWorld();
  const Result applied =
      As(enterprise, {"apply", "--program", "P-000001", "--amount", "300k",
                      "--purpose", "grasping policy training"});
  ASSERT_EQ(applied.exit_code, 0) << applied;
  EXPECT_THAT(applied.out, HasSubstr("State:            pending\n"));
  EXPECT_THAT(Admin({"admin", "application", "list", "--state", "pending"}).out,
              HasSubstr("AP-000001  P-000001  E-000001    300000.00 CNY  "
                        "pending"));
  const Result approved =
      Admin({"admin", "application", "approve", "AP-000001", "--amount",
             "250000", "--reason", "within cap", "-o", "json"});
  ASSERT_EQ(approved.exit_code, 0) << approved;
  const std::string voucher =
      ParseJson<pb::Application>(approved.out).voucher_id();
  EXPECT_FALSE(voucher.empty());

  EXPECT_THAT(
      Admin({"admin", "voucher", "suspend", voucher, "--reason", "audit"}).out,
      HasSubstr("State:         suspended\n"));
  EXPECT_THAT(Admin({"admin", "voucher", "resume", voucher}).out,
              HasSubstr("State:         active\n"));
  EXPECT_THAT(
      Admin({"admin", "voucher", "revoke", voucher, "--reason", "left"}).out,
      AllOf(HasSubstr("State:         revoked\n"),
            HasSubstr("Returned:      250000.00 CNY\n")));
  EXPECT_THAT(As(enterprise, {"vouchers", "show", voucher}).out,
              HasSubstr("State reason:  left\n"));

  const Result created = Admin({"admin", "token", "create", "--role", "auditor",
                                "--description", "audit office"});
  ASSERT_EQ(created.exit_code, 0) << created;
  EXPECT_THAT(created.out, HasSubstr("Secret:      cvt_"));
  EXPECT_EQ(Admin({"admin", "token", "revoke", "TK-000003"}).exit_code, 0);
  EXPECT_THAT(Admin({"admin", "token", "list"}).out,
              HasSubstr("TK-000003  auditor     -           -        -         "
                        "audit office"));

  // With --secret-file the secret goes to a private file, not the screen.
  const std::string secret_file = dir_ + "/auditor.token";
  const Result to_file = Admin({"admin", "token", "create", "--role", "auditor",
                                "--secret-file", secret_file});
  ASSERT_EQ(to_file.exit_code, 0) << to_file;
  EXPECT_THAT(to_file.out, Not(HasSubstr("cvt_")));
  absl::StatusOr<std::string> written = ReadFile(secret_file);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_THAT(*written, StartsWith("cvt_"));
  struct stat st;
  ASSERT_EQ(stat(secret_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(As(std::string(absl::StripAsciiWhitespace(*written)),
               {"admin", "program", "list"})
                .exit_code,
            0);
}

}  // namespace
}  // namespace computevoucher
