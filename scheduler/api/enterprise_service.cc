#include "scheduler/api/enterprise_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/validate.h"
#include "scheduler/reports/allocations.h"
#include "scheduler/reports/offers.h"
#include "scheduler/reports/usage.h"
#include "scheduler/reports/vouchers.h"

namespace computevoucher::api {
namespace {

constexpr auto kEnterprise = {pb::ROLE_ENTERPRISE};
// The reads admins and auditors may make for any enterprise.
constexpr auto kReaders = {pb::ROLE_ENTERPRISE, pb::ROLE_ADMIN,
                           pb::ROLE_AUDITOR};

// The enterprise a read by `me` is about, given the request's
// `enterprise_id` (`requested`): an enterprise token's own (naming another
// is PermissionDenied); for an admin or auditor `requested`, which must be
// an enterprise `s` knows.
absl::StatusOr<std::string> Whose(const pb::Principal& me,
                                  const std::string& requested,
                                  const core::StateMachine& s) {
  RETURN_IF_ERROR(CheckIdFilter("enterprise_id", requested));
  if (me.role() == pb::ROLE_ENTERPRISE) {
    if (!requested.empty() && requested != me.enterprise_id()) {
      return absl::PermissionDeniedError(
          absl::StrCat("enterprise_id: ", Quoted(requested),
                       ": an enterprise token reads only its own enterprise"));
    }
    return me.enterprise_id();
  }
  if (requested.empty()) {
    return absl::InvalidArgumentError(
        "enterprise_id: required with an admin or auditor token");
  }
  if (!s.enterprises().contains(requested)) {
    return absl::NotFoundError(
        absl::StrCat("enterprise_id: enterprise ", requested, " not found"));
  }
  return requested;
}

// Only `me`'s own objects for an enterprise token; anyone's for an admin or
// auditor.
std::string OwnerFilter(const pb::Principal& me) {
  return me.role() == pb::ROLE_ENTERPRISE ? me.enterprise_id() : "";
}

}  // namespace

absl::StatusOr<std::string> EnterpriseServiceImpl::Whose(
    const pb::Principal& me, const std::string& requested) const {
  ASSIGN_OR_RETURN(absl::StatusOr<std::string> whose,
                   ReadState([&](const core::StateMachine& s) {
                     return api::Whose(me, requested, s);
                   }));
  return whose;
}

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
  return Read(c, kReaders,
              [&](const pb::Principal& me, const core::StateMachine& s) {
                out->Clear();  // Read may run this more than once
                ASSIGN_OR_RETURN(const std::string whose,
                                 api::Whose(me, r->enterprise_id(), s));
                ASSIGN_OR_RETURN(*out->mutable_next_page_token(),
                                 Page(
                                     s.applications(), r->page(),
                                     [&](const pb::Application& a) {
                                       return a.enterprise_id() == whose;
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
      c, kReaders,
      [&](const pb::Principal& me) -> absl::StatusOr<pb::ListVouchersResponse> {
        reports::VoucherFilter filter;
        ASSIGN_OR_RETURN(filter.enterprise_id, Whose(me, r->enterprise_id()));
        filter.state = r->state();
        return reports::VoucherList<pb::ListVouchersResponse>(
            ReportSources(), filter, r->page());
      },
      out);
}

Status EnterpriseServiceImpl::GetVoucher(ServerContext* c,
                                         const pb::GetVoucherRequest* r,
                                         pb::Voucher* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal& me) -> absl::StatusOr<pb::Voucher> {
        RETURN_IF_ERROR(CheckIdRef("voucher_id", r->voucher_id()));
        reports::VoucherFilter mine;
        mine.enterprise_id = OwnerFilter(me);
        return reports::FindVoucher(ReportSources(), r->voucher_id(), mine);
      },
      out);
}

Status EnterpriseServiceImpl::GetBalance(ServerContext* c,
                                         const pb::GetBalanceRequest* r,
                                         pb::Balance* out) {
  return Read(c, kReaders,
              [&](const pb::Principal& me, const core::StateMachine& s) {
                ASSIGN_OR_RETURN(const std::string whose,
                                 api::Whose(me, r->enterprise_id(), s));
                ASSIGN_OR_RETURN(*out, reports::Balance(s, whose));
                return absl::OkStatus();
              });
}

Status EnterpriseServiceImpl::ListOffers(ServerContext* c,
                                         const pb::ListOffersRequest* r,
                                         pb::ListOffersResponse* out) {
  return Read(c, kReaders,
              [&](const pb::Principal& me, const core::StateMachine& s) {
                ASSIGN_OR_RETURN(const std::string whose,
                                 api::Whose(me, r->enterprise_id(), s));
                ASSIGN_OR_RETURN(*out, reports::Offers(s, whose, *r));
                return absl::OkStatus();
              });
}

Status EnterpriseServiceImpl::Quote(ServerContext* c, const pb::QuoteRequest* r,
                                    pb::QuoteResponse* out) {
  return Read(c, kEnterprise,
              [&](const pb::Principal& me, const core::StateMachine& s) {
                pb::ResourceRequest resources = r->resources();
                resources.set_model_any_case(true);
                ASSIGN_OR_RETURN(*out, s.Quote(me.enterprise_id(), resources));
                return absl::OkStatus();
              });
}

Status EnterpriseServiceImpl::Allocate(ServerContext* c,
                                       const pb::AllocateRequest* r,
                                       pb::Allocation* out) {
  return Mutate(
      c, kEnterprise, r->request_id(),
      [r](pb::Command& cmd) {
        *cmd.mutable_allocate() = *r;
        cmd.mutable_allocate()->mutable_resources()->set_model_any_case(true);
      },
      out);
}

Status EnterpriseServiceImpl::GetAllocation(ServerContext* c,
                                            const pb::GetAllocationRequest* r,
                                            pb::Allocation* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal& me) -> absl::StatusOr<pb::Allocation> {
        RETURN_IF_ERROR(CheckIdRef("allocation_id", r->allocation_id()));
        reports::AllocationFilter mine;
        mine.enterprise_id = OwnerFilter(me);
        return reports::FindAllocation(ReportSources(), r->allocation_id(),
                                       mine);
      },
      out);
}

