// voucher-scheduler's /metrics (deploy/METRICS.md): an in-process scheduler
// serving metrics on 127.0.0.1:0 is driven through its real API and then
// scraped over HTTP; the figures must be the ones the API shows.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "scheduler/api/grpc_metrics.h"
#include "scheduler/api/usage_metrics.h"
#include "tests/scheduler/api/api_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/world.h"

namespace computevoucher::testing {
namespace {

using ::testing::HasSubstr;
using Labels = std::map<std::string, std::string>;

// The body of GET /metrics on 127.0.0.1:`port`, read until the server
// closes the connection (HTTP/1.0).
absl::StatusOr<std::string> Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect to port ", port));
  }
  const std::string request =
      "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (send(fd, request.data(), request.size(), 0) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("send");
  }
  char buffer[65536];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  if (n < 0) return absl::DeadlineExceededError("recv");
  const size_t body = response.find("\r\n\r\n");
  if (!absl::StartsWith(response, "HTTP/1.1 200") &&
      !absl::StartsWith(response, "HTTP/1.0 200")) {
    return absl::UnavailableError(
        absl::StrCat("not 200: ", response.substr(0, 200)));
  }
  if (body == std::string::npos) return absl::DataLossError(response);
  return response.substr(body + 4);
}

// The samples of a Prometheus text exposition, by name and labels. Label
// values in our metrics contain neither '"', ',' nor '\'.
class Samples {
 public:
  explicit Samples(const std::string& text) {
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (line.empty() || line[0] == '#') continue;
      const size_t space = line.rfind(' ');
      absl::string_view series = line.substr(0, space);
      double value = 0;
      // prometheus-cpp writes an empty summary's quantiles as "Nan".
      if (!absl::SimpleAtod(line.substr(space + 1), &value)) continue;
      Labels labels;
      const size_t brace = series.find('{');
      if (brace != absl::string_view::npos) {
        absl::string_view inside = series.substr(brace + 1);
        absl::ConsumeSuffix(&inside, "}");
        for (absl::string_view pair :
             absl::StrSplit(inside, ',', absl::SkipEmpty())) {
          std::pair<std::string, std::string> kv =
              absl::StrSplit(pair, absl::MaxSplits('=', 1));
          labels[kv.first] = std::string(
              absl::StripSuffix(absl::StripPrefix(kv.second, "\""), "\""));
        }
        series = series.substr(0, brace);
      }
      values_[Key(series, labels)] = value;
    }
  }

  std::optional<double> Get(absl::string_view name,
                            const Labels& labels = {}) const {
    auto it = values_.find(Key(name, labels));
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }

 private:
  static std::string Key(absl::string_view name, const Labels& labels) {
    return absl::StrCat(
        name, "{", absl::StrJoin(labels, ",", absl::PairFormatter("=")), "}");
  }
  std::map<std::string, double> values_;
};

Labels Rpc(const std::string& service, const std::string& method) {
  return {{"grpc_service", absl::StrCat("computevoucher.v1.", service)},
          {"grpc_method", method},
          {"grpc_type", "unary"}};
}

Labels With(Labels labels, const std::string& name, const std::string& value) {
  labels[name] = value;
  return labels;
}

Labels P1State(const std::string& state) {
  return {{"program_id", "P-000001"}, {"state", state}};
}

class MetricsTest : public ApiTest {
 protected:
  void Configure(pb::SchedulerConfig& config) override {
    config.set_metrics_address("127.0.0.1:0");
  }

  void SetUp() override {
    ApiTest::SetUp();
    ASSERT_GT(server_->metrics_port(), 0);
    BuildWorld();
  }

  Samples ScrapeSamples() {
    absl::StatusOr<std::string> text = Scrape(server_->metrics_port());
    EXPECT_THAT(text, IsOk());
    return Samples(text.value_or(""));
  }

  grpc::Status Allocate(const std::string& token, const std::string& model,
                        int gpus, pb::Allocation* out, bool queue = false) {
    pb::AllocateRequest r;
    r.set_request_id(NextRequestId());
    r.mutable_resources()->set_gpu_model(model);
    r.mutable_resources()->set_gpu_count(gpus);
    r.mutable_resources()->set_max_duration_s(3 * 3600);
    r.set_queue_if_busy(queue);
    return enterprise_->Allocate(As(token).get(), r, out);
  }

