// What the voucherctl tests share: the real voucherctl binary run as a user
// would, against a real voucher-scheduler (VoucherctlTest), and readers of
// its output.
#ifndef COMPUTEVOUCHER_TESTS_CLIENT_VOUCHERCTL_FIXTURE_H_
#define COMPUTEVOUCHER_TESTS_CLIENT_VOUCHERCTL_FIXTURE_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::testing {

namespace pb = ::computevoucher::v1;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const Result& r);

// The contents of the file at `path`; "" when it cannot be read.
std::string Slurp(const std::string& path);

// `fen` as voucherctl takes and CSV shows amounts: "12.34".
std::string Cny(int64_t fen);

// Splits CSV output without quoted fields into rows of fields.
std::vector<std::vector<std::string>> SimpleCsv(const std::string& text);

// `json` as message M; a test failure when it does not parse.
template <typename M>
M ParseJson(const std::string& json) {
  M message;
  const auto status =
      google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status << "\n" << json;
  return message;
}

// Starts a real voucher-scheduler on a fresh data directory and runs the
// real voucherctl against it.
class VoucherctlTest : public ::testing::Test {
 protected:
  void SetUp() override;

  void TearDown() override { scheduler_.reset(); }

  // Restarts the scheduler on the same data with `extra_args`.
  void Restart(const std::vector<std::string>& extra_args);

  // Runs voucherctl with `args`, an environment of only HOME,
  // XDG_CONFIG_HOME (both in the test's folder) and `env`, and `input` on
  // standard input.
  Result Run(const std::vector<std::string>& args,
             const std::vector<std::string>& env = {},
             const std::string& input = "");

  // Runs voucherctl with `token` against the test's scheduler.
  Result As(const std::string& token, std::vector<std::string> args) {
    return Run(args, {"VOUCHERCTL_ENDPOINT=" + endpoint_,
                      "VOUCHERCTL_TOKEN=" + token});
  }
  Result Admin(std::vector<std::string> args) {
    return As(admin_token_, std::move(args));
  }

  // Writes `text` to a file in the test's folder and returns its path.
  std::string File(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // The standard world through voucherctl itself: program P-000001, two
  // providers (flags), three enterprises (CSV import; the third's name has
  // a comma and quotes), vouchers from a CSV batch (E-000001: 1M and 50万;
  // E-000002: 200k). Returns E-000001's enterprise token.
  std::string BuildWorld();

  // The world and an allocation of E-000001 on hz-a with usage charged to
  // PR-000001; sets `a` and returns the subsidy charged.
  int64_t UseOnce(pb::Allocation& a);

  // Creates a token with `flags`; returns its secret.
  std::string CreateToken(std::vector<std::string> flags);

  // The agent of cluster hz-a, talking to the test's scheduler.
  struct AgentClient {
    std::unique_ptr<pb::AgentService::Stub> stub;
    std::string token;

    template <typename Method, typename Request, typename Response>
    grpc::Status Call(Method method, const Request& request,
                      Response* response) const {
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + token);
      return ((*stub).*method)(&context, request, response);
    }
  };

  // Cluster hz-a (PR-000001, 8 × H100 at `price_fen_per_gpu_hour`)
  // registered through a new agent token and approved by an admin.
  AgentClient ApprovedCluster(int64_t price_fen_per_gpu_hour);

  // A command line voucherctl refuses, and what it must say.
  struct BadInput {
    std::vector<std::string> args;
    std::string message;
  };
  // Each of `cases`, run as the admin, exits 2 before anything is sent, with
  // its message and a pointer to --help on standard error and nothing on
  // standard output.
  void ExpectUsageErrors(const std::vector<BadInput>& cases) {
    for (const BadInput& c : cases) {
      const Result r = Admin(c.args);
      EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(c.args, " ") << "\n" << r;
      EXPECT_THAT(r.err, ::testing::AllOf(::testing::HasSubstr(c.message),
                                          ::testing::HasSubstr("--help")))
          << absl::StrJoin(c.args, " ");
      EXPECT_EQ(r.out, "") << absl::StrJoin(c.args, " ");
    }
  }

  // Steps of an enterprise's redemption, each checking what voucherctl
  // shows (voucherctl_flow_test.cc).

  // Quotes 2 × H100 for half an hour, allocates them (request id alloc-1,
  // running `python train.py --epochs=3`), retries that, and extends the
  // allocation by a quarter of an hour. Sets `a` to the allocation.
  void QuoteAllocateAndExtend(const std::string& enterprise, pb::Allocation& a);
  // `agent` reports 200 GPU-ms on `a`, again while the scheduler answers
  // RETRY; the record must be accepted. Sets `ack` to its acknowledgement.
  void ReportUsage(const AgentClient& agent, const pb::Allocation& a,
                   pb::UsageAck& ack);
  // The usage of allocation `id` as CSV: one record, subsidised `subsidy`
  // (CNY, two decimals).
  void ExpectUsageCsv(const std::string& enterprise, const std::string& id,
                      const std::string& subsidy);
  // The statement of `day`, as JSON and as a table: one line, for `id`.
  void ExpectStatement(const std::string& enterprise, const std::string& day,
                       const std::string& id, int64_t subsidy_fen,
                       const std::string& subsidy);
  // The settlement of `day` as CSV: one line, PR-000001's, of `subsidy`.
  void ExpectSettlementCsv(const std::string& day, const std::string& subsidy);

  // "CV-YYYY" replaced by the prefix the scheduler gave the vouchers.
  std::string WithVoucherYear(const std::string& text) {
    return absl::StrReplaceAll(text, {{"CV-YYYY", voucher_prefix_}});
  }

  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  std::string endpoint_;
  std::string admin_token_;
  std::string voucher_prefix_ = "CV-YYYY";
  std::unique_ptr<ChildProcess> scheduler_;
  int runs_ = 0;
};

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_CLIENT_VOUCHERCTL_FIXTURE_H_
