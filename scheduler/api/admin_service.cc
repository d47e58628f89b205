#include "scheduler/api/admin_service.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/credit_code.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/reports/allocations.h"
#include "scheduler/reports/journal.h"
#include "scheduler/reports/office.h"
#include "scheduler/reports/usage.h"
#include "scheduler/reports/vouchers.h"

namespace computevoucher::api {
namespace {

constexpr auto kAdmin = {pb::ROLE_ADMIN};
constexpr auto kReaders = {pb::ROLE_ADMIN, pb::ROLE_AUDITOR};

}  // namespace

using grpc::ServerContext;
using grpc::Status;

// --- Programs ---

Status AdminServiceImpl::CreateProgram(ServerContext* c,
                                       const pb::CreateProgramRequest* r,
                                       pb::Program* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_create_program() = *r; }, out);
}

Status AdminServiceImpl::ListPrograms(ServerContext* c,
                                      const pb::ListProgramsRequest* r,
                                      pb::ListProgramsResponse* out) {
  return Read(
      c, kReaders, [&](const pb::Principal&, const core::StateMachine& s) {
        out->Clear();  // Read may run this more than once
        ASSIGN_OR_RETURN(*out->mutable_next_page_token(),
                         Page(
                             s.programs(), r->page(),
                             [](const pb::Program&) { return true; },
                             [&](const pb::Program& p) -> absl::Status {
                               ASSIGN_OR_RETURN(*out->add_programs(),
                                                s.ProgramView(p.program_id()));
                               return absl::OkStatus();
                             }));
        return absl::OkStatus();
      });
}

Status AdminServiceImpl::GetProgram(ServerContext* c,
                                    const pb::GetProgramRequest* r,
                                    pb::Program* out) {
  return Read(c, kReaders,
              [&](const pb::Principal&, const core::StateMachine& s) {
                out->Clear();  // Read may run this more than once
                RETURN_IF_ERROR(CheckIdRef("program_id", r->program_id()));
                ASSIGN_OR_RETURN(*out, s.ProgramView(r->program_id()));
                return absl::OkStatus();
              });
}

// --- Enterprises and providers ---

Status AdminServiceImpl::RegisterEnterprise(
    ServerContext* c, const pb::RegisterEnterpriseRequest* r,
    pb::Enterprise* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_register_enterprise() = *r; }, out);
}

Status AdminServiceImpl::SetRelatedProviders(
    ServerContext* c, const pb::SetRelatedProvidersRequest* r,
    pb::Enterprise* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_set_related_providers() = *r; },
      out);
}

Status AdminServiceImpl::ListEnterprises(ServerContext* c,
                                         const pb::ListEnterprisesRequest* r,
                                         pb::ListEnterprisesResponse* out) {
  return Read(c, kReaders,
              [&](const pb::Principal&, const core::StateMachine& s) {
                out->Clear();  // Read may run this more than once
                ASSIGN_OR_RETURN(*out->mutable_next_page_token(),
                                 Page(
                                     s.enterprises(), r->page(),
                                     [](const pb::Enterprise&) { return true; },
                                     [&](const pb::Enterprise& e) {
                                       *out->add_enterprises() = e;
                                       return absl::OkStatus();
                                     }));
                return absl::OkStatus();
              });
}

Status AdminServiceImpl::GetEnterprise(ServerContext* c,
                                       const pb::GetEnterpriseRequest* r,
                                       pb::Enterprise* out) {
  return Read(
      c, kReaders, [&](const pb::Principal&, const core::StateMachine& s) {
        out->Clear();  // Read may run this more than once
        if (!r->credit_code().empty()) {
          ASSIGN_OR_RETURN(
              const std::string code,
              NormalizeCreditCode("credit_code", r->credit_code()));
          if (!r->enterprise_id().empty()) {
            return absl::InvalidArgumentError(
                "enterprise_id, credit_code: give one of them, not both");
          }
          const pb::Enterprise* e = s.EnterpriseByCreditCode(code);
          if (e == nullptr) {
            return absl::NotFoundError(absl::StrCat(
                "credit_code: no enterprise has credit code ", code));
          }
          *out = *e;
          return absl::OkStatus();
        }
        RETURN_IF_ERROR(CheckIdRef("enterprise_id", r->enterprise_id()));
        auto it = s.enterprises().find(r->enterprise_id());
        if (it == s.enterprises().end()) {
          return absl::NotFoundError(
              absl::StrCat("enterprise ", r->enterprise_id(), " not found"));
        }
        *out = it->second;
        return absl::OkStatus();
      });
}