  pb::UsageRecord Record(const pb::Allocation& a, int64_t sequence,
                         absl::Time start, absl::Duration length) {
    pb::UsageRecord u;
    u.set_allocation_id(a.allocation_id());
    u.set_sequence(sequence);
    *u.mutable_start() = ToProto(start);
    *u.mutable_end() = ToProto(start + length);
    u.set_gpu_ms(a.gpu_count() * absl::ToInt64Milliseconds(length));
    return u;
  }

  pb::Program Program(const std::string& id) {
    pb::GetProgramRequest r;
    r.set_program_id(id);
    pb::Program p;
    EXPECT_TRUE(admin_->GetProgram(As(auditor_token_).get(), r, &p).ok());
    return p;
  }

  // Issues three vouchers (E1 one, E3 two), allocates one 910B for E3 and
  // has one refused, then reports an hour of usage accepted, the same record
  // again, and one record claiming more GPU time than its interval holds.
  // Sets subsidy_fen_ to the accepted record's subsidy.
  void IssueAllocateAndReport() {
    Issue("E-000001", 500'000'00);
    Issue("E-000003", 10'000'00);
    Issue("E-000003", 20'000'00);

    pb::Allocation a;
    ASSERT_TRUE(Allocate(e3_token_, "910B", 1, &a).ok());
    pb::Allocation refused;
    EXPECT_EQ(Allocate(e3_token_, "910B", 0, &refused).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);

    const absl::Time start = *FromProto("assigned_at", a.assigned_at());
    clock_.Set(start + absl::Hours(2));
    pb::ReportUsageRequest report;
    report.set_request_id(NextRequestId());
    *report.add_records() = Record(a, 1, start, absl::Hours(1));
    *report.add_records() = Record(a, 1, start, absl::Hours(1));
    pb::UsageRecord too_much =
        Record(a, 2, start + absl::Hours(1), absl::Hours(1));
    too_much.set_gpu_ms(too_much.gpu_ms() + 1);
    *report.add_records() = too_much;
    pb::ReportUsageResponse acks;
    ASSERT_TRUE(agent_->ReportUsage(As(hz_token_).get(), report, &acks).ok());
    ASSERT_EQ(acks.acks_size(), 3);
    ASSERT_EQ(acks.acks(0).result(), pb::USAGE_RESULT_ACCEPTED);
    ASSERT_EQ(acks.acks(1).result(), pb::USAGE_RESULT_DUPLICATE);
    ASSERT_EQ(acks.acks(2).result(), pb::USAGE_RESULT_REJECTED);
    subsidy_fen_ = acks.acks(0).subsidy_fen();
    EXPECT_GT(subsidy_fen_, 0);
  }

  // The gRPC counters after IssueAllocateAndReport.
  void ExpectRpcFigures(const Samples& m) {
    const Labels allocate = Rpc("EnterpriseService", "Allocate");
    EXPECT_EQ(m.Get("grpc_server_started_total", allocate), 2);
    EXPECT_EQ(
        m.Get("grpc_server_handled_total", With(allocate, "grpc_code", "OK")),
        1);
    EXPECT_EQ(m.Get("grpc_server_handled_total",
                    With(allocate, "grpc_code", "INVALID_ARGUMENT")),
              1);
    EXPECT_EQ(m.Get("grpc_server_handling_seconds_count", allocate), 2);
    EXPECT_EQ(m.Get("grpc_server_handling_seconds_bucket",
                    With(allocate, "le", "+Inf")),
              2);
    EXPECT_EQ(
        m.Get("grpc_server_handled_total",
              With(Rpc("AdminService", "IssueVoucher"), "grpc_code", "OK")),
        3);
    EXPECT_EQ(m.Get("grpc_server_handled_total",
                    With(Rpc("AgentService", "Register"), "grpc_code", "OK")),
              2);
  }

