// The command table of voucherctl and what its handlers share.
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_COMMANDS_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_COMMANDS_H_

#include <istream>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/internal/cli.h"
#include "client/internal/connection.h"
#include "client/internal/render.h"
#include "client/internal/values.h"
#include "client/internal/views.h"
#include "common/status_macros.h"
#include "google/protobuf/timestamp.pb.h"

namespace computevoucher::client {

// Everything a handler works with.
class Context {
 public:
  Context(const Args& args, Connection& server, Printer& printer,
          std::istream& in, std::ostream& err)
      : args(args), server(server), printer(printer), in(in), err(err) {}

  // The idempotency key of the command's mutation: --request-id when
  // given, else a random one drawn once per invocation. `part` > 0
  // distinguishes the calls of a command that makes several ("ID-3").
  // Connection resends a request unchanged to whichever replica leads, so
  // every try of a call carries the same key.
  std::string RequestId(int part = 0) const;

  const Args& args;
  Connection& server;
  Printer& printer;
  std::istream& in;
  std::ostream& err;

 private:
  mutable std::string random_id_;
};

// Every command and group, in the order help lists them.
const std::vector<CommandSpec>& Commands();
// Flags every command takes.
const std::vector<FlagSpec>& GlobalFlags();

// A validity window typed as dates: `from` is the start of its day,
// `until` the end of its day (Asia/Shanghai), each set only when its text
// is non-empty. Errors name `from_name` or `until_name`.
struct Validity {
  std::optional<google::protobuf::Timestamp> from;
  std::optional<google::protobuf::Timestamp> until;

  // Sets valid_from and valid_until of `r` where given.
  template <typename R>
  void ApplyTo(R& r) const {
    if (from.has_value()) *r.mutable_valid_from() = *from;
    if (until.has_value()) *r.mutable_valid_until() = *until;
  }
};
absl::StatusOr<Validity> ParseValidity(absl::string_view from_name,
                                       absl::string_view from_text,
                                       absl::string_view until_name,
                                       absl::string_view until_text);

// The period of --from and --to (dates, both included) as [start, end);
// when `required`, both flags must be given.
absl::Status SetPeriod(const Args& args, bool required,
                       google::protobuf::Timestamp* start,
                       google::protobuf::Timestamp* end);

// The rows of CSV file `path` as column -> value maps, keyed by the header
// row. Every column must be in `required` or `optional`; every column of
// `required` must be present. `row_names` receives "FILE row N" per row
// for error messages.
absl::StatusOr<std::vector<std::map<std::string, std::string>>> ReadCsvFile(
    const std::string& path, const std::vector<std::string>& required,
    const std::vector<std::string>& optional,
    std::vector<std::string>* row_names);

// A report's period from --from and --to (days, the last included),
// --month YYYY-MM, or --last Nd (the N days ending on `now`'s day, which
// is included), all Asia/Shanghai days; at most one way; unset when none
// is given and not `required`.
absl::Status SetReportPeriod(const Args& args, bool required, absl::Time now,
                             google::protobuf::Timestamp* start,
                             google::protobuf::Timestamp* end);

// The value of --state when given, else the unspecified value (all).
template <typename E>
absl::StatusOr<E> StateFilter(const Args& args) {
  if (!args.Has("state")) return static_cast<E>(0);
  return ParseEnumArg<E>("--state", args.Value("state"));
}

// Calls `method` and prints its answer as a record of `fields`.
template <typename Stub, typename Request, typename Response>
absl::Status CallAndShow(Context& c,
                         grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                      const Request&,
                                                      Response*),
                         const Request& request,
                         const std::vector<Field<Response>>& fields) {
  Response response;
  RETURN_IF_ERROR(c.server.Call(method, request, &response));
  c.printer.Print(RecordView(fields, response));
  return absl::OkStatus();
}

// Calls a List `method` for all pages and prints the `items` of the answer
// as a table of `fields`.
template <typename Stub, typename Request, typename Response, typename T>
absl::Status ListAndShow(
    Context& c,
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                 Response*),
    const Request& request,
    const google::protobuf::RepeatedPtrField<T>& (Response::*items)() const,
    const std::vector<Field<T>>& fields) {
  Response all;
  RETURN_IF_ERROR(c.server.CallAllPages(method, request, &all));
  c.printer.Print(ListView(fields, (all.*items)(), all));
  return absl::OkStatus();
}

// Handlers, in handlers_enterprise.cc and handlers_admin.cc.
absl::Status Login(Context& c);
absl::Status ProfileList(Context& c);
absl::Status ProfileUse(Context& c);
absl::Status ProfileDelete(Context& c);
absl::Status Apply(Context& c);
absl::Status ApplicationsList(Context& c);
absl::Status VouchersList(Context& c);
absl::Status VouchersShow(Context& c);
absl::Status Balance(Context& c);
absl::Status Offers(Context& c);
absl::Status Quote(Context& c);
absl::Status Allocate(Context& c);
absl::Status AllocationsList(Context& c);
absl::Status AllocationsShow(Context& c);
absl::Status AllocationsRelease(Context& c);
absl::Status AllocationsExtend(Context& c);
absl::Status AllocationsWatch(Context& c);
absl::Status Usage(Context& c);
absl::Status Statement(Context& c);

absl::Status ProgramCreate(Context& c);
absl::Status ProgramList(Context& c);
absl::Status ProgramShow(Context& c);
absl::Status EnterpriseAdd(Context& c);
absl::Status EnterpriseImport(Context& c);
absl::Status EnterpriseList(Context& c);
absl::Status EnterpriseShow(Context& c);
absl::Status EnterpriseRelated(Context& c);
absl::Status ProviderAdd(Context& c);
absl::Status ProviderList(Context& c);
absl::Status ProviderPay(Context& c);
absl::Status ProviderShow(Context& c);
absl::Status ClusterList(Context& c);
absl::Status ClusterApprove(Context& c);
absl::Status ClusterDisable(Context& c);
absl::Status ApplicationList(Context& c);
absl::Status ApplicationShow(Context& c);
absl::Status ApplicationApprove(Context& c);
absl::Status ApplicationReject(Context& c);
absl::Status VoucherIssue(Context& c);
absl::Status VoucherIssueBatch(Context& c);
absl::Status VoucherSuspend(Context& c);
absl::Status VoucherResume(Context& c);
absl::Status VoucherRevoke(Context& c);
absl::Status VoucherList(Context& c);
absl::Status VoucherAdjust(Context& c);
absl::Status AdminAllocationList(Context& c);
absl::Status JournalList(Context& c);
absl::Status TokenCreate(Context& c);
absl::Status TokenRevoke(Context& c);
absl::Status TokenList(Context& c);
absl::Status Settlement(Context& c);
absl::Status AuditVerify(Context& c);
// In handlers_office.cc.
absl::Status ReportUsage(Context& c);
absl::Status ReportCaps(Context& c);
absl::Status ReportExpiring(Context& c);
absl::Status AuditLog(Context& c);
absl::Status WhoAmI(Context& c);
absl::Status Version(Context& c);

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_COMMANDS_H_