Status AdminServiceImpl::RegisterProvider(ServerContext* c,
                                          const pb::RegisterProviderRequest* r,
                                          pb::Provider* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_register_provider() = *r; }, out);
}

Status AdminServiceImpl::ListProviders(ServerContext* c,
                                       const pb::ListProvidersRequest* r,
                                       pb::ListProvidersResponse* out) {
  return Read(c, kReaders,
              [&](const pb::Principal&, const core::StateMachine& s) {
                out->Clear();  // Read may run this more than once
                ASSIGN_OR_RETURN(
                    *out->mutable_next_page_token(),
                    Page(
                        s.providers(), r->page(),
                        [](const pb::Provider&) { return true; },
                        [&](const pb::Provider& p) -> absl::Status {
                          ASSIGN_OR_RETURN(*out->add_providers(),
                                           s.ProviderView(p.provider_id()));
                          return absl::OkStatus();
                        }));
                return absl::OkStatus();
              });
}

Status AdminServiceImpl::GetProvider(ServerContext* c,
                                     const pb::GetProviderRequest* r,
                                     pb::Provider* out) {
  return Read(c, kReaders,
              [&](const pb::Principal&, const core::StateMachine& s) {
                out->Clear();  // Read may run this more than once
                RETURN_IF_ERROR(CheckIdRef("provider_id", r->provider_id()));
                ASSIGN_OR_RETURN(*out, s.ProviderView(r->provider_id()));
                return absl::OkStatus();
              });
}

// --- Clusters ---

Status AdminServiceImpl::ListClusters(ServerContext* c,
                                      const pb::ListClustersRequest* r,
                                      pb::ListClustersResponse* out) {
  const absl::Time now = ctx_.clock->Now();
  return Read(
      c, kReaders, [&](const pb::Principal&, const core::StateMachine& s) {
        out->Clear();  // Read may run this more than once
        ASSIGN_OR_RETURN(*out->mutable_next_page_token(),
                         Page(
                             s.clusters(), r->page(),
                             [&](const core::StateMachine::ClusterRec& rec) {
                               return r->state() ==
                                          pb::CLUSTER_STATE_UNSPECIFIED ||
                                      rec.cluster.state() == r->state();
                             },
                             [&](const core::StateMachine::ClusterRec& rec) {
                               pb::Cluster* cluster = out->add_clusters();
                               *cluster = s.ClusterViewOf(rec);
                               AddLiveness(*cluster, now);
                               return absl::OkStatus();
                             }));
        return absl::OkStatus();
      });
}

Status AdminServiceImpl::SetClusterState(ServerContext* c,
                                         const pb::SetClusterStateRequest* r,
                                         pb::Cluster* out) {
  Status status = Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_set_cluster_state() = *r; }, out);
  if (status.ok()) AddLiveness(*out, ctx_.clock->Now());
  return status;
}

void AdminServiceImpl::AddLiveness(pb::Cluster& cluster, absl::Time now) const {
  const absl::Time last = ctx_.liveness->LastBeat(cluster.cluster_id());
  if (last != absl::InfinitePast()) {
    *cluster.mutable_last_heartbeat_at() = ToProto(last);
  }
  cluster.set_connected(
      last != absl::InfinitePast() &&
      ctx_.liveness->Connected(cluster.cluster_id(), now,
                               absl::Seconds(ctx_.config.cluster_silence_s())));
}

// --- Applications ---

Status AdminServiceImpl::ListApplications(ServerContext* c,
                                          const pb::ListApplicationsRequest* r,
                                          pb::ListApplicationsResponse* out) {
  return Read(
      c, kReaders, [&](const pb::Principal&, const core::StateMachine& s) {
        out->Clear();  // Read may run this more than once
        RETURN_IF_ERROR(CheckIdFilter("program_id", r->program_id()));
        ASSIGN_OR_RETURN(
            *out->mutable_next_page_token(),
            Page(
                s.applications(), r->page(),
                [&](const pb::Application& a) {
                  return (r->state() == pb::APPLICATION_STATE_UNSPECIFIED ||
                          a.state() == r->state()) &&
                         (r->program_id().empty() ||
                          a.program_id() == r->program_id());
                },
                [&](const pb::Application& a) {
                  *out->add_applications() = a;
                  return absl::OkStatus();
                }));
        return absl::OkStatus();
      });
}

