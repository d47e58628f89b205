#include "scheduler/api/enterprise_service.h"

#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace cv::api {
namespace {

constexpr auto kEnterprise = {pb::ROLE_ENTERPRISE};

// An optional period bound: unset means unbounded.
absl::StatusOr<absl::Time> Bound(absl::string_view field,
                                 const google::protobuf::Timestamp& ts,
                                 absl::Time unbounded) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return unbounded;
  return FromProto(field, ts);
}

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
  return Read(c, kEnterprise,
              [&](const pb::Principal& me, const core::StateMachine& s) {
                ASSIGN_OR_RETURN(
                    *out->mutable_next_page_token(),
                    Page(
                        s.vouchers(), r->page(),
                        [&](const core::StateMachine::VoucherRec& rec) {
                          return rec.voucher.enterprise_id() ==
                                     me.enterprise_id() &&
                                 (r->state() == pb::VOUCHER_STATE_UNSPECIFIED ||
                                  rec.voucher.state() == r->state());
                        },
                        [&](const core::StateMachine::VoucherRec& rec) {
                          *out->add_vouchers() = s.VoucherViewOf(rec);
                          return absl::OkStatus();
                        }));
                return absl::OkStatus();
              });
}

Status EnterpriseServiceImpl::GetVoucher(ServerContext* c,
                                         const pb::GetVoucherRequest* r,
                                         pb::Voucher* out) {
  return Read(c, kEnterprise,
              [&](const pb::Principal& me, const core::StateMachine& s) {
                RETURN_IF_ERROR(CheckIdRef("voucher_id", r->voucher_id()));
                ASSIGN_OR_RETURN(pb::Voucher v, s.VoucherView(r->voucher_id()));
                if (v.enterprise_id() != me.enterprise_id()) {
                  return NotYours("voucher", r->voucher_id());
                }
                *out = std::move(v);
                return absl::OkStatus();
              });
}

