// EnterpriseService (proto/computevoucher/v1/enterprise.proto): an
// enterprise (role enterprise) acting on its own vouchers and allocations.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_ENTERPRISE_SERVICE_H_
#define COMPUTEVOUCHER_SCHEDULER_API_ENTERPRISE_SERVICE_H_

#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "scheduler/api/service_base.h"

namespace computevoucher::api {

class EnterpriseServiceImpl final : public pb::EnterpriseService::Service,
                                    private ServiceBase {
 public:
  explicit EnterpriseServiceImpl(ServiceContext& context)
      : ServiceBase(context) {}

  using ServerContext = grpc::ServerContext;
  using Status = grpc::Status;

  Status Apply(ServerContext* c, const pb::ApplyRequest* r,
               pb::Application* out) override;
  Status ListApplications(ServerContext* c,
                          const pb::ListMyApplicationsRequest* r,
                          pb::ListMyApplicationsResponse* out) override;
  Status ListVouchers(ServerContext* c, const pb::ListVouchersRequest* r,
                      pb::ListVouchersResponse* out) override;
  Status GetVoucher(ServerContext* c, const pb::GetVoucherRequest* r,
                    pb::Voucher* out) override;
  Status GetBalance(ServerContext* c, const pb::GetBalanceRequest* r,
                    pb::Balance* out) override;
  Status ListOffers(ServerContext* c, const pb::ListOffersRequest* r,
                    pb::ListOffersResponse* out) override;
  Status Quote(ServerContext* c, const pb::QuoteRequest* r,
               pb::QuoteResponse* out) override;
  Status Allocate(ServerContext* c, const pb::AllocateRequest* r,
                  pb::Allocation* out) override;
  Status GetAllocation(ServerContext* c, const pb::GetAllocationRequest* r,
                       pb::Allocation* out) override;
  Status ListAllocations(ServerContext* c, const pb::ListAllocationsRequest* r,
                         pb::ListAllocationsResponse* out) override;
  Status ReleaseAllocation(ServerContext* c,
                           const pb::ReleaseAllocationRequest* r,
                           pb::Allocation* out) override;
  Status ExtendAllocation(ServerContext* c,
                          const pb::ExtendAllocationRequest* r,
                          pb::Allocation* out) override;
  Status ListUsage(ServerContext* c, const pb::ListUsageRequest* r,
                   pb::ListUsageResponse* out) override;
  Status WhoAmI(ServerContext* c, const pb::WhoAmIRequest* r,
                pb::Token* out) override;
  Status GetStatement(ServerContext* c, const pb::GetStatementRequest* r,
                      pb::Statement* out) override;

 private:
  // Whose(me, requested, state) on durable state.
  absl::StatusOr<std::string> Whose(const pb::Principal& me,
                                    const std::string& requested) const;
};

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_ENTERPRISE_SERVICE_H_
