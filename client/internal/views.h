// How each API object is shown: one declarative list of fields per type,
// used for its list (the fields marked `in_list`) and for its record (all).
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_VIEWS_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_VIEWS_H_

#include <vector>

#include "client/internal/render.h"
#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::client {

template <typename T>
struct Field {
  Column column;
  bool in_list;
  Cell (*cell)(const T&);
};

// A table of `items` with the list fields (every field with -o wide); -o
// json prints `message`.
template <typename T, typename Items>
View ListView(const std::vector<Field<T>>& fields, const Items& items,
              const google::protobuf::Message& message) {
  View view;
  view.message = &message;
  for (const Field<T>& f : fields) {
    view.columns.push_back(f.column);
    view.columns.back().wide = !f.in_list;
  }
  for (const T& item : items) {
    std::vector<Cell>& row = view.rows.emplace_back();
    for (const Field<T>& f : fields) row.push_back(f.cell(item));
  }
  return view;
}

// One record of `item` with every field; -o json prints `item`.
template <typename T>
View RecordView(const std::vector<Field<T>>& fields, const T& item) {
  View view;
  view.record = true;
  view.message = &item;
  std::vector<Cell>& row = view.rows.emplace_back();
  for (const Field<T>& f : fields) {
    view.columns.push_back(f.column);
    row.push_back(f.cell(item));
  }
  return view;
}

const std::vector<Field<computevoucher::v1::Program>>& ProgramFields();
const std::vector<Field<computevoucher::v1::Enterprise>>& EnterpriseFields();
const std::vector<Field<computevoucher::v1::Provider>>& ProviderFields();
const std::vector<Field<computevoucher::v1::Cluster>>& ClusterFields();
const std::vector<Field<computevoucher::v1::Application>>& ApplicationFields();
const std::vector<Field<computevoucher::v1::Voucher>>& VoucherFields();
const std::vector<Field<computevoucher::v1::Allocation>>& AllocationFields();
const std::vector<Field<computevoucher::v1::Token>>& TokenFields();
const std::vector<Field<computevoucher::v1::CreateTokenResponse>>&
CreatedTokenFields();
const std::vector<Field<computevoucher::v1::Balance>>& BalanceFields();
const std::vector<Field<computevoucher::v1::Offer>>& OfferFields();
const std::vector<Field<computevoucher::v1::QuoteResponse>>& QuoteFields();
const std::vector<Field<computevoucher::v1::ChargedUsage>>& UsageFields();
const std::vector<Field<computevoucher::v1::StatementLine>>&
StatementLineFields();
const std::vector<Field<computevoucher::v1::VerifyJournalResponse>>&
VerifyFields();
const std::vector<Field<computevoucher::v1::JournalEntry>>&
JournalEntryFields();
const std::vector<Field<computevoucher::v1::SettleProviderResponse>>&
PaymentFields();
const std::vector<Field<computevoucher::v1::CapUseLine>>& CapUseFields();
const std::vector<Field<computevoucher::v1::AuditEvent>>& AuditFields();

// A usage report: the columns of its groups (ids with names and credit
// codes), then records, GPU-hours, cost, subsidy, self-pay and the period
// as dates with the last day included; a TOTAL row last when `total_row`
// (not in CSV, where it would be summed with the rows) or without groups.
View UsageReportView(const computevoucher::v1::UsageReport& report,
                     bool total_row);

// Why `allocation` ended in words ("released", "ended-on-cluster: slurm
// job 42 CANCELLED"); "-" while it has not ended.
std::string EndReasonText(const computevoucher::v1::Allocation& allocation);

// Settlement lines, each with the journal position of the whole
// settlement, so that a CSV row says what it was computed at.
View SettlementView(const computevoucher::v1::Settlement& settlement);

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_VIEWS_H_