  // The program's figures, as GetProgram shows them.
  void ExpectProgramFigures(const Samples& m) {
    const pb::Program program = Program("P-000001");
    const Labels p1 = {{"program_id", "P-000001"}};
    EXPECT_EQ(m.Get("computevoucher_program_budget_fen", p1),
              program.budget_fen());
    EXPECT_EQ(m.Get("computevoucher_program_unissued_fen", p1),
              program.unissued_fen());
    EXPECT_EQ(m.Get("computevoucher_program_issued_fen", p1), 530'000'00);
    EXPECT_EQ(m.Get("computevoucher_program_issued_fen", p1),
              program.issued_fen());
    EXPECT_EQ(m.Get("computevoucher_program_held_fen", p1), program.held_fen());
    EXPECT_EQ(m.Get("computevoucher_program_charged_fen", p1), subsidy_fen_);
    EXPECT_EQ(m.Get("computevoucher_program_charged_fen", p1),
              program.charged_fen());
    EXPECT_EQ(m.Get("computevoucher_program_returned_fen", p1), 0);
  }

  // Vouchers, applications and allocations by state, and the queue.
  void ExpectObjectCounts(const Samples& m) {
    EXPECT_EQ(m.Get("computevoucher_vouchers", P1State("active")), 3);
    EXPECT_EQ(m.Get("computevoucher_vouchers", P1State("revoked")), 0);
    EXPECT_EQ(m.Get("computevoucher_applications", P1State("pending")), 0);
    EXPECT_EQ(m.Get("computevoucher_allocations", {{"state", "assigned"}}), 1);
    EXPECT_EQ(m.Get("computevoucher_allocations", {{"state", "ended"}}), 0);
    EXPECT_EQ(m.Get("computevoucher_allocation_queue_length"), 0);
    EXPECT_EQ(m.Get("computevoucher_allocation_queue_oldest_seconds"), 0);
    EXPECT_EQ(m.Get("computevoucher_idle_allocations"), 0);
  }

  // The money and GPU time of the accepted record, and the records by
  // result.
  void ExpectUsageFigures(const Samples& m) {
    ExpectMoneyFigures(m);
    EXPECT_EQ(m.Get("computevoucher_usage_records_total",
                    {{"result", "accepted"}, {"reason", ""}}),
              1);
    EXPECT_EQ(m.Get("computevoucher_usage_records_total",
                    {{"result", "duplicate"}, {"reason", ""}}),
              1);
    EXPECT_EQ(m.Get("computevoucher_usage_records_total",
                    {{"result", "rejected"}, {"reason", "gpu_ms"}}),
              1);
  }

  // The money and GPU time of the accepted record.
  void ExpectMoneyFigures(const Samples& m) {
    // 1 GPU-hour of 910B (domestic) on hz-a (PR-000001) at 1200 fen.
    const Labels money = {{"program_id", "P-000001"},
                          {"provider_id", "PR-000001"},
                          {"hardware_class", "domestic"}};
    EXPECT_EQ(m.Get("computevoucher_usage_cost_fen_total", money), 1200);
    EXPECT_EQ(m.Get("computevoucher_subsidy_fen_total", money), subsidy_fen_);
    EXPECT_EQ(
        m.Get("computevoucher_enterprise_subsidy_fen_total",
              {{"program_id", "P-000001"}, {"enterprise_id", "E-000003"}}),
        subsidy_fen_);
    EXPECT_EQ(m.Get("computevoucher_usage_gpu_seconds_total", money), 3600);
  }