Status EnterpriseServiceImpl::GetBalance(ServerContext* c,
                                         const pb::GetBalanceRequest*,
                                         pb::Balance* out) {
  return Read(
      c, kEnterprise,
      [&](const pb::Principal& me, const core::StateMachine& s) {
        out->set_enterprise_id(me.enterprise_id());
        for (const auto& [id, rec] : s.vouchers()) {
          if (rec.voucher.enterprise_id() != me.enterprise_id()) continue;
          const pb::Voucher v = s.VoucherViewOf(rec);
          if (v.state() == pb::VOUCHER_STATE_ACTIVE) {
            out->set_available_fen(out->available_fen() + v.available_fen());
            out->set_active_vouchers(out->active_vouchers() + 1);
          }
          out->set_held_fen(out->held_fen() + v.held_fen());
          out->set_charged_fen(out->charged_fen() + v.charged_fen());
        }
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
  return Read(
      c, kEnterprise,
      [&](const pb::Principal& me, const core::StateMachine& s) {
        RETURN_IF_ERROR(CheckIdRef("allocation_id", r->allocation_id()));
        ASSIGN_OR_RETURN(pb::Allocation a,
                         s.AllocationView(r->allocation_id()));
        if (a.enterprise_id() != me.enterprise_id()) {
          return NotYours("allocation", r->allocation_id());
        }
        *out = std::move(a);
        return absl::OkStatus();
      });
}

Status EnterpriseServiceImpl::ListAllocations(
    ServerContext* c, const pb::ListAllocationsRequest* r,
    pb::ListAllocationsResponse* out) {
  return Read(
      c, kEnterprise,
      [&](const pb::Principal& me, const core::StateMachine& s) {
        RETURN_IF_ERROR(CheckIdFilter("voucher_id", r->voucher_id()));
        ASSIGN_OR_RETURN(
            *out->mutable_next_page_token(),
            Page(
                s.allocations(), r->page(),
                [&](const core::StateMachine::AllocationRec& rec) {
                  const pb::Allocation& a = rec.allocation;
                  return a.enterprise_id() == me.enterprise_id() &&
                         (r->state() == pb::ALLOCATION_STATE_UNSPECIFIED ||
                          a.state() == r->state()) &&
                         (r->voucher_id().empty() ||
                          a.voucher_id() == r->voucher_id());
                },
                [&](const core::StateMachine::AllocationRec& rec) {
                  *out->add_allocations() = s.AllocationViewOf(rec);
                  return absl::OkStatus();
                }));
        return absl::OkStatus();
      });
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

// The enterprise's allocations, each with the facts usage rows leave out.
static absl::flat_hash_map<std::string, pb::Allocation> AllocationsOf(
    const core::StateMachine& s, const std::string& enterprise) {
  absl::flat_hash_map<std::string, pb::Allocation> out;
  for (const auto& [id, rec] : s.allocations()) {
    if (rec.allocation.enterprise_id() == enterprise) out[id] = rec.allocation;
  }
  return out;
}

static void FillFromAllocation(const pb::Allocation& a, pb::ChargedUsage* u) {
  u->set_enterprise_id(a.enterprise_id());
  u->set_voucher_id(a.voucher_id());
  u->set_program_id(a.program_id());
  u->set_provider_id(a.provider_id());
  u->set_cluster_id(a.cluster_id());
  u->set_hardware_class(a.hardware_class());
}

Status EnterpriseServiceImpl::ListUsage(ServerContext* c,
                                        const pb::ListUsageRequest* r,
                                        pb::ListUsageResponse* out) {
  absl::StatusOr<pb::Principal> me = Caller(*c, kEnterprise);
  if (!me.ok()) return ToGrpc(me.status());
  absl::StatusOr<absl::flat_hash_map<std::string, pb::Allocation>> mine =
      ReadState([&](const core::StateMachine& s) {
        return AllocationsOf(s, me->enterprise_id());
      });
  if (!mine.ok()) return ToGrpc(mine.status());
  store::UsageQuery query;
  query.end_after_accept = core::kUsageClockSkew;
  query.allocation_ids.emplace();
  if (!r->allocation_id().empty()) {
    if (absl::Status s = CheckIdRef("allocation_id", r->allocation_id());
        !s.ok()) {
      return ToGrpc(s);
    }
    if (!mine->contains(r->allocation_id())) {
      // Missing or another enterprise's: one answer.
      return ToGrpc(NotYours("allocation", r->allocation_id()));
    }
    query.allocation_ids->insert(r->allocation_id());
  } else {
    for (const auto& [id, a] : *mine) query.allocation_ids->insert(id);
  }
  absl::StatusOr<absl::Time> start =
      Bound("period_start", r->period_start(), absl::InfinitePast());
  absl::StatusOr<absl::Time> end =
      Bound("period_end", r->period_end(), absl::InfiniteFuture());
  if (!start.ok()) return ToGrpc(start.status());
  if (!end.ok()) return ToGrpc(end.status());
  query.period_start = *start;
  query.period_end = *end;
  absl::StatusOr<int64_t> page_size = PageSize(r->page());
  if (!page_size.ok()) return ToGrpc(page_size.status());
  const int64_t size = *page_size;
  absl::StatusOr<int64_t> token = NumericPageToken(r->page());
  if (!token.ok()) return ToGrpc(token.status());
  query.after = *token;
  query.limit = static_cast<int>(size) + 1;
  absl::StatusOr<std::vector<store::UsageRow>> rows =
      ctx_.store->ReadUsage(query);
  if (!rows.ok()) return ToGrpc(rows.status());
  for (size_t i = 0; i < rows->size() && i < static_cast<size_t>(size); ++i) {
    pb::ChargedUsage* u = out->add_usage();
    *u = std::move((*rows)[i].usage);
    FillFromAllocation(mine->at(u->record().allocation_id()), u);
  }
  if (rows->size() > static_cast<size_t>(size)) {
    out->set_next_page_token(absl::StrCat((*rows)[size - 1].position));
  }
  return Status::OK;
}

Status EnterpriseServiceImpl::GetStatement(ServerContext* c,
                                           const pb::GetStatementRequest* r,
                                           pb::Statement* out) {
  absl::StatusOr<pb::Principal> me = Caller(*c, kEnterprise);
  if (!me.ok()) return ToGrpc(me.status());
  absl::StatusOr<Window> period =
      RequiredPeriod(r->period_start(), r->period_end());
  if (!period.ok()) return ToGrpc(period.status());
  const absl::StatusOr<absl::flat_hash_map<std::string, pb::Allocation>> mine =
      ReadState([&](const core::StateMachine& s) {
        return AllocationsOf(s, me->enterprise_id());
      });
  if (!mine.ok()) return ToGrpc(mine.status());
  store::UsageQuery query;
  query.end_after_accept = core::kUsageClockSkew;
  query.allocation_ids.emplace();
  for (const auto& [id, a] : *mine) query.allocation_ids->insert(id);
  query.period_start = period->from;
  query.period_end = period->until;
  std::map<std::string, pb::StatementLine> lines;
  absl::StatusOr<store::Head> head =
      ctx_.store->ScanUsage(query, [&](const pb::ChargedUsage& u) {
        const pb::Allocation& a = mine->at(u.record().allocation_id());
        pb::StatementLine& line = lines[a.allocation_id()];
        line.set_allocation_id(a.allocation_id());
        line.set_voucher_id(a.voucher_id());
        line.set_provider_id(a.provider_id());
        line.set_cluster_id(a.cluster_id());
        line.set_gpu_model(a.gpu_model());
        line.set_gpu_ms(line.gpu_ms() + u.record().gpu_ms());
        pb::Amounts* amounts = line.mutable_amounts();
        amounts->set_cost_fen(amounts->cost_fen() + u.cost_fen());
        amounts->set_subsidy_fen(amounts->subsidy_fen() + u.subsidy_fen());
        amounts->set_self_pay_fen(amounts->cost_fen() - amounts->subsidy_fen());
      });
  if (!head.ok()) return ToGrpc(head.status());
  out->set_enterprise_id(me->enterprise_id());
  *out->mutable_period_start() = r->period_start();
  *out->mutable_period_end() = r->period_end();
  pb::Amounts* total = out->mutable_total();
  for (auto& [id, line] : lines) {
    total->set_cost_fen(total->cost_fen() + line.amounts().cost_fen());
    total->set_subsidy_fen(total->subsidy_fen() + line.amounts().subsidy_fen());
    total->set_self_pay_fen(total->self_pay_fen() +
                            line.amounts().self_pay_fen());
    *out->add_lines() = std::move(line);
  }
  return Status::OK;
}

}  // namespace cv::api
