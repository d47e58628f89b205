#include "tests/client/voucherctl_fixture.h"

#include <filesystem>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/config.h"
#include "common/money.h"
#include "common/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tests/testing/world.h"

namespace computevoucher::testing {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.exit_code << "\nstdout:\n"
            << r.out << "stderr:\n"
            << r.err;
}

std::string Cny(int64_t fen) {
  return absl::StrFormat("%d.%02d", fen / 100, fen % 100);
}

std::string Slurp(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? *text : "";
}

std::vector<std::vector<std::string>> SimpleCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line :
       absl::StrSplit(text, "\r\n", absl::SkipEmpty())) {
    rows.push_back(absl::StrSplit(line, ','));
  }
  return rows;
}

void VoucherctlTest::SetUp() {
  ASSERT_NO_FATAL_FAILURE(MakeTempDir("voucherctl", temp_));
  dir_ = temp_.path();
  scheduler_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{BuildDir() + "/scheduler/voucher-scheduler",
                               "--data-dir", dir_ + "/data", "--listen",
                               "127.0.0.1:0", "--port-file", dir_ + "/port"},
      dir_ + "/scheduler.log");
  const int port = WaitForPortFile(*scheduler_, dir_ + "/port");
  ASSERT_GT(port, 0);
  endpoint_ = absl::StrCat("127.0.0.1:", port);
  ASSERT_TRUE(
      PollUntil([&] { return !Slurp(dir_ + "/data/admin.token").empty(); }));
  admin_token_ = std::string(
      absl::StripAsciiWhitespace(Slurp(dir_ + "/data/admin.token")));
}

