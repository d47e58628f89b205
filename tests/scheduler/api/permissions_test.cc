// Every RPC × every role, and every ownership rule, through real stubs.
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/api/api_fixture.h"

namespace computevoucher::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Rpc {
  std::string name;
  std::set<pb::Role> allowed;
  std::function<grpc::Status(grpc::ClientContext*)> call;
};

// A call with an empty request (plus a request id for mutations): enough to
// get past authentication and authorization, which come first.
#define CV_READ(stub, Method, Request, Response, ...)                 \
  Rpc {                                                               \
#Method, {__VA_ARGS__}, [this](grpc::ClientContext* c) {            \
      Request r;                                                        \
      Response out;                                                     \
      return stub->Method(c, r, &out);                                  \
    } \
  }
#define CV_WRITE(stub, Method, Request, Response, ...)                \
  Rpc {                                                               \
#Method, {__VA_ARGS__}, [this](grpc::ClientContext* c) {            \
      Request r;                                                        \
      r.set_request_id(NextRequestId());                                \
      Response out;                                                     \
      return stub->Method(c, r, &out);                                  \
    } \
  }

class PermissionsTest : public ApiTest {
 protected:
  std::vector<Rpc> AllRpcs() {
    constexpr pb::Role A = pb::ROLE_ADMIN, U = pb::ROLE_AUDITOR,
                       E = pb::ROLE_ENTERPRISE, G = pb::ROLE_AGENT;
    return {
        CV_WRITE(admin_, CreateProgram, pb::CreateProgramRequest, pb::Program,
                 A),
        CV_READ(admin_, ListPrograms, pb::ListProgramsRequest,
                pb::ListProgramsResponse, A, U),
        CV_READ(admin_, GetProgram, pb::GetProgramRequest, pb::Program, A, U),
        CV_WRITE(admin_, RegisterEnterprise, pb::RegisterEnterpriseRequest,
                 pb::Enterprise, A),
        CV_WRITE(admin_, SetRelatedProviders, pb::SetRelatedProvidersRequest,
                 pb::Enterprise, A),
        CV_READ(admin_, ListEnterprises, pb::ListEnterprisesRequest,
                pb::ListEnterprisesResponse, A, U),
        CV_READ(admin_, GetEnterprise, pb::GetEnterpriseRequest, pb::Enterprise,
                A, U),
        CV_WRITE(admin_, RegisterProvider, pb::RegisterProviderRequest,
                 pb::Provider, A),
        CV_READ(admin_, ListProviders, pb::ListProvidersRequest,
                pb::ListProvidersResponse, A, U),
        CV_READ(admin_, GetProvider, pb::GetProviderRequest, pb::Provider, A,
                U),
        CV_READ(admin_, GetApplication, pb::GetApplicationRequest,
                pb::Application, A, U),
        CV_READ(admin_, ListClusters, pb::ListClustersRequest,
                pb::ListClustersResponse, A, U),
        CV_WRITE(admin_, SetClusterState, pb::SetClusterStateRequest,
                 pb::Cluster, A),
        CV_READ(admin_, ListApplications, pb::ListApplicationsRequest,
                pb::ListApplicationsResponse, A, U),
        CV_WRITE(admin_, ApproveApplication, pb::ApproveApplicationRequest,
                 pb::Application, A),
        CV_WRITE(admin_, RejectApplication, pb::RejectApplicationRequest,
                 pb::Application, A),
        CV_WRITE(admin_, IssueVoucher, pb::IssueVoucherRequest, pb::Voucher, A),
        CV_WRITE(admin_, BatchIssueVouchers, pb::BatchIssueVouchersRequest,
                 pb::BatchIssueVouchersResponse, A),
        CV_WRITE(admin_, SuspendVoucher, pb::SuspendVoucherRequest, pb::Voucher,
                 A),
        CV_WRITE(admin_, ResumeVoucher, pb::ResumeVoucherRequest, pb::Voucher,
                 A),
        CV_WRITE(admin_, RevokeVoucher, pb::RevokeVoucherRequest, pb::Voucher,
                 A),
        CV_WRITE(admin_, AdjustVoucher, pb::AdjustVoucherRequest, pb::Voucher,
                 A),
        CV_READ(admin_, ListVouchers, pb::AdminListVouchersRequest,
                pb::AdminListVouchersResponse, A, U),
        CV_READ(admin_, ListAllocations, pb::AdminListAllocationsRequest,
                pb::AdminListAllocationsResponse, A, U),
        CV_WRITE(admin_, CreateToken, pb::CreateTokenRequest,
                 pb::CreateTokenResponse, A),
        CV_WRITE(admin_, RevokeToken, pb::RevokeTokenRequest, pb::Token, A),
        CV_READ(admin_, ListTokens, pb::ListTokensRequest,
                pb::ListTokensResponse, A),
        CV_READ(admin_, GetSettlement, pb::GetSettlementRequest, pb::Settlement,
                A, U),
        CV_WRITE(admin_, SettleProvider, pb::SettleProviderRequest,
                 pb::SettleProviderResponse, A),
        CV_READ(admin_, VerifyJournal, pb::VerifyJournalRequest,
                pb::VerifyJournalResponse, A, U),
        CV_READ(admin_, ListJournal, pb::ListJournalRequest,
                pb::ListJournalResponse, A, U),
        CV_READ(admin_, GetUsageReport, pb::UsageReportRequest, pb::UsageReport,
                A, U),
        CV_READ(admin_, GetCapUse, pb::GetCapUseRequest, pb::CapUse, A, U),
        CV_READ(admin_, ListExpiringVouchers, pb::ListExpiringVouchersRequest,
                pb::ListExpiringVouchersResponse, A, U),
        CV_READ(admin_, ListAudit, pb::ListAuditRequest, pb::ListAuditResponse,
                A, U),
        CV_WRITE(enterprise_, Apply, pb::ApplyRequest, pb::Application, E),
        CV_READ(enterprise_, ListApplications, pb::ListMyApplicationsRequest,
                pb::ListMyApplicationsResponse, E, A, U),
        CV_READ(enterprise_, ListVouchers, pb::ListVouchersRequest,
                pb::ListVouchersResponse, E, A, U),
        CV_READ(enterprise_, GetVoucher, pb::GetVoucherRequest, pb::Voucher, E,
                A, U),
        CV_READ(enterprise_, GetBalance, pb::GetBalanceRequest, pb::Balance, E,
                A, U),
        CV_READ(enterprise_, Quote, pb::QuoteRequest, pb::QuoteResponse, E),
        CV_WRITE(enterprise_, Allocate, pb::AllocateRequest, pb::Allocation, E),
        CV_READ(enterprise_, GetAllocation, pb::GetAllocationRequest,
                pb::Allocation, E, A, U),
        CV_READ(enterprise_, ListAllocations, pb::ListAllocationsRequest,
                pb::ListAllocationsResponse, E, A, U),
        CV_WRITE(enterprise_, ReleaseAllocation, pb::ReleaseAllocationRequest,
                 pb::Allocation, E),
        CV_WRITE(enterprise_, ExtendAllocation, pb::ExtendAllocationRequest,
                 pb::Allocation, E),
        CV_READ(enterprise_, ListUsage, pb::ListUsageRequest,
                pb::ListUsageResponse, E, A, U),
        CV_READ(enterprise_, GetStatement, pb::GetStatementRequest,
                pb::Statement, E, A, U),
        CV_READ(enterprise_, WhoAmI, pb::WhoAmIRequest, pb::Token, E, A, U, G),
        CV_WRITE(agent_, Register, pb::RegisterRequest, pb::RegisterResponse,
                 G),
        CV_WRITE(agent_, Heartbeat, pb::HeartbeatRequest, pb::HeartbeatResponse,
                 G),
        CV_WRITE(agent_, ReportUsage, pb::ReportUsageRequest,
                 pb::ReportUsageResponse, G),
    };
  }
};