Status AdminServiceImpl::GetApplication(ServerContext* c,
                                        const pb::GetApplicationRequest* r,
                                        pb::Application* out) {
  return Read(
      c, kReaders, [&](const pb::Principal&, const core::StateMachine& s) {
        out->Clear();  // Read may run this more than once
        RETURN_IF_ERROR(CheckIdRef("application_id", r->application_id()));
        auto it = s.applications().find(r->application_id());
        if (it == s.applications().end()) {
          return absl::NotFoundError(
              absl::StrCat("application ", r->application_id(), " not found"));
        }
        *out = it->second;
        return absl::OkStatus();
      });
}

Status AdminServiceImpl::ApproveApplication(
    ServerContext* c, const pb::ApproveApplicationRequest* r,
    pb::Application* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_approve_application() = *r; }, out);
}

Status AdminServiceImpl::RejectApplication(
    ServerContext* c, const pb::RejectApplicationRequest* r,
    pb::Application* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_reject_application() = *r; }, out);
}

// --- Vouchers ---

Status AdminServiceImpl::IssueVoucher(ServerContext* c,
                                      const pb::IssueVoucherRequest* r,
                                      pb::Voucher* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_issue_voucher() = *r; }, out);
}

Status AdminServiceImpl::BatchIssueVouchers(
    ServerContext* c, const pb::BatchIssueVouchersRequest* r,
    pb::BatchIssueVouchersResponse* out) {
  // A row's own request id is not used; it is stored with the command, so
  // it is held to the same rule as any (empty allowed).
  for (int i = 0; i < r->rows_size(); ++i) {
    if (r->rows(i).request_id().empty()) continue;
    if (absl::Status s = CheckRequestId(r->rows(i).request_id()); !s.ok()) {
      absl::StatusOr<pb::Principal> caller = Caller(*c, kAdmin);
      if (!caller.ok()) return ToGrpc(caller.status());
      return ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("rows[", i, "].", s.message())));
    }
  }
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_batch_issue_vouchers() = *r; }, out);
}

Status AdminServiceImpl::SuspendVoucher(ServerContext* c,
                                        const pb::SuspendVoucherRequest* r,
                                        pb::Voucher* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_suspend_voucher() = *r; }, out);
}

Status AdminServiceImpl::ResumeVoucher(ServerContext* c,
                                       const pb::ResumeVoucherRequest* r,
                                       pb::Voucher* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_resume_voucher() = *r; }, out);
}

Status AdminServiceImpl::RevokeVoucher(ServerContext* c,
                                       const pb::RevokeVoucherRequest* r,
                                       pb::Voucher* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_revoke_voucher() = *r; }, out);
}

Status AdminServiceImpl::AdjustVoucher(ServerContext* c,
                                       const pb::AdjustVoucherRequest* r,
                                       pb::Voucher* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_adjust_voucher() = *r; }, out);
}

Status AdminServiceImpl::ListVouchers(ServerContext* c,
                                      const pb::AdminListVouchersRequest* r,
                                      pb::AdminListVouchersResponse* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal&)
          -> absl::StatusOr<pb::AdminListVouchersResponse> {
        RETURN_IF_ERROR(CheckIdFilter("program_id", r->program_id()));
        RETURN_IF_ERROR(CheckIdFilter("enterprise_id", r->enterprise_id()));
        reports::VoucherFilter filter;
        filter.program_id = r->program_id();
        filter.enterprise_id = r->enterprise_id();
        filter.state = r->state();
        return reports::VoucherList<pb::AdminListVouchersResponse>(
            ReportSources(), filter, r->page());
      },
      out);
}

Status AdminServiceImpl::ListAllocations(
    ServerContext* c, const pb::AdminListAllocationsRequest* r,
    pb::AdminListAllocationsResponse* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal&)
          -> absl::StatusOr<pb::AdminListAllocationsResponse> {
        RETURN_IF_ERROR(CheckIdFilter("enterprise_id", r->enterprise_id()));
        RETURN_IF_ERROR(CheckIdFilter("cluster_id", r->cluster_id()));
        reports::AllocationFilter filter;
        filter.enterprise_id = r->enterprise_id();
        filter.cluster_id = r->cluster_id();
        filter.state = r->state();
        return reports::AllocationList<pb::AdminListAllocationsResponse>(
            ReportSources(), filter, r->page());
      },
      out);
}

// --- Tokens ---