  // Clusters and their GPUs, and the writer's figures.
  void ExpectClusterAndWriterFigures(const Samples& m) {
    EXPECT_EQ(m.Get("computevoucher_clusters", {{"state", "approved"}}), 2);
    EXPECT_EQ(m.Get("computevoucher_clusters", {{"state", "disabled"}}), 0);
    // Both agents registered (a heartbeat) two hours ago, past the silence.
    EXPECT_EQ(m.Get("computevoucher_clusters_connected"), 0);
    EXPECT_EQ(
        m.Get("computevoucher_gpus", {{"model", "910B"}, {"state", "used"}}),
        1);
    EXPECT_EQ(
        m.Get("computevoucher_gpus", {{"model", "910B"}, {"state", "free"}}),
        15);
    EXPECT_EQ(
        m.Get("computevoucher_gpus", {{"model", "H100"}, {"state", "free"}}),
        16);

    EXPECT_GT(m.Get("computevoucher_writer_batch_commands_count").value_or(0),
              0);
    EXPECT_GT(m.Get("computevoucher_writer_batch_commands_sum").value_or(0), 0);
    EXPECT_GT(m.Get("computevoucher_writer_commit_seconds_count").value_or(0),
              0);
    EXPECT_EQ(m.Get("computevoucher_writer_failed"), 0);
    EXPECT_TRUE(m.Get("computevoucher_snapshots_total").has_value());
    EXPECT_EQ(m.Get("computevoucher_snapshot_failures_total"), 0);
    EXPECT_TRUE(m.Get("computevoucher_snapshot_last_command").has_value());
  }

  int64_t subsidy_fen_ = 0;
};

TEST_F(MetricsTest, ServesTheFiguresTheApiShows) {
  ASSERT_NO_FATAL_FAILURE(IssueAllocateAndReport());
  const Samples m = ScrapeSamples();
  ExpectRpcFigures(m);
  ExpectProgramFigures(m);
  ExpectObjectCounts(m);
  ExpectUsageFigures(m);
  ExpectClusterAndWriterFigures(m);
}

// Dashboards show names, not ids, by joining on these (value 1).
TEST_F(MetricsTest, InfoSeriesNameEveryProgramEnterpriseProviderAndCluster) {
  const Samples m = ScrapeSamples();
  const pb::CreateProgramRequest program = WorldProgram();
  EXPECT_EQ(
      m.Get("computevoucher_program_info", {{"program_id", "P-000001"},
                                            {"name", program.name()},
                                            {"issuer", program.issuer()}}),
      1);
  const pb::RegisterEnterpriseRequest e2 = WorldEnterprises()[1];
  ASSERT_TRUE(e2.sme());
  EXPECT_EQ(m.Get("computevoucher_enterprise_info",
                  {{"enterprise_id", "E-000002"},
                   {"name", e2.name()},
                   {"credit_code", e2.credit_code()},
                   {"category", e2.category()},
                   {"district", e2.district()},
                   {"sme", "true"}}),
            1);
  const pb::RegisterProviderRequest p1 = WorldProviders()[0];
  EXPECT_EQ(m.Get("computevoucher_provider_info",
                  {{"provider_id", "PR-000001"},
                   {"name", p1.name()},
                   {"credit_code", p1.credit_code()}}),
            1);
  EXPECT_EQ(m.Get("computevoucher_cluster_info", {{"cluster_id", "hz-a"},
                                                  {"provider_id", "PR-000001"},
                                                  {"region", "cn-hangzhou"},
                                                  {"state", "approved"}}),
            1);
}

TEST_F(MetricsTest, RetiredAllocationsStayCounted) {
  ASSERT_NO_FATAL_FAILURE(IssueAllocateAndReport());
  pb::AdminListAllocationsRequest list;
  pb::AdminListAllocationsResponse listed;
  ASSERT_TRUE(
      admin_->ListAllocations(As(auditor_token_).get(), list, &listed).ok());
  ASSERT_EQ(listed.allocations_size(), 1);
  pb::ReleaseAllocationRequest release;
  release.set_request_id(NextRequestId());
  release.set_allocation_id(listed.allocations(0).allocation_id());
  pb::Allocation released;
  ASSERT_TRUE(
      enterprise_->ReleaseAllocation(As(e3_token_).get(), release, &released)
          .ok());
  // The hold goes back after the grace period; 30 days later (the default
  // retention) the allocation is retired.
  clock_.Advance(absl::Seconds(301));
  server_->TickNow();
  clock_.Advance(absl::Hours(30 * 24));
  server_->TickNow();
  pb::ReportUsageRequest late;
  late.set_request_id(NextRequestId());
  const absl::Time start = *FromProto("assigned_at", released.assigned_at());
  *late.add_records() =
      Record(released, 2, start + absl::Hours(1), absl::Minutes(1));
  pb::ReportUsageResponse acks;
  ASSERT_TRUE(agent_->ReportUsage(As(hz_token_).get(), late, &acks).ok());
  ASSERT_THAT(acks.acks(0).reason(), ::testing::HasSubstr("retired"));

  const Samples m = ScrapeSamples();
  EXPECT_EQ(m.Get("computevoucher_allocations", {{"state", "assigned"}}), 0);
  EXPECT_EQ(m.Get("computevoucher_allocations", {{"state", "ended"}}), 1);
  ExpectMoneyFigures(m);
}