TEST_F(PermissionsTest, EveryRpcChecksTheRole) {
  BuildWorld();
  const std::string revoked = CreateToken(pb::ROLE_ADMIN);
  {
    pb::ListTokensRequest list;
    pb::ListTokensResponse tokens;
    ASSERT_TRUE(admin_->ListTokens(As(admin_token_).get(), list, &tokens).ok());
    pb::RevokeTokenRequest r;
    r.set_request_id(NextRequestId());
    r.set_token_id(tokens.tokens(tokens.tokens_size() - 1).token_id());
    pb::Token out;
    ASSERT_TRUE(admin_->RevokeToken(As(admin_token_).get(), r, &out).ok());
  }
  const struct {
    std::string name;
    std::string token;
    pb::Role role;
  } callers[] = {
      {"no token", "", pb::ROLE_UNSPECIFIED},
      {"unknown token", "cvt_not-a-token", pb::ROLE_UNSPECIFIED},
      {"revoked token", revoked, pb::ROLE_UNSPECIFIED},
      {"admin", admin_token_, pb::ROLE_ADMIN},
      {"auditor", auditor_token_, pb::ROLE_AUDITOR},
      {"enterprise", e1_token_, pb::ROLE_ENTERPRISE},
      {"agent", hz_token_, pb::ROLE_AGENT},
  };
  const std::vector<Rpc> rpcs = AllRpcs();
  ASSERT_EQ(rpcs.size(), 35u + 14u + 3u);
  for (const Rpc& rpc : rpcs) {
    for (const auto& caller : callers) {
      SCOPED_TRACE(absl::StrCat(rpc.name, " as ", caller.name));
      const grpc::Status status = rpc.call(As(caller.token).get());
      if (caller.role == pb::ROLE_UNSPECIFIED) {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << status.error_message();
      } else if (rpc.allowed.count(caller.role) > 0) {
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << status.error_message();
        EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << status.error_message();
      } else {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << status.error_message();
        EXPECT_EQ(status.error_message(),
                  "permission denied for this token's role");
      }
    }
  }
}