Status AdminServiceImpl::CreateToken(ServerContext* c,
                                     const pb::CreateTokenRequest* r,
                                     pb::CreateTokenResponse* out) {
  absl::StatusOr<std::string> secret = NewSecret();
  if (!secret.ok()) return ToGrpc(secret.status());
  const std::string hash = Sha256(*secret);
  absl::StatusOr<pb::Principal> caller = Caller(*c, kAdmin);
  if (!caller.ok()) return ToGrpc(caller.status());
  absl::StatusOr<core::Outcome> outcome =
      Submit(*caller, r->request_id(), [&](pb::Command& cmd) {
        *cmd.mutable_create_token()->mutable_request() = *r;
        cmd.mutable_create_token()->set_secret_sha256(hash);
      });
  if (!outcome.ok()) return ToGrpc(outcome.status());
  if (absl::Status s = CopyResponse(*outcome, out); !s.ok()) return ToGrpc(s);
  // Only the hash is stored: a retried request gets the token without its
  // secret, which was shown once.
  if (outcome->changed) out->set_secret(*secret);
  return Status::OK;
}

Status AdminServiceImpl::RevokeToken(ServerContext* c,
                                     const pb::RevokeTokenRequest* r,
                                     pb::Token* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) {
        *cmd.mutable_revoke_token_recorded()->mutable_request() = *r;
      },
      out);
}

Status AdminServiceImpl::ListTokens(ServerContext* c,
                                    const pb::ListTokensRequest* r,
                                    pb::ListTokensResponse* out) {
  return Read(
      c, kAdmin, [&](const pb::Principal&, const core::StateMachine& s) {
        out->Clear();  // Read may run this more than once
        ASSIGN_OR_RETURN(
            *out->mutable_next_page_token(),
            Page(
                s.tokens(), r->page(), [](const pb::Token&) { return true; },
                [&](const pb::Token& t) {
                  *out->add_tokens() = t;
                  return absl::OkStatus();
                }));
        return absl::OkStatus();
      });
}

// --- Settlement and audit ---

Status AdminServiceImpl::GetSettlement(ServerContext* c,
                                       const pb::GetSettlementRequest* r,
                                       pb::Settlement* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal&) {
        return reports::Settlement(ReportSources(), *r);
      },
      out);
}

Status AdminServiceImpl::SettleProvider(ServerContext* c,
                                        const pb::SettleProviderRequest* r,
                                        pb::SettleProviderResponse* out) {
  return Mutate(
      c, kAdmin, r->request_id(),
      [r](pb::Command& cmd) { *cmd.mutable_settle_provider() = *r; }, out);
}

Status AdminServiceImpl::VerifyJournal(ServerContext* c,
                                       const pb::VerifyJournalRequest*,
                                       pb::VerifyJournalResponse* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal&) {
        return reports::VerifyJournal(*ctx_.log, *ctx_.usage, *ctx_.retired,
                                      ctx_.archived);
      },
      out);
}

Status AdminServiceImpl::ListJournal(ServerContext* c,
                                     const pb::ListJournalRequest* r,
                                     pb::ListJournalResponse* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal&) { return reports::JournalPage(*ctx_.log, *r); },
      out);
}

Status AdminServiceImpl::GetUsageReport(ServerContext* c,
                                        const pb::UsageReportRequest* r,
                                        pb::UsageReport* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal&) {
        return reports::UsageReport(ReportSources(), *r);
      },
      out);
}

Status AdminServiceImpl::GetCapUse(ServerContext* c,
                                   const pb::GetCapUseRequest* r,
                                   pb::CapUse* out) {
  return Read(c, kReaders,
              [&](const pb::Principal&, const core::StateMachine& s) {
                ASSIGN_OR_RETURN(*out, reports::CapUse(s, *r));
                return absl::OkStatus();
              });
}

Status AdminServiceImpl::ListExpiringVouchers(
    ServerContext* c, const pb::ListExpiringVouchersRequest* r,
    pb::ListExpiringVouchersResponse* out) {
  return Read(c, kReaders,
              [&](const pb::Principal&, const core::StateMachine& s) {
                ASSIGN_OR_RETURN(*out, reports::ExpiringVouchers(s, *r));
                return absl::OkStatus();
              });
}

Status AdminServiceImpl::ListAudit(ServerContext* c,
                                   const pb::ListAuditRequest* r,
                                   pb::ListAuditResponse* out) {
  return Report(
      c, kReaders,
      [&](const pb::Principal&) {
        return reports::AuditPage(ReportSources(), *r);
      },
      out);
}

}  // namespace computevoucher::api
