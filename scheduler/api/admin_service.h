// AdminService (proto/computevoucher/v1/admin.proto): the program office
// (role admin) and auditors (role auditor, reads only).
#ifndef COMPUTEVOUCHER_SCHEDULER_API_ADMIN_SERVICE_H_
#define COMPUTEVOUCHER_SCHEDULER_API_ADMIN_SERVICE_H_

#include "computevoucher/v1/admin.grpc.pb.h"
#include "scheduler/api/service_base.h"

namespace computevoucher::api {

class AdminServiceImpl final : public pb::AdminService::Service,
                               private ServiceBase {
 public:
  explicit AdminServiceImpl(ServiceContext& context) : ServiceBase(context) {}

  using ServerContext = grpc::ServerContext;
  using Status = grpc::Status;

  Status CreateProgram(ServerContext* c, const pb::CreateProgramRequest* r,
                       pb::Program* out) override;
  Status ListPrograms(ServerContext* c, const pb::ListProgramsRequest* r,
                      pb::ListProgramsResponse* out) override;
  Status GetProgram(ServerContext* c, const pb::GetProgramRequest* r,
                    pb::Program* out) override;
  Status RegisterEnterprise(ServerContext* c,
                            const pb::RegisterEnterpriseRequest* r,
                            pb::Enterprise* out) override;
  Status SetRelatedProviders(ServerContext* c,
                             const pb::SetRelatedProvidersRequest* r,
                             pb::Enterprise* out) override;
  Status ListEnterprises(ServerContext* c, const pb::ListEnterprisesRequest* r,
                         pb::ListEnterprisesResponse* out) override;
  Status GetEnterprise(ServerContext* c, const pb::GetEnterpriseRequest* r,
                       pb::Enterprise* out) override;
  Status RegisterProvider(ServerContext* c,
                          const pb::RegisterProviderRequest* r,
                          pb::Provider* out) override;
  Status ListProviders(ServerContext* c, const pb::ListProvidersRequest* r,
                       pb::ListProvidersResponse* out) override;
  Status GetProvider(ServerContext* c, const pb::GetProviderRequest* r,
                     pb::Provider* out) override;
  Status GetApplication(ServerContext* c, const pb::GetApplicationRequest* r,
                        pb::Application* out) override;
  Status ListClusters(ServerContext* c, const pb::ListClustersRequest* r,
                      pb::ListClustersResponse* out) override;
  Status SetClusterState(ServerContext* c, const pb::SetClusterStateRequest* r,
                         pb::Cluster* out) override;
  Status ListApplications(ServerContext* c,
                          const pb::ListApplicationsRequest* r,
                          pb::ListApplicationsResponse* out) override;
  Status ApproveApplication(ServerContext* c,
                            const pb::ApproveApplicationRequest* r,
                            pb::Application* out) override;
  Status RejectApplication(ServerContext* c,
                           const pb::RejectApplicationRequest* r,
                           pb::Application* out) override;
  Status IssueVoucher(ServerContext* c, const pb::IssueVoucherRequest* r,
                      pb::Voucher* out) override;
  Status BatchIssueVouchers(ServerContext* c,
                            const pb::BatchIssueVouchersRequest* r,
                            pb::BatchIssueVouchersResponse* out) override;
  Status SuspendVoucher(ServerContext* c, const pb::SuspendVoucherRequest* r,
                        pb::Voucher* out) override;
  Status ResumeVoucher(ServerContext* c, const pb::ResumeVoucherRequest* r,
                       pb::Voucher* out) override;
  Status RevokeVoucher(ServerContext* c, const pb::RevokeVoucherRequest* r,
                       pb::Voucher* out) override;
  Status AdjustVoucher(ServerContext* c, const pb::AdjustVoucherRequest* r,
                       pb::Voucher* out) override;
  Status ListVouchers(ServerContext* c, const pb::AdminListVouchersRequest* r,
                      pb::AdminListVouchersResponse* out) override;
  Status ListAllocations(ServerContext* c,
                         const pb::AdminListAllocationsRequest* r,
                         pb::AdminListAllocationsResponse* out) override;
  Status CreateToken(ServerContext* c, const pb::CreateTokenRequest* r,
                     pb::CreateTokenResponse* out) override;
  Status RevokeToken(ServerContext* c, const pb::RevokeTokenRequest* r,
                     pb::Token* out) override;
  Status ListTokens(ServerContext* c, const pb::ListTokensRequest* r,
                    pb::ListTokensResponse* out) override;
  Status GetSettlement(ServerContext* c, const pb::GetSettlementRequest* r,
                       pb::Settlement* out) override;
  Status SettleProvider(ServerContext* c, const pb::SettleProviderRequest* r,
                        pb::SettleProviderResponse* out) override;
  Status VerifyJournal(ServerContext* c, const pb::VerifyJournalRequest* r,
                       pb::VerifyJournalResponse* out) override;
  Status ListJournal(ServerContext* c, const pb::ListJournalRequest* r,
                     pb::ListJournalResponse* out) override;
  Status GetUsageReport(ServerContext* c, const pb::UsageReportRequest* r,
                        pb::UsageReport* out) override;
  Status GetCapUse(ServerContext* c, const pb::GetCapUseRequest* r,
                   pb::CapUse* out) override;
  Status ListExpiringVouchers(ServerContext* c,
                              const pb::ListExpiringVouchersRequest* r,
                              pb::ListExpiringVouchersResponse* out) override;
  Status ListAudit(ServerContext* c, const pb::ListAuditRequest* r,
                   pb::ListAuditResponse* out) override;

 private:
  // Fills what only the scheduler's memory knows: the last heartbeat and
  // whether the agent is connected.
  void AddLiveness(pb::Cluster& cluster, absl::Time now) const;
};

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_ADMIN_SERVICE_H_