// The objects of the ownership tests: E-000001's voucher and allocation, and
// E-000003's.
class OwnershipTest : public PermissionsTest {
 protected:
  void SetUp() override {
    PermissionsTest::SetUp();
    BuildWorld();
    mine_ = Issue("E-000001", 10'000'00);
    theirs_ = Issue("E-000003", 10'000'00);
    AllocateAs(e1_token_);
    other_ = AllocateAs(e3_token_);
  }

  pb::Allocation AllocateAs(const std::string& token) {
    pb::AllocateRequest r;
    r.set_request_id(NextRequestId());
    r.mutable_resources()->set_gpu_model("H100");
    r.mutable_resources()->set_gpu_count(1);
    r.mutable_resources()->set_max_duration_s(3600);
    pb::Allocation a;
    grpc::Status s = enterprise_->Allocate(As(token).get(), r, &a);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return a;
  }

  // Another enterprise's object is answered exactly as a missing one: the
  // same code, and the same message but for the id.
  void ExpectAnsweredAsMissing(
      const std::function<grpc::Status(const std::string&)>& call,
      const std::string& theirs_id, const std::string& missing_id,
      const std::string& what) {
    const grpc::Status theirs_status = call(theirs_id);
    const grpc::Status missing_status = call(missing_id);
    EXPECT_EQ(theirs_status.error_code(), grpc::StatusCode::NOT_FOUND)
        << what << ": " << theirs_status.error_message();
    EXPECT_EQ(missing_status.error_code(), theirs_status.error_code()) << what;
    std::string as_missing = theirs_status.error_message();
    const size_t at = as_missing.find(theirs_id);
    if (at != std::string::npos) {
      as_missing.replace(at, theirs_id.size(), missing_id);
    }
    EXPECT_EQ(as_missing, missing_status.error_message()) << what;
    EXPECT_THAT(theirs_status.error_message(), Not(HasSubstr("E-000003")))
        << what;
  }