Status EnterpriseServiceImpl::ListAllocations(
    ServerContext* c, const pb::ListAllocationsRequest* r,
    pb::ListAllocationsResponse* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal& me)
          -> absl::StatusOr<pb::ListAllocationsResponse> {
        RETURN_IF_ERROR(CheckIdFilter("voucher_id", r->voucher_id()));
        reports::AllocationFilter filter;
        ASSIGN_OR_RETURN(filter.enterprise_id, Whose(me, r->enterprise_id()));
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
      c, kReaders,
      [&](const pb::Principal& me) -> absl::StatusOr<pb::ListUsageResponse> {
        ASSIGN_OR_RETURN(const std::string whose,
                         Whose(me, r->enterprise_id()));
        return reports::UsagePage(ReportSources(), whose, *r);
      },
      out);
}

Status EnterpriseServiceImpl::GetStatement(ServerContext* c,
                                           const pb::GetStatementRequest* r,
                                           pb::Statement* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal& me) -> absl::StatusOr<pb::Statement> {
        ASSIGN_OR_RETURN(const std::string whose,
                         Whose(me, r->enterprise_id()));
        return reports::Statement(ReportSources(), whose, *r);
      },
      out);
}

Status EnterpriseServiceImpl::WhoAmI(ServerContext* c, const pb::WhoAmIRequest*,
                                     pb::Token* out) {
  return Read(
      c,
      {pb::ROLE_ADMIN, pb::ROLE_AUDITOR, pb::ROLE_ENTERPRISE, pb::ROLE_AGENT},
      [&](const pb::Principal& me,
          const core::StateMachine& s) -> absl::Status {
        auto it = s.tokens().find(me.token_id());
        if (it == s.tokens().end()) {
          return absl::NotFoundError("token: no longer known");
        }
        *out = it->second;
        return absl::OkStatus();
      });
}

}  // namespace computevoucher::api
