#include "scheduler/reports/vouchers.h"

#include <string>
#include <vector>

#include "scheduler/reports/live_or_retired.h"

namespace computevoucher::reports {
namespace {

// Vouchers for internal::FindLiveOrRetired and LiveOrRetiredPage.
struct VoucherKind {
  using Message = pb::Voucher;
  using Filter = VoucherFilter;
  using Query = store::RetiredVoucherQuery;
  static constexpr char kName[] = "voucher";
  static const auto& Live(const core::StateMachine& s) { return s.vouchers(); }
  static Message View(const core::StateMachine& s, const core::VoucherRec& r) {
    return s.VoucherViewOf(r);
  }
  static const Message& Raw(const core::VoucherRec& r) { return r.voucher; }
  static bool Matches(const Filter& f, const Message& v) {
    return (f.program_id.empty() || v.program_id() == f.program_id) &&
           (f.enterprise_id.empty() || v.enterprise_id() == f.enterprise_id) &&
           (f.state == pb::VOUCHER_STATE_UNSPECIFIED || v.state() == f.state);
  }
  // Retired vouchers are expired, revoked or exhausted.
  static bool RetiredCanMatch(const Filter& f) {
    return f.state == pb::VOUCHER_STATE_UNSPECIFIED ||
           f.state == pb::VOUCHER_STATE_EXPIRED ||
           f.state == pb::VOUCHER_STATE_REVOKED ||
           f.state == pb::VOUCHER_STATE_EXHAUSTED;
  }
  static Query QueryFor(const Filter& f) {
    Query q;
    q.program_id = f.program_id;
    q.enterprise_id = f.enterprise_id;
    if (f.state != pb::VOUCHER_STATE_UNSPECIFIED)
      q.state = pb::VoucherState_Name(f.state);
    return q;
  }
  static Query ById(const std::string& id) {
    Query q;
    q.voucher_id = id;
    return q;
  }
  static absl::StatusOr<std::vector<Message>> Read(
      store::RetiredRecords& retired, const Query& q) {
    return retired.ReadRetiredVouchers(q);
  }
  static std::string Id(const Message& v) { return v.voucher_id(); }
};

}  // namespace

absl::StatusOr<pb::Voucher> FindVoucher(const Sources& sources,
                                        const std::string& id,
                                        const VoucherFilter& filter) {
  return internal::FindLiveOrRetired<VoucherKind>(sources, id, filter);
}

absl::StatusOr<std::string> VoucherPage(
    const Sources& sources, const VoucherFilter& filter,
    const pb::PageRequest& page,
    google::protobuf::RepeatedPtrField<pb::Voucher>* out) {
  return internal::LiveOrRetiredPage<VoucherKind>(sources, filter, page, out);
}

}  // namespace computevoucher::reports