  const std::string no_voucher_ = "CV-2025-999999";
  const std::string no_allocation_ = "AL-99999999";
  pb::Voucher mine_;
  pb::Voucher theirs_;
  pb::Allocation other_;  // E-000003's
};

TEST_F(OwnershipTest, EnterprisesSeeAndSpendTheirOwnVouchersOnly) {
  ExpectAnsweredAsMissing(
      [&](const std::string& id) {
        pb::GetVoucherRequest r;
        r.set_voucher_id(id);
        pb::Voucher out;
        return enterprise_->GetVoucher(As(e1_token_).get(), r, &out);
      },
      theirs_.voucher_id(), no_voucher_, "GetVoucher");
  {
    pb::GetVoucherRequest r;
    r.set_voucher_id(mine_.voucher_id());
    pb::Voucher out;
    EXPECT_TRUE(enterprise_->GetVoucher(As(e1_token_).get(), r, &out).ok());
  }
  ExpectAnsweredAsMissing(
      [&](const std::string& id) {
        pb::AllocateRequest r;
        r.set_request_id(NextRequestId());
        r.mutable_resources()->set_gpu_model("H100");
        r.mutable_resources()->set_gpu_count(1);
        r.mutable_resources()->set_max_duration_s(3600);
        r.mutable_resources()->set_voucher_id(id);
        pb::Allocation out;
        return enterprise_->Allocate(As(e1_token_).get(), r, &out);
      },
      theirs_.voucher_id(), no_voucher_, "Allocate");
  // Lists show one's own only.
  pb::ListVouchersRequest list;
  pb::ListVouchersResponse vouchers;
  ASSERT_TRUE(
      enterprise_->ListVouchers(As(e1_token_).get(), list, &vouchers).ok());
  ASSERT_EQ(vouchers.vouchers_size(), 1);
  EXPECT_EQ(vouchers.vouchers(0).voucher_id(), mine_.voucher_id());
}

// Admins and auditors read any enterprise's balance, vouchers,
// applications, allocations, usage and statement by naming it, and any
// voucher or allocation by id; an enterprise token naming another is
// refused.
TEST_F(OwnershipTest, AdminsAndAuditorsReadAnyEnterprise) {
  for (const std::string* token : {&admin_token_, &auditor_token_}) {
    SCOPED_TRACE(token == &admin_token_ ? "admin" : "auditor");
    pb::GetBalanceRequest balance;
    balance.set_enterprise_id("E-000003");
    pb::Balance b;
    grpc::Status s = enterprise_->GetBalance(As(*token).get(), balance, &b);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(b.enterprise_id(), "E-000003");
    EXPECT_EQ(b.held_fen(), other_.held_fen());
    pb::ListVouchersRequest vouchers;
    vouchers.set_enterprise_id("E-000003");
    pb::ListVouchersResponse v;
    ASSERT_TRUE(enterprise_->ListVouchers(As(*token).get(), vouchers, &v).ok());
    ASSERT_EQ(v.vouchers_size(), 1);
    EXPECT_EQ(v.vouchers(0).voucher_id(), theirs_.voucher_id());
    pb::ListAllocationsRequest allocations;
    allocations.set_enterprise_id("E-000003");
    pb::ListAllocationsResponse a;
    ASSERT_TRUE(
        enterprise_->ListAllocations(As(*token).get(), allocations, &a).ok());
    ASSERT_EQ(a.allocations_size(), 1);
    EXPECT_EQ(a.allocations(0).allocation_id(), other_.allocation_id());
    pb::GetAllocationRequest one;
    one.set_allocation_id(other_.allocation_id());
    pb::Allocation got;
    EXPECT_TRUE(enterprise_->GetAllocation(As(*token).get(), one, &got).ok());
    pb::GetVoucherRequest voucher;
    voucher.set_voucher_id(theirs_.voucher_id());
    pb::Voucher vv;
    EXPECT_TRUE(enterprise_->GetVoucher(As(*token).get(), voucher, &vv).ok());
    pb::ListUsageRequest usage;
    usage.set_enterprise_id("E-000003");
    pb::ListUsageResponse u;
    EXPECT_TRUE(enterprise_->ListUsage(As(*token).get(), usage, &u).ok());
    pb::GetStatementRequest statement;
    statement.set_enterprise_id("E-000003");
    *statement.mutable_period_start() = ToProto(clock_.Now() - absl::Hours(1));
    *statement.mutable_period_end() = ToProto(clock_.Now() + absl::Hours(1));
    pb::Statement st;
    EXPECT_TRUE(
        enterprise_->GetStatement(As(*token).get(), statement, &st).ok());
    pb::ListMyApplicationsRequest applications;
    applications.set_enterprise_id("E-000003");
    pb::ListMyApplicationsResponse ap;
    EXPECT_TRUE(
        enterprise_->ListApplications(As(*token).get(), applications, &ap)
            .ok());

    // Naming none, a malformed one or an unknown one.
    balance.clear_enterprise_id();
    s = enterprise_->GetBalance(As(*token).get(), balance, &b);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("enterprise_id: required"));
    balance.set_enterprise_id(std::string(129, 'E'));
    EXPECT_EQ(
        enterprise_->GetBalance(As(*token).get(), balance, &b).error_code(),
        grpc::StatusCode::INVALID_ARGUMENT);
    usage.set_enterprise_id("E-000099");
    s = enterprise_->ListUsage(As(*token).get(), usage, &u);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(s.error_message(), HasSubstr("E-000099"));
  }
}

