#include "scheduler/api/enterprise_service.h"

#include <utility>

#include "common/status_macros.h"
#include "scheduler/reports/allocations.h"
#include "scheduler/reports/usage.h"
#include "scheduler/reports/vouchers.h"

namespace computevoucher::api {
namespace {

constexpr auto kEnterprise = {pb::ROLE_ENTERPRISE};

}  // namespace

using grpc::ServerContext;
using grpc::Status;

Status EnterpriseServiceImpl::Apply(ServerContext* c, const pb::ApplyRequest* r,
                                    pb::Application* out) {
  return Mutate(
      c, kEnterprise, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_apply() = *r; }, out);
}

Status EnterpriseServiceImpl::ListApplications(
    ServerContext* c, const pb::ListMyApplicationsRequest* r,
    pb::ListMyApplicationsResponse* out) {
  return Read(c, kEnterprise,
              [&](const pb::Principal& me, const core::StateMachine& s) {
                ASSIGN_OR_RETURN(*out->mutable_next_page_token(),
                                 Page(
                                     s.applications(), r->page(),
                                     [&](const pb::Application& a) {
                                       return a.enterprise_id() ==
                                              me.enterprise_id();
                                     },
                                     [&](const pb::Application& a) {
                                       *out->add_applications() = a;
                                       return absl::OkStatus();
                                     }));
                return absl::OkStatus();
              });
}

Status EnterpriseServiceImpl::ListVouchers(ServerContext* c,
                                           const pb::ListVouchersRequest* r,
                                           pb::ListVouchersResponse* out) {
  return Report(
      c, kEnterprise,
      [&](const pb::Principal& me) -> absl::StatusOr<pb::ListVouchersResponse> {
        reports::VoucherFilter filter;
        filter.enterprise_id = me.enterprise_id();
        filter.state = r->state();
        pb::ListVouchersResponse response;
        ASSIGN_OR_RETURN(
            *response.mutable_next_page_token(),
            reports::VoucherPage(ReportSources(), filter, r->page(),
                                 response.mutable_vouchers()));
        return response;
      },
      out);
}

Status EnterpriseServiceImpl::GetVoucher(ServerContext* c,
                                         const pb::GetVoucherRequest* r,
                                         pb::Voucher* out) {
  return Report(
      c, kEnterprise,
      [&](const pb::Principal& me) -> absl::StatusOr<pb::Voucher> {
        RETURN_IF_ERROR(CheckIdRef("voucher_id", r->voucher_id()));
        reports::VoucherFilter mine;
        mine.enterprise_id = me.enterprise_id();
        return reports::FindVoucher(ReportSources(), r->voucher_id(), mine);
      },
      out);
}

Status EnterpriseServiceImpl::GetBalance(ServerContext* c,
                                         const pb::GetBalanceRequest*,
                                         pb::Balance* out) {
  return Read(c, kEnterprise,
              [&](const pb::Principal& me, const core::StateMachine& s) {
                ASSIGN_OR_RETURN(*out, reports::Balance(s, me.enterprise_id()));
                return absl::OkStatus();
              });
}

Status EnterpriseServiceImpl::Quote(ServerContext* c, const pb::QuoteRequest* r,
                                    pb::QuoteResponse* out) {
  return Read(c, kEnterprise,
              [&](const pb::Principal& me, const core::StateMachine& s) {
                ASSIGN_OR_RETURN(*out,
                                 s.Quote(me.enterprise_id(), r->resources()));
                return absl::OkStatus();
              });
}

Status EnterpriseServiceImpl::Allocate(ServerContext* c,
                                       const pb::AllocateRequest* r,
                                       pb::Allocation* out) {
  return Mutate(
      c, kEnterprise, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_allocate() = *r; }, out);
}

Status EnterpriseServiceImpl::GetAllocation(ServerContext* c,
                                            const pb::GetAllocationRequest* r,
                                            pb::Allocation* out) {
  return Report(
      c, kEnterprise,
      [&](const pb::Principal& me) -> absl::StatusOr<pb::Allocation> {
        RETURN_IF_ERROR(CheckIdRef("allocation_id", r->allocation_id()));
        reports::AllocationFilter mine;
        mine.enterprise_id = me.enterprise_id();
        return reports::FindAllocation(ReportSources(), r->allocation_id(),
                                       mine);
      },
      out);
}

Status EnterpriseServiceImpl::ListAllocations(
    ServerContext* c, const pb::ListAllocationsRequest* r,
    pb::ListAllocationsResponse* out) {
  return Report(
      c, kEnterprise,
      [&](const pb::Principal& me)
          -> absl::StatusOr<pb::ListAllocationsResponse> {
        RETURN_IF_ERROR(CheckIdFilter("voucher_id", r->voucher_id()));
        reports::AllocationFilter filter;
        filter.enterprise_id = me.enterprise_id();
        filter.voucher_id = r->voucher_id();
        filter.state = r->state();
        return reports::AllocationList<pb::ListAllocationsResponse>(
            ReportSources(), filter, r->page());
      },
      out);
}

Status EnterpriseServiceImpl::ReleaseAllocation(
    ServerContext* c, const pb::ReleaseAllocationRequest* r,
    pb::Allocation* out) {
  return Mutate(
      c, kEnterprise, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_release_allocation() = *r; }, out);
}

Status EnterpriseServiceImpl::ExtendAllocation(
    ServerContext* c, const pb::ExtendAllocationRequest* r,
    pb::Allocation* out) {
  return Mutate(
      c, kEnterprise, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_extend_allocation() = *r; }, out);
}

Status EnterpriseServiceImpl::ListUsage(ServerContext* c,
                                        const pb::ListUsageRequest* r,
                                        pb::ListUsageResponse* out) {
  return Report(
      c, kEnterprise,
      [&](const pb::Principal& me) {
        return reports::UsagePage(ReportSources(), me.enterprise_id(), *r);
      },
      out);
}

Status EnterpriseServiceImpl::GetStatement(ServerContext* c,
                                           const pb::GetStatementRequest* r,
                                           pb::Statement* out) {
  return Report(
      c, kEnterprise,
      [&](const pb::Principal& me) {
        return reports::Statement(ReportSources(), me.enterprise_id(), *r);
      },
      out);
}

}  // namespace computevoucher::api