TEST_F(MetricsTest, RetiredVouchersStayCounted) {
  const pb::Voucher v =
      Issue("E-000001", 100'00, "P-000001", clock_.Now() + absl::Hours(1));
  // Expired an hour after issue; retired 30 days (the default retention)
  // after that.
  clock_.Advance(absl::Hours(1));
  server_->TickNow();
  clock_.Advance(absl::Hours(30 * 24));
  server_->TickNow();
  pb::GetVoucherRequest get;
  get.set_voucher_id(v.voucher_id());
  pb::Voucher retired;
  ASSERT_TRUE(enterprise_->GetVoucher(As(e1_token_).get(), get, &retired).ok());
  ASSERT_TRUE(retired.has_retired_at());

  const Samples m = ScrapeSamples();
  EXPECT_EQ(m.Get("computevoucher_vouchers", P1State("expired")), 1);
  EXPECT_EQ(m.Get("computevoucher_vouchers", P1State("active")), 0);
  // Retired, it still counts against the cap of its year.
  EXPECT_EQ(m.Get("computevoucher_enterprise_cap_used_fen",
                  {{"program_id", "P-000001"},
                   {"enterprise_id", "E-000001"},
                   {"year", "2025"}}),
            100'00);
}

// Each enterprise's use of its annual cap, and what the program has
// committed on vouchers but not spent, as the vouchers show it.
TEST_F(MetricsTest, CapUsedAndCommitmentsFollowTheVouchers) {
  ASSERT_NO_FATAL_FAILURE(IssueAllocateAndReport());
  const Samples m = ScrapeSamples();
  const Labels p1 = {{"program_id", "P-000001"}};
  EXPECT_EQ(m.Get("computevoucher_program_enterprise_cap_fen", p1),
            WorldProgram().enterprise_cap_fen());
  const Labels e3 = {{"program_id", "P-000001"},
                     {"enterprise_id", "E-000003"},
                     {"year", "2025"}};
  EXPECT_EQ(m.Get("computevoucher_enterprise_cap_used_fen", e3), 30'000'00);
  EXPECT_EQ(m.Get("computevoucher_enterprise_cap_used_fen",
                  With(e3, "enterprise_id", "E-000001")),
            500'000'00);
  EXPECT_FALSE(m.Get("computevoucher_enterprise_cap_used_fen",
                     With(e3, "enterprise_id", "E-000002"))
                   .has_value());

  pb::AdminListVouchersRequest list;
  pb::AdminListVouchersResponse listed;
  ASSERT_TRUE(
      admin_->ListVouchers(As(auditor_token_).get(), list, &listed).ok());
  ASSERT_EQ(listed.vouchers_size(), 3);
  int64_t available = 0;
  for (const pb::Voucher& v : listed.vouchers()) available += v.available_fen();
  const pb::Program program = Program("P-000001");
  ASSERT_GT(program.held_fen(), 0);
  EXPECT_EQ(m.Get("computevoucher_program_available_fen", p1), available);
  EXPECT_EQ(available + program.held_fen() + subsidy_fen_, 530'000'00);
  EXPECT_EQ(m.Get("computevoucher_program_end_timestamp_seconds", p1),
            WorldProgram().valid_until().seconds());
}

// Vouchers that end within 7 and 30 days with money on them, as
// `voucherctl admin report expiring` lists them: active or suspended ones,
// not revoked or expired ones.
TEST_F(MetricsTest, ExpiringVouchersCountWhatIsLeftOnThem) {
  const absl::Time now = clock_.Now();
  Issue("E-000001", 100'00, "P-000001", now + absl::Hours(5 * 24));
  Issue("E-000001", 200'00, "P-000001", now + absl::Hours(20 * 24));
  Issue("E-000001", 400'00, "P-000001", now + absl::Hours(40 * 24));
  const pb::Voucher suspended =
      Issue("E-000003", 800'00, "P-000001", now + absl::Hours(3 * 24));
  const pb::Voucher revoked =
      Issue("E-000003", 1600'00, "P-000001", now + absl::Hours(3 * 24));
  pb::SuspendVoucherRequest suspend;
  suspend.set_request_id(NextRequestId());
  suspend.set_voucher_id(suspended.voucher_id());
  suspend.set_reason("audit");
  pb::Voucher out;
  ASSERT_TRUE(
      admin_->SuspendVoucher(As(admin_token_).get(), suspend, &out).ok());
  pb::RevokeVoucherRequest revoke;
  revoke.set_request_id(NextRequestId());
  revoke.set_voucher_id(revoked.voucher_id());
  revoke.set_reason("fraud");
  ASSERT_TRUE(admin_->RevokeVoucher(As(admin_token_).get(), revoke, &out).ok());
  const Labels in7 = {{"program_id", "P-000001"}, {"within", "7d"}};
  const Labels in30 = With(in7, "within", "30d");
  Samples m = ScrapeSamples();
  EXPECT_EQ(m.Get("computevoucher_vouchers_expiring", in7), 2);
  EXPECT_EQ(m.Get("computevoucher_vouchers_expiring_available_fen", in7),
            900'00);
  EXPECT_EQ(m.Get("computevoucher_vouchers_expiring", in30), 3);
  EXPECT_EQ(m.Get("computevoucher_vouchers_expiring_available_fen", in30),
            1100'00);

  // Six days later the first two have expired.
  clock_.Advance(absl::Hours(6 * 24));
  server_->TickNow();
  m = ScrapeSamples();
  EXPECT_EQ(m.Get("computevoucher_vouchers_expiring", in7), 0);
  EXPECT_EQ(m.Get("computevoucher_vouchers_expiring_available_fen", in7), 0);
  EXPECT_EQ(m.Get("computevoucher_vouchers_expiring", in30), 1);
  EXPECT_EQ(m.Get("computevoucher_vouchers_expiring_available_fen", in30),
            200'00);
}

TEST_F(MetricsTest, PayableAndPaidFollowSettlement) {
  ASSERT_NO_FATAL_FAILURE(IssueAllocateAndReport());
  const Labels pr1 = {{"provider_id", "PR-000001"}};
  const Labels pr2 = {{"provider_id", "PR-000002"}};
  Samples m = ScrapeSamples();
  EXPECT_EQ(m.Get("computevoucher_provider_payable_fen", pr1), subsidy_fen_);
  EXPECT_EQ(m.Get("computevoucher_provider_paid_fen", pr1), 0);
  EXPECT_EQ(m.Get("computevoucher_provider_payable_fen", pr2), 0);
  EXPECT_EQ(m.Get("computevoucher_provider_paid_fen", pr2), 0);

  pb::SettleProviderRequest settle;
  settle.set_request_id(NextRequestId());
  settle.set_provider_id("PR-000001");
  settle.set_amount_fen(100);
  settle.set_reference("bank 2025-0001");
  pb::SettleProviderResponse settled;
  ASSERT_TRUE(
      admin_->SettleProvider(As(admin_token_).get(), settle, &settled).ok());
  m = ScrapeSamples();
  EXPECT_EQ(m.Get("computevoucher_provider_payable_fen", pr1),
            subsidy_fen_ - 100);
  EXPECT_EQ(m.Get("computevoucher_provider_paid_fen", pr1), 100);
}

// What idle allocations cost per hour, from the idle flag their agent
// reports in heartbeats.
TEST_F(MetricsTest, IdleSubsidyIsWhatIdleAllocationsAreCharged) {
  Issue("E-000003", 100'000'00);
  pb::Allocation a;
  ASSERT_TRUE(Allocate(e3_token_, "910B", 2, &a).ok());
  pb::Allocation busy;
  ASSERT_TRUE(Allocate(e3_token_, "910B", 1, &busy).ok());
  const Labels idle = {{"program_id", "P-000001"},
                       {"provider_id", "PR-000001"}};
  EXPECT_EQ(
      ScrapeSamples().Get("computevoucher_idle_subsidy_fen_per_hour", idle), 0);

  auto beat = [&](bool a_idle) {
    pb::HeartbeatRequest r;
    r.set_request_id(NextRequestId());
    for (const pb::Allocation* x : {&a, &busy}) {
      pb::ObservedAllocation* o = r.add_allocations();
      o->set_allocation_id(x->allocation_id());
      o->set_running(true);
      o->set_idle(x == &a && a_idle);
    }
    pb::HeartbeatResponse desired;
    ASSERT_TRUE(agent_->Heartbeat(As(hz_token_).get(), r, &desired).ok());
  };
  beat(true);
  Samples m = ScrapeSamples();
  // 2 GPUs × 1200 fen/GPU-hour × 30% (domestic; E-000003 is no SME).
  EXPECT_EQ(m.Get("computevoucher_idle_subsidy_fen_per_hour", idle), 720);
  EXPECT_EQ(m.Get("computevoucher_idle_allocations"), 1);
  beat(false);
  EXPECT_EQ(
      ScrapeSamples().Get("computevoucher_idle_subsidy_fen_per_hour", idle), 0);
}

TEST_F(MetricsTest, AMalformedBodyIsTheClientsErrorNotTheServers) {
  // Bytes that are no protobuf message (a field 1 of wire type 7), sent
  // raw to Allocate as a scanner would.
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                          grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  const std::string garbage = "\x0f\xff\xff\xff";
  grpc::Slice slice(garbage.data(), garbage.size());
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext c;
  c.AddMetadata("authorization", "Bearer " + e1_token_);
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&c, "/computevoucher.v1.EnterpriseService/Allocate",
                 grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("cannot be parsed"));
  const Samples m = ScrapeSamples();
  const Labels allocate = Rpc("EnterpriseService", "Allocate");
  EXPECT_EQ(m.Get("grpc_server_handled_total",
                  With(allocate, "grpc_code", "INTERNAL"))
                .value_or(0),
            0);
  EXPECT_EQ(m.Get("grpc_server_handled_total",
                  With(allocate, "grpc_code", "INVALID_ARGUMENT")),
            1);
}

TEST_F(MetricsTest, ConnectedClustersFollowHeartbeats) {
  EXPECT_EQ(ScrapeSamples().Get("computevoucher_clusters_connected"), 2);
  clock_.Advance(absl::Seconds(61));
  pb::HeartbeatRequest beat;
  beat.set_request_id(NextRequestId());
  pb::HeartbeatResponse desired;
  ASSERT_TRUE(agent_->Heartbeat(As(sz_token_).get(), beat, &desired).ok());
  EXPECT_EQ(ScrapeSamples().Get("computevoucher_clusters_connected"), 1);
}

TEST_F(MetricsTest, QueueWaitGrowsWithTheClock) {
  Issue("E-000003", 100'000'00);
  pb::Allocation a;
  ASSERT_TRUE(Allocate(e3_token_, "H100", 8, &a).ok());
  ASSERT_TRUE(Allocate(e3_token_, "H100", 8, &a).ok());
  ASSERT_TRUE(Allocate(e3_token_, "H100", 4, &a, /*queue=*/true).ok());
  ASSERT_EQ(a.state(), pb::ALLOCATION_STATE_PENDING);
  clock_.Advance(absl::Seconds(90));

  const Samples m = ScrapeSamples();
  EXPECT_EQ(m.Get("computevoucher_allocation_queue_length"), 1);
  EXPECT_EQ(m.Get("computevoucher_allocation_queue_oldest_seconds"), 90);
  EXPECT_EQ(m.Get("computevoucher_allocations", {{"state", "pending"}}), 1);
  EXPECT_EQ(m.Get("computevoucher_allocations", {{"state", "assigned"}}), 2);
  EXPECT_EQ(
      m.Get("computevoucher_gpus", {{"model", "H100"}, {"state", "used"}}), 16);
  EXPECT_EQ(
      m.Get("computevoucher_gpus", {{"model", "H100"}, {"state", "free"}}), 0);
}

TEST_F(MetricsTest, PromtoolFindsNothingToReport) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  Issue("E-000003", 10'000'00);
  pb::Allocation a;
  ASSERT_TRUE(Allocate(e3_token_, "910B", 2, &a).ok());
  EXPECT_FALSE(Allocate(e3_token_, "none", 1, &a).ok());
  absl::StatusOr<std::string> text = Scrape(server_->metrics_port());
  ASSERT_THAT(text, IsOk());
  const std::string path = absl::StrCat(dir_, "/scrape.txt");
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fputs(text->c_str(), file);
  std::fclose(file);
  FILE* promtool = popen(
      absl::StrCat("promtool check metrics < ", path, " 2>&1").c_str(), "r");
  ASSERT_NE(promtool, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), promtool)) {
    output.append(buffer, n);
  }
  EXPECT_EQ(pclose(promtool), 0) << output;
  EXPECT_EQ(output, "") << *text;
}

TEST(SchedulerMetrics, AnAddressInUseIsAStartUpError) {
  const int taken = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(listen(taken, 1), 0);
  ASSERT_EQ(getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length),
            0);
  const int port = ntohs(address.sin_port);

  TempDir temp;
  ASSERT_NO_FATAL_FAILURE(MakeTempDir("metrics", temp));
  const std::string dir = temp.path();
  pb::SchedulerConfig config;
  config.set_data_dir(dir + "/data");
  config.set_listen_address("127.0.0.1:0");
  config.set_metrics_address(absl::StrCat("127.0.0.1:", port));
  FakeClock clock(absl::FromUnixSeconds(1'740'758'400));
  EXPECT_THAT(scheduler::SchedulerServer::Start(config, clock),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat("metrics_address: cannot listen "
                                              "on 127.0.0.1:",
                                              port))));
  close(taken);
}

TEST(UsageReasonLabel, NamesTheFieldOfTheReason) {
  struct Case {
    pb::UsageResult result;
    std::string reason;
    std::string label;
  };
  const Case cases[] = {
      {pb::USAGE_RESULT_ACCEPTED, "", ""},
      {pb::USAGE_RESULT_DUPLICATE, "", ""},
      {pb::USAGE_RESULT_REJECTED, "gpu_ms: must be 0..10, got 11", "gpu_ms"},
      {pb::USAGE_RESULT_REJECTED, "start: required", "start"},
      {pb::USAGE_RESULT_REJECTED,
       "allocation_id: \"AL-9\" is not an allocation of cluster c",
       "allocation_id"},
      {pb::USAGE_RESULT_RETRY, "sequence: expected 2, got 3", "sequence"},
      {pb::USAGE_RESULT_RETRY, "END: 2025-03-01 is in the future", "end"},
      {pb::USAGE_RESULT_REJECTED, "cluster hz-a: lost", "other"},
      {pb::USAGE_RESULT_REJECTED, "no colon here", "other"},
      {pb::USAGE_RESULT_REJECTED, "", "other"},
  };
  for (const Case& c : cases) {
    pb::UsageAck ack;
    ack.set_result(c.result);
    ack.set_reason(c.reason);
    EXPECT_EQ(api::UsageReasonLabel(ack), c.label) << c.reason;
  }
}

TEST(GrpcCodeName, UsesGrpcsNames) {
  EXPECT_EQ(api::GrpcCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(api::GrpcCodeName(grpc::StatusCode::INVALID_ARGUMENT),
            "INVALID_ARGUMENT");
  EXPECT_EQ(api::GrpcCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED),
            "RESOURCE_EXHAUSTED");
  EXPECT_EQ(api::GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED),
            "UNAUTHENTICATED");
}

}  // namespace
}  // namespace computevoucher::testing