// An enterprise names itself or nobody; naming another is refused.
TEST_F(OwnershipTest, AnEnterpriseReadsOnlyItsOwn) {
  pb::GetBalanceRequest own;
  own.set_enterprise_id("E-000001");
  pb::Balance b;
  EXPECT_TRUE(enterprise_->GetBalance(As(e1_token_).get(), own, &b).ok());
  // Every read, for another enterprise that exists and one that does not:
  // refused alike, so that nothing tells whether it exists.
  const std::vector<
      std::pair<std::string, std::function<grpc::Status(const std::string&)>>>
      reads = {
          {"GetBalance",
           [&](const std::string& id) {
             pb::GetBalanceRequest r;
             r.set_enterprise_id(id);
             pb::Balance out;
             return enterprise_->GetBalance(As(e1_token_).get(), r, &out);
           }},
          {"ListVouchers",
           [&](const std::string& id) {
             pb::ListVouchersRequest r;
             r.set_enterprise_id(id);
             pb::ListVouchersResponse out;
             return enterprise_->ListVouchers(As(e1_token_).get(), r, &out);
           }},
          {"ListApplications",
           [&](const std::string& id) {
             pb::ListMyApplicationsRequest r;
             r.set_enterprise_id(id);
             pb::ListMyApplicationsResponse out;
             return enterprise_->ListApplications(As(e1_token_).get(), r, &out);
           }},
          {"ListAllocations",
           [&](const std::string& id) {
             pb::ListAllocationsRequest r;
             r.set_enterprise_id(id);
             pb::ListAllocationsResponse out;
             return enterprise_->ListAllocations(As(e1_token_).get(), r, &out);
           }},
          {"ListUsage",
           [&](const std::string& id) {
             pb::ListUsageRequest r;
             r.set_enterprise_id(id);
             pb::ListUsageResponse out;
             return enterprise_->ListUsage(As(e1_token_).get(), r, &out);
           }},
          {"GetStatement",
           [&](const std::string& id) {
             pb::GetStatementRequest r;
             r.set_enterprise_id(id);
             *r.mutable_period_start() = ToProto(clock_.Now());
             *r.mutable_period_end() = ToProto(clock_.Now() + absl::Hours(1));
             pb::Statement out;
             return enterprise_->GetStatement(As(e1_token_).get(), r, &out);
           }},
      };
  for (const auto& [name, read] : reads) {
    SCOPED_TRACE(name);
    const grpc::Status existing = read("E-000003");
    const grpc::Status missing = read("E-000099");
    EXPECT_EQ(existing.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(existing.error_message(),
                HasSubstr("an enterprise token reads only its own"));
    EXPECT_EQ(missing.error_code(), existing.error_code());
    EXPECT_EQ(absl::StrReplaceAll(missing.error_message(),
                                  {{"E-000099", "E-000003"}}),
              existing.error_message());
    EXPECT_TRUE(read("E-000001").ok());
  }
}

TEST_F(OwnershipTest, EnterprisesActOnTheirOwnAllocationsOnly) {
  ExpectAnsweredAsMissing(
      [&](const std::string& id) {
        pb::GetAllocationRequest r;
        r.set_allocation_id(id);
        pb::Allocation out;
        return enterprise_->GetAllocation(As(e1_token_).get(), r, &out);
      },
      other_.allocation_id(), no_allocation_, "GetAllocation");
  ExpectAnsweredAsMissing(
      [&](const std::string& id) {
        pb::ReleaseAllocationRequest r;
        r.set_request_id(NextRequestId());
        r.set_allocation_id(id);
        pb::Allocation out;
        return enterprise_->ReleaseAllocation(As(e1_token_).get(), r, &out);
      },
      other_.allocation_id(), no_allocation_, "Release");
  ExpectAnsweredAsMissing(
      [&](const std::string& id) {
        pb::ExtendAllocationRequest r;
        r.set_request_id(NextRequestId());
        r.set_allocation_id(id);
        r.set_extra_duration_s(600);
        pb::Allocation out;
        return enterprise_->ExtendAllocation(As(e1_token_).get(), r, &out);
      },
      other_.allocation_id(), no_allocation_, "Extend");
  ExpectAnsweredAsMissing(
      [&](const std::string& id) {
        pb::ListUsageRequest r;
        r.set_allocation_id(id);
        pb::ListUsageResponse out;
        return enterprise_->ListUsage(As(e1_token_).get(), r, &out);
      },
      other_.allocation_id(), no_allocation_, "ListUsage");
  // Lists show one's own only.
  pb::ListAllocationsRequest list_allocations;
  pb::ListAllocationsResponse allocations;
  ASSERT_TRUE(
      enterprise_
          ->ListAllocations(As(e1_token_).get(), list_allocations, &allocations)
          .ok());
  ASSERT_EQ(allocations.allocations_size(), 1);
  EXPECT_EQ(allocations.allocations(0).enterprise_id(), "E-000001");
}

TEST_F(PermissionsTest, AgentsReportOnlyForTheirOwnCluster) {
  BuildWorld();
  Issue("E-000003", 10'000'00);
  pb::AllocateRequest r;
  r.set_request_id(NextRequestId());
  r.mutable_resources()->set_gpu_model("910B");  // only hz-a has it
  r.mutable_resources()->set_gpu_count(2);
  r.mutable_resources()->set_max_duration_s(3600);
  pb::Allocation a;
  ASSERT_TRUE(enterprise_->Allocate(As(e3_token_).get(), r, &a).ok());
  ASSERT_EQ(a.cluster_id(), "hz-a");
  const absl::Time start = *FromProto("assigned_at", a.assigned_at());
  clock_.Advance(absl::Minutes(10));

  pb::ReportUsageRequest usage;
  usage.set_request_id(NextRequestId());
  pb::UsageRecord* u = usage.add_records();
  u->set_allocation_id(a.allocation_id());
  u->set_sequence(1);
  *u->mutable_start() = ToProto(start);
  *u->mutable_end() = ToProto(start + absl::Minutes(10));
  u->set_gpu_ms(1'200'000);
  pb::ReportUsageResponse acks;
  ASSERT_TRUE(agent_->ReportUsage(As(sz_token_).get(), usage, &acks).ok());
  EXPECT_EQ(acks.acks(0).result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(acks.acks(0).reason(), Not(HasSubstr("hz-a")));

  // Another cluster's agent cannot end it by claiming it exited either.
  pb::HeartbeatRequest beat;
  beat.set_request_id(NextRequestId());
  pb::ObservedAllocation* o = beat.add_allocations();
  o->set_allocation_id(a.allocation_id());
  o->set_exited(true);
  pb::HeartbeatResponse desired;
  ASSERT_TRUE(agent_->Heartbeat(As(sz_token_).get(), beat, &desired).ok());
  EXPECT_EQ(desired.allocations_size(), 0);
  pb::GetAllocationRequest get;
  get.set_allocation_id(a.allocation_id());
  pb::Allocation now;
  ASSERT_TRUE(enterprise_->GetAllocation(As(e3_token_).get(), get, &now).ok());
  EXPECT_EQ(now.state(), pb::ALLOCATION_STATE_ASSIGNED);

  // Its own agent is charged for it.
  ASSERT_TRUE(agent_->ReportUsage(As(hz_token_).get(), usage, &acks).ok());
  EXPECT_EQ(acks.acks(0).result(), pb::USAGE_RESULT_ACCEPTED);
  EXPECT_EQ(acks.acks(0).subsidy_fen(), 120);  // 2 × 10 min × 12.00/h × 30%
}

TEST_F(PermissionsTest, TheBearerSchemeIsCaseInsensitive) {
  BuildWorld();
  // RFC 6750 (and RFC 7235): the scheme name is case-insensitive.
  for (const std::string scheme :
       {"Bearer ", "bearer ", "BEARER ", "bEaReR  "}) {
    grpc::ClientContext c;
    c.AddMetadata("authorization", scheme + admin_token_);
    pb::ListProgramsRequest r;
    pb::ListProgramsResponse out;
    const grpc::Status s = admin_->ListPrograms(&c, r, &out);
    EXPECT_TRUE(s.ok()) << "\"" << scheme << "\": " << s.error_message();
  }
  for (const std::string& value : std::vector<std::string>{
           "Basic " + admin_token_, admin_token_, "Bearer", "Bearertoken"}) {
    grpc::ClientContext c;
    c.AddMetadata("authorization", value);
    pb::ListProgramsRequest r;
    pb::ListProgramsResponse out;
    EXPECT_EQ(admin_->ListPrograms(&c, r, &out).error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << value;
  }
}

TEST_F(PermissionsTest, ListJournalRefusesANegativeStart) {
  BuildWorld();
  for (const int64_t from :
       {std::numeric_limits<int64_t>::min(), int64_t{-1}}) {
    pb::ListJournalRequest r;
    r.set_from_sequence(from);
    pb::ListJournalResponse out;
    const grpc::Status s =
        admin_->ListJournal(As(auditor_token_).get(), r, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << from;
    EXPECT_THAT(s.error_message(), HasSubstr("from_sequence: must be 0.."))
        << from;
  }
  pb::ListJournalRequest r;
  r.set_from_sequence(1);
  pb::ListJournalResponse out;
  ASSERT_TRUE(admin_->ListJournal(As(auditor_token_).get(), r, &out).ok());
  ASSERT_GT(out.entries_size(), 0);
  EXPECT_EQ(out.entries(0).sequence(), 1);
}

TEST_F(PermissionsTest, AuditorsReadButNeverWrite) {
  BuildWorld();
  pb::IssueVoucherRequest r;
  r.set_request_id(NextRequestId());
  r.set_program_id("P-000001");
  r.set_enterprise_id("E-000001");
  r.set_face_value_fen(100);
  pb::Voucher v;
  const grpc::Status s = admin_->IssueVoucher(As(auditor_token_).get(), r, &v);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  pb::AdminListVouchersRequest list;
  pb::AdminListVouchersResponse vouchers;
  ASSERT_TRUE(
      admin_->ListVouchers(As(auditor_token_).get(), list, &vouchers).ok());
  EXPECT_EQ(vouchers.vouchers_size(), 0);
  pb::VerifyJournalRequest verify;
  pb::VerifyJournalResponse report;
  ASSERT_TRUE(
      admin_->VerifyJournal(As(auditor_token_).get(), verify, &report).ok());
  EXPECT_TRUE(report.ok());
  EXPECT_GT(report.entries(), 0);
}

// Tokens (issue 16): one past its expiry is refused like a revoked one;
// the leader's tick records a token's use at most once an hour; a
// revocation records when and by whom.
TEST_F(PermissionsTest, TokensExpireAndRecordTheirUse) {
  BuildWorld();
  pb::CreateTokenRequest r;
  r.set_request_id(NextRequestId());
  r.set_role(pb::ROLE_AUDITOR);
  r.set_description("visiting auditor");
  *r.mutable_expires_at() = ToProto(clock_.Now() + absl::Hours(5));
  pb::CreateTokenResponse created;
  ASSERT_TRUE(admin_->CreateToken(As(admin_token_).get(), r, &created).ok());
  auto whoami = [&](const std::string& token, pb::Token* out) {
    return enterprise_->WhoAmI(As(token).get(), pb::WhoAmIRequest(), out);
  };
  pb::Token me;
  ASSERT_TRUE(whoami(created.secret(), &me).ok());
  EXPECT_EQ(me.token_id(), created.token().token_id());
  EXPECT_EQ(me.description(), "visiting auditor");
  EXPECT_FALSE(me.has_last_used_at());

  // The tick records the use, with the time of the call.
  const absl::Time used_at = clock_.Now();
  clock_.Advance(absl::Seconds(5));
  server_->TickNow();
  ASSERT_TRUE(whoami(created.secret(), &me).ok());
  EXPECT_EQ(me.last_used_at().seconds(), absl::ToUnixSeconds(used_at));
  // Within the hour, a use is not recorded again.
  clock_.Advance(absl::Minutes(50));
  server_->TickNow();
  ASSERT_TRUE(whoami(created.secret(), &me).ok());
  EXPECT_EQ(me.last_used_at().seconds(), absl::ToUnixSeconds(used_at));
  clock_.Advance(absl::Minutes(20));
  ASSERT_TRUE(whoami(created.secret(), &me).ok());
  const absl::Time later = clock_.Now();
  server_->TickNow();
  ASSERT_TRUE(whoami(created.secret(), &me).ok());
  EXPECT_EQ(me.last_used_at().seconds(), absl::ToUnixSeconds(later));

  // Past its expiry: refused, saying so.
  clock_.Advance(absl::Hours(4));
  const grpc::Status expired = whoami(created.secret(), &me);
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(expired.error_message(), HasSubstr("expired at"));
  // An expiry not in the future is refused.
  r.set_request_id(NextRequestId());
  *r.mutable_expires_at() = ToProto(clock_.Now());
  const grpc::Status past =
      admin_->CreateToken(As(admin_token_).get(), r, &created);
  EXPECT_EQ(past.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(past.error_message(), HasSubstr("expires_at"));

  // A revocation says when and by which token.
  pb::Token admin;
  ASSERT_TRUE(whoami(admin_token_, &admin).ok());
  pb::RevokeTokenRequest revoke;
  revoke.set_request_id(NextRequestId());
  revoke.set_token_id(me.token_id());
  pb::Token revoked;
  ASSERT_TRUE(
      admin_->RevokeToken(As(admin_token_).get(), revoke, &revoked).ok());
  EXPECT_TRUE(revoked.revoked());
  EXPECT_EQ(revoked.revoked_at().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_EQ(revoked.revoked_by(), admin.token_id());
}

}  // namespace
}  // namespace computevoucher::testing
