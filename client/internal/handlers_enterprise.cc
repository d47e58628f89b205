// Handlers of the enterprise commands (EnterpriseService).
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/internal/commands.h"
#include "client/internal/exit_codes.h"
#include "client/internal/values.h"
#include "client/internal/views.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace computevoucher::client {
namespace {

namespace pb = ::computevoucher::v1;
using Stub = pb::EnterpriseService::Stub;

absl::StatusOr<pb::ResourceRequest> Resources(const Args& args) {
  pb::ResourceRequest r;
  if (args.Has("model") == args.Has("class")) {
    return absl::InvalidArgumentError(
        "--model, --class: give exactly one, e.g. --model H100 or --class "
        "domestic");
  }
  if (args.Has("model")) {
    ASSIGN_OR_RETURN(*r.mutable_gpu_model(), args.Id("model"));
  } else {
    ASSIGN_OR_RETURN(
        const pb::HardwareClass cls,
        ParseEnumArg<pb::HardwareClass>("--class", args.Value("class")));
    r.set_hardware_class(cls);
  }
  ASSIGN_OR_RETURN(const int64_t gpus, args.Count("gpus", 1, 1024));
  r.set_gpu_count(static_cast<int32_t>(gpus));
  ASSIGN_OR_RETURN(const int64_t seconds,
                   ParseHoursArg("--hours", args.Value("hours")));
  r.set_max_duration_s(seconds);
  if (args.Has("voucher")) {
    ASSIGN_OR_RETURN(*r.mutable_voucher_id(), args.Id("voucher"));
  }
  return r;
}

}  // namespace

absl::Status Apply(Context& c) {
  pb::ApplyRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_program_id(), c.args.Id("program"));
  ASSIGN_OR_RETURN(const int64_t fen, c.args.Amount("amount"));
  r.set_requested_fen(fen);
  r.set_purpose(c.args.Value("purpose"));
  return CallAndShow(c, &Stub::Apply, r, ApplicationFields());
}

absl::Status ApplicationsList(Context& c) {
  pb::ListMyApplicationsRequest r;
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  return ListAndShow(c, &Stub::ListApplications, r,
                     &pb::ListMyApplicationsResponse::applications,
                     ApplicationFields());
}

absl::Status VouchersList(Context& c) {
  pb::ListVouchersRequest r;
  ASSIGN_OR_RETURN(const auto state, StateFilter<pb::VoucherState>(c.args));
  r.set_state(state);
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  return ListAndShow(c, &Stub::ListVouchers, r,
                     &pb::ListVouchersResponse::vouchers, VoucherFields());
}

absl::Status VouchersShow(Context& c) {
  pb::GetVoucherRequest r;
  ASSIGN_OR_RETURN(*r.mutable_voucher_id(), c.args.PositionalId(0));
  return CallAndShow(c, &Stub::GetVoucher, r, VoucherFields());
}

absl::Status Balance(Context& c) {
  pb::GetBalanceRequest r;
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  return CallAndShow(c, &Stub::GetBalance, r, BalanceFields());
}

absl::Status Offers(Context& c) {
  pb::ListOffersRequest r;
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  if (c.args.Has("model")) {
    ASSIGN_OR_RETURN(*r.mutable_gpu_model(), c.args.Id("model"));
  }
  if (c.args.Has("class")) {
    ASSIGN_OR_RETURN(
        const pb::HardwareClass cls,
        ParseEnumArg<pb::HardwareClass>("--class", c.args.Value("class")));
    r.set_hardware_class(cls);
  }
  pb::ListOffersResponse response;
  RETURN_IF_ERROR(c.server.Call(&Stub::ListOffers, r, &response));
  c.printer.Print(ListView(OfferFields(), response.offers(), response));
  return absl::OkStatus();
}

absl::Status Quote(Context& c) {
  pb::QuoteRequest r;
  ASSIGN_OR_RETURN(*r.mutable_resources(), Resources(c.args));
  return CallAndShow(c, &Stub::Quote, r, QuoteFields());
}

absl::Status Allocate(Context& c) {
  pb::AllocateRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_resources(), Resources(c.args));
  r.set_queue_if_busy(c.args.Switch("queue"));
  for (const std::string& arg : c.args.rest()) r.add_workload_command(arg);
  pb::Allocation allocation;
  if (absl::Status s = c.server.Call(&Stub::Allocate, r, &allocation);
      !s.ok()) {
    // The scheduler names the API's field; voucherctl's is --queue.
    return WithExitCode(
        absl::Status(s.code(),
                     absl::StrReplaceAll(
                         s.message(),
                         {{"(queue_if_busy)", "(run again with --queue)"}})),
        ExitCodeOf(s));
  }
  const std::string& id = allocation.allocation_id();
  if (allocation.state() == pb::ALLOCATION_STATE_PENDING) {
    c.err << "Queued: no GPUs are free now. Follow it with 'voucherctl "
             "allocations watch "
          << id << "'.\n";
  }
  c.printer.Print(RecordView(AllocationFields(), allocation));
  // The agent says how to reach the GPUs once it has started them, which is
  // almost always after this answer.
  if (allocation.access().empty() &&
      allocation.state() != pb::ALLOCATION_STATE_ENDED) {
    c.err << "How to reach its GPUs shows once its cluster has started it: "
             "'voucherctl allocations show "
          << id << "'.\n";
  }
  return absl::OkStatus();
}