void VoucherctlTest::Restart(const std::vector<std::string>& extra_args) {
  scheduler_.reset();
  std::filesystem::remove(dir_ + "/port");
  std::vector<std::string> args = {BuildDir() + "/scheduler/voucher-scheduler",
                                   "--data-dir",
                                   dir_ + "/data",
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--port-file",
                                   dir_ + "/port"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  scheduler_ =
      std::make_unique<ChildProcess>(std::move(args), dir_ + "/scheduler.log");
  const int port = WaitForPortFile(*scheduler_, dir_ + "/port");
  ASSERT_GT(port, 0);
  endpoint_ = absl::StrCat("127.0.0.1:", port);
}

Result VoucherctlTest::Run(const std::vector<std::string>& args,
                           const std::vector<std::string>& env,
                           const std::string& input) {
  const std::string n = std::to_string(++runs_);
  const std::string in = dir_ + "/in." + n, out = dir_ + "/out." + n,
                    err = dir_ + "/err." + n;
  std::ofstream(in) << input;
  std::vector<std::string> argv = {BuildDir() + "/client/voucherctl"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::map<std::string, std::string> vars = {
      {"HOME", dir_ + "/home"}, {"XDG_CONFIG_HOME", dir_ + "/config"}};
  for (const std::string& e : env) {
    const size_t eq = e.find('=');
    vars[e.substr(0, eq)] = e.substr(eq + 1);
  }
  std::vector<std::string> envs;
  for (const auto& [name, value] : vars) envs.push_back(name + "=" + value);
  Result r;
  r.exit_code = RunToFiles(std::move(argv), std::move(envs), in, out, err);
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
}

std::string VoucherctlTest::BuildWorld() {
  const pb::CreateProgramRequest program = WorldProgram();
  EXPECT_EQ(Admin({"admin",
                   "program",
                   "create",
                   "--name",
                   program.name(),
                   "--issuer",
                   program.issuer(),
                   "--budget",
                   "250M",
                   "--valid-from",
                   "2025-01-01",
                   "--valid-until",
                   "2035-12-31",
                   "--domestic-ratio",
                   "30%",
                   "--other-ratio",
                   "20",
                   "--sme-ratio",
                   "50%",
                   "--cap",
                   "8,000,000.00",
                   "--categories",
                   "整机,软件算法,科研平台"})
                .exit_code,
            0);
  for (const pb::RegisterProviderRequest& p : WorldProviders()) {
    EXPECT_EQ(Admin({"admin", "provider", "add", "--name", p.name(),
                     "--credit-code", p.credit_code()})
                  .exit_code,
              0);
  }
  std::string csv = "name,credit_code,category,district,sme,related\r\n";
  const std::vector<pb::RegisterEnterpriseRequest> enterprises =
      WorldEnterprises();
  for (size_t i = 0; i < enterprises.size(); ++i) {
    const pb::RegisterEnterpriseRequest& e = enterprises[i];
    const std::string name =
        i == 2 ? "\"北京人形机器人创新中心, \"\"BHRIC\"\"\"" : e.name();
    absl::StrAppend(&csv, name, ",", e.credit_code(), ",", e.category(), ",",
                    e.district(), ",", e.sme() ? "yes" : "no", ",",
                    absl::StrJoin(e.related_provider_ids(), " "), "\r\n");
  }
  const Result imported =
      Admin({"admin", "enterprise", "import", File("enterprises.csv", csv)});
  EXPECT_EQ(imported.exit_code, 0) << imported;
  const Result batch =
      Admin({"admin", "voucher", "issue-batch",
             File("vouchers.csv",
                  "program,enterprise,amount,valid_from,priority\n"
                  "P-000001,E-000001,1M,2025-01-01,10\n"
                  "P-000001,E-000001,50万,2025-01-01,0\n"
                  "P-000001,E-000002,200k,2025-01-01,0\n"),
             "-o", "json"});
  EXPECT_EQ(batch.exit_code, 0) << batch;
  const auto issued = ParseJson<pb::BatchIssueVouchersResponse>(batch.out);
  EXPECT_EQ(issued.vouchers_size(), 3);
  if (issued.vouchers_size() > 0) {
    voucher_prefix_ = issued.vouchers(0).voucher_id().substr(0, 7);
  }
  return CreateToken({"--role", "enterprise", "--enterprise", "E-000001"});
}

int64_t VoucherctlTest::UseOnce(pb::Allocation& a) {
  const std::string enterprise = BuildWorld();
  const AgentClient agent = ApprovedCluster(36'000'000);
  QuoteAllocateAndExtend(enterprise, a);
  pb::UsageAck ack;
  ReportUsage(agent, a, ack);
  EXPECT_GT(ack.subsidy_fen(), 0);
  return ack.subsidy_fen();
}

std::string VoucherctlTest::CreateToken(std::vector<std::string> flags) {
  std::vector<std::string> args = {"admin", "token", "create", "-o", "json"};
  args.insert(args.end(), flags.begin(), flags.end());
  const Result r = Admin(args);
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.err, HasSubstr("shown only this once"));
  return ParseJson<pb::CreateTokenResponse>(r.out).secret();
}

VoucherctlTest::AgentClient VoucherctlTest::ApprovedCluster(
    int64_t price_fen_per_gpu_hour) {
  AgentClient agent;
  agent.token =
      CreateToken({"--role", "agent", "--cluster", "hz-a", "--provider",
                   "PR-000001", "--description", "hz-a agent"});
  agent.stub = pb::AgentService::NewStub(
      grpc::CreateChannel(endpoint_, grpc::InsecureChannelCredentials()));
  pb::RegisterRequest registration;
  registration.set_request_id("register-1");
  registration.set_region("cn-hangzhou");
  registration.set_meter("slurm+simulated");
  pb::GpuModel* h100 = registration.add_inventory();
  h100->set_model("H100");
  h100->set_hardware_class(pb::HARDWARE_CLASS_OTHER);
  h100->set_gpu_count(8);
  h100->set_price_fen_per_gpu_hour(price_fen_per_gpu_hour);
  pb::RegisterResponse registered;
  const grpc::Status s =
      agent.Call(&pb::AgentService::Stub::Register, registration, &registered);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(
      Admin({"admin", "cluster", "list", "--state", "pending-approval"}).out,
      HasSubstr("hz-a  PR-000001  cn-hangzhou  pending-approval"));
  EXPECT_EQ(Admin({"admin", "cluster", "approve", "hz-a"}).exit_code, 0);
  return agent;
}

void VoucherctlTest::QuoteAllocateAndExtend(const std::string& enterprise,
                                            pb::Allocation& a) {
  const Result quote = As(enterprise, {"quote", "--model", "H100", "--gpus",
                                       "2", "--hours", "0.5", "-o", "json"});
  ASSERT_EQ(quote.exit_code, 0) << quote;
  const auto q = ParseJson<pb::QuoteResponse>(quote.out);
  EXPECT_EQ(q.amounts().cost_fen(), 36'000'000);
  EXPECT_EQ(q.amounts().subsidy_fen(), 7'200'000);
  EXPECT_EQ(q.cluster_id(), "hz-a");

  const Result allocated =
      As(enterprise, {"allocate", "--model", "H100", "--gpus", "2", "--hours",
                      "0.5", "--request-id", "alloc-1", "-o", "json", "--",
                      "python", "train.py", "--epochs=3"});
  ASSERT_EQ(allocated.exit_code, 0) << allocated;
  a = ParseJson<pb::Allocation>(allocated.out);
  EXPECT_EQ(a.state(), pb::ALLOCATION_STATE_ASSIGNED);
  EXPECT_EQ(a.request_id(), "alloc-1");
  EXPECT_THAT(a.workload_command(),
              ElementsAre("python", "train.py", "--epochs=3"));
  // A retry with the same request id is the same allocation.
  const Result retried =
      As(enterprise, {"allocate", "--model", "H100", "--gpus", "2", "--hours",
                      "0.5", "--request-id", "alloc-1", "-o", "json", "--",
                      "python", "train.py", "--epochs=3"});
  EXPECT_EQ(ParseJson<pb::Allocation>(retried.out).allocation_id(),
            a.allocation_id());
  const std::string id = a.allocation_id();
  const Result extended =
      As(enterprise, {"allocations", "extend", id, "--hours", "0.25"});
  EXPECT_THAT(extended.out, HasSubstr("\nHours:                   0.750\n"));
}

void VoucherctlTest::ReportUsage(const AgentClient& agent,
                                 const pb::Allocation& a, pb::UsageAck& ack) {
  pb::ReportUsageRequest report;
  report.set_request_id("usage-1");
  pb::UsageRecord* record = report.add_records();
  record->set_allocation_id(a.allocation_id());
  record->set_sequence(1);
  *record->mutable_start() = a.assigned_at();
  *record->mutable_end() = ToProto(*FromProto("assigned_at", a.assigned_at()) +
                                   absl::Milliseconds(100));
  record->set_gpu_ms(200);
  pb::ReportUsageResponse acks;
  ASSERT_TRUE(PollUntil([&] {
    acks.Clear();
    return agent.Call(&pb::AgentService::Stub::ReportUsage, report, &acks)
               .ok() &&
           acks.acks(0).result() != pb::USAGE_RESULT_RETRY;
  }));
  ASSERT_EQ(acks.acks(0).result(), pb::USAGE_RESULT_ACCEPTED)
      << acks.DebugString();
  ack = acks.acks(0);
}

void VoucherctlTest::ExpectUsageCsv(const std::string& enterprise,
                                    const std::string& id,
                                    const std::string& subsidy) {
  const Result usage =
      As(enterprise, {"usage", "--allocation", id, "-o", "csv"});
  ASSERT_EQ(usage.exit_code, 0) << usage;
  const auto usage_rows = SimpleCsv(usage.out);
  ASSERT_EQ(usage_rows.size(), 2u) << usage.out;
  EXPECT_THAT(
      usage_rows[0],
      ElementsAre("allocation_id", "sequence", "start", "end", "gpu_hours",
                  "cost_cny", "subsidy_cny", "unsubsidised_gpu_hours",
                  "voucher_id", "cluster_id"));
  EXPECT_EQ(usage_rows[1][0], id);
  EXPECT_EQ(usage_rows[1][6], subsidy);
}

void VoucherctlTest::ExpectStatement(const std::string& enterprise,
                                     const std::string& day,
                                     const std::string& id, int64_t subsidy_fen,
                                     const std::string& subsidy) {
  const Result statement =
      As(enterprise, {"statement", "--from", day, "--to", day, "-o", "json"});
  ASSERT_EQ(statement.exit_code, 0) << statement;
  const auto st = ParseJson<pb::Statement>(statement.out);
  ASSERT_EQ(st.lines_size(), 1);
  EXPECT_EQ(st.lines(0).allocation_id(), id);
  EXPECT_EQ(st.total().subsidy_fen(), subsidy_fen);
  EXPECT_EQ(st.total().subsidy_fen() + st.total().self_pay_fen(),
            st.total().cost_fen());
  EXPECT_THAT(As(enterprise, {"statement", "--from", day, "--to", day}).out,
              HasSubstr(absl::StrCat(
                  "total for E-000001: cost ", FormatFen(st.total().cost_fen()),
                  ", subsidy ", subsidy, " CNY, self-pay ",
                  FormatFen(st.total().self_pay_fen()), "\n")));
}

void VoucherctlTest::ExpectSettlementCsv(const std::string& day,
                                         const std::string& subsidy) {
  const Result settlement =
      Admin({"admin", "settlement", "--from", day, "--to", day, "-o", "csv"});
  ASSERT_EQ(settlement.exit_code, 0) << settlement;
  const auto settlement_rows = SimpleCsv(settlement.out);
  ASSERT_EQ(settlement_rows.size(), 2u) << settlement.out;
  EXPECT_THAT(settlement_rows[0],
              ElementsAre("provider_id", "program_id", "hardware_class",
                          "records", "gpu_hours", "subsidy_cny", "period_start",
                          "period_end", "journal_sequence", "journal_hash"));
  EXPECT_EQ(settlement_rows[1][0], "PR-000001");
  EXPECT_EQ(settlement_rows[1][2], "other");
  EXPECT_EQ(settlement_rows[1][5], subsidy);
  int64_t sequence = 0;
  EXPECT_TRUE(absl::SimpleAtoi(settlement_rows[1][8], &sequence));
  EXPECT_GT(sequence, 0);
  EXPECT_EQ(settlement_rows[1][9].size(), 64u);
}

}  // namespace computevoucher::testing