absl::Status AllocationsList(Context& c) {
  pb::ListAllocationsRequest r;
  ASSIGN_OR_RETURN(const auto state, StateFilter<pb::AllocationState>(c.args));
  r.set_state(state);
  RETURN_IF_ERROR(c.args.OptionalId("voucher", r.mutable_voucher_id()));
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  return ListAndShow(c, &Stub::ListAllocations, r,
                     &pb::ListAllocationsResponse::allocations,
                     AllocationFields());
}

absl::Status AllocationsShow(Context& c) {
  pb::GetAllocationRequest r;
  ASSIGN_OR_RETURN(*r.mutable_allocation_id(), c.args.PositionalId(0));
  return CallAndShow(c, &Stub::GetAllocation, r, AllocationFields());
}

absl::Status AllocationsRelease(Context& c) {
  pb::ReleaseAllocationRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_allocation_id(), c.args.PositionalId(0));
  return CallAndShow(c, &Stub::ReleaseAllocation, r, AllocationFields());
}

absl::Status AllocationsExtend(Context& c) {
  pb::ExtendAllocationRequest r;
  r.set_request_id(c.RequestId());
  ASSIGN_OR_RETURN(*r.mutable_allocation_id(), c.args.PositionalId(0));
  ASSIGN_OR_RETURN(const int64_t seconds,
                   ParseHoursArg("--hours", c.args.Value("hours")));
  r.set_extra_duration_s(seconds);
  return CallAndShow(c, &Stub::ExtendAllocation, r, AllocationFields());
}

absl::Status AllocationsWatch(Context& c) {
  if (c.printer.format() == Format::kCsv) {
    return absl::InvalidArgumentError(
        "-o: must be table, json or yaml for a stream of changes, got "
        "\"csv\"");
  }
  pb::GetAllocationRequest r;
  ASSIGN_OR_RETURN(*r.mutable_allocation_id(), c.args.PositionalId(0));
  absl::Duration interval = absl::Seconds(2);
  if (c.args.Has("interval")) {
    ASSIGN_OR_RETURN(interval,
                     ParseDurationArg("--interval", c.args.Value("interval"),
                                      absl::Milliseconds(100)));
  }
  std::string last;
  while (true) {
    pb::Allocation a;
    RETURN_IF_ERROR(c.server.Call(&Stub::GetAllocation, r, &a));
    // What a change is: the state and where it runs, not the money.
    const std::string now =
        absl::StrCat(EnumWord(a.state()), " ", EnumWord(a.end_reason()), " ",
                     a.cluster_id(), " ", a.idle());
    if (now != last) {
      last = now;
      if (c.printer.format() == Format::kJson ||
          c.printer.format() == Format::kYaml) {
        c.printer.PrintChange(a);
      } else {
        std::string line =
            absl::StrCat(c.printer.Text(ToProto(absl::Now()), false), "  ",
                         a.allocation_id(), "  ", EnumWord(a.state()));
        if (a.state() == pb::ALLOCATION_STATE_ENDED) {
          absl::StrAppend(&line, " (", EndReasonText(a), ")");
        }
        if (!a.cluster_id().empty()) {
          absl::StrAppend(&line, "  cluster ", a.cluster_id(), ", ",
                          a.gpu_count(), "×", a.gpu_model());
        }
        if (a.idle()) absl::StrAppend(&line, "  idle");
        absl::StrAppend(&line, "  held ", FormatFen(a.held_fen()), ", charged ",
                        FormatFen(a.charged_fen()));
        c.printer.out() << line << std::endl;
      }
    }
    if (a.state() == pb::ALLOCATION_STATE_ENDED) return absl::OkStatus();
    // Polling is the product here: the API has no change stream.
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(interval));
  }
}

absl::Status Usage(Context& c) {
  pb::ListUsageRequest r;
  RETURN_IF_ERROR(c.args.OptionalId("allocation", r.mutable_allocation_id()));
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  RETURN_IF_ERROR(SetPeriod(c.args, false, r.mutable_period_start(),
                            r.mutable_period_end()));
  pb::ListUsageResponse all;
  RETURN_IF_ERROR(c.server.CallAllPages(&Stub::ListUsage, r, &all));
  View view = ListView(UsageFields(), all.usage(), all);
  if (all.has_archived_until()) {
    view.footer = absl::StrCat(
        "records ending before ", c.printer.Text(all.archived_until(), false),
        " may be archived and not listed; statements still count them");
  }
  c.printer.Print(view);
  return absl::OkStatus();
}

absl::Status Statement(Context& c) {
  pb::GetStatementRequest r;
  RETURN_IF_ERROR(c.args.OptionalId("enterprise", r.mutable_enterprise_id()));
  RETURN_IF_ERROR(SetPeriod(c.args, true, r.mutable_period_start(),
                            r.mutable_period_end()));
  pb::Statement statement;
  RETURN_IF_ERROR(c.server.Call(&Stub::GetStatement, r, &statement));
  View view = ListView(StatementLineFields(), statement.lines(), statement);
  view.footer =
      absl::StrCat("total for ", statement.enterprise_id(), ": cost ",
                   FormatFen(statement.total().cost_fen()), ", subsidy ",
                   FormatFen(statement.total().subsidy_fen()), ", self-pay ",
                   FormatFen(statement.total().self_pay_fen()));
  c.printer.Print(view);
  return absl::OkStatus();
}

}  // namespace computevoucher::client
