#include "scheduler/reports/allocations.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "scheduler/reports/live_or_retired.h"

namespace computevoucher::reports {
namespace {

// Allocations for internal::FindLiveOrRetired and LiveOrRetiredPage.
struct AllocationKind {
  using Message = pb::Allocation;
  using Filter = AllocationFilter;
  using Query = store::RetiredQuery;
  static constexpr char kName[] = "allocation";
  static const auto& Live(const core::StateMachine& s) {
    return s.allocations();
  }
  static Message View(const core::StateMachine& s,
                      const core::AllocationRec& rec) {
    return s.AllocationViewOf(rec);
  }
  static const Message& Raw(const core::AllocationRec& rec) {
    return rec.allocation;
  }
  static bool Matches(const Filter& f, const Message& a) {
    return (f.enterprise_id.empty() || a.enterprise_id() == f.enterprise_id) &&
           (f.provider_id.empty() || a.provider_id() == f.provider_id) &&
           (f.cluster_id.empty() || a.cluster_id() == f.cluster_id) &&
           (f.voucher_id.empty() || a.voucher_id() == f.voucher_id) &&
           (f.state == pb::ALLOCATION_STATE_UNSPECIFIED ||
            a.state() == f.state);
  }
  // Retired allocations are all ended.
  static bool RetiredCanMatch(const Filter& f) {
    return f.state == pb::ALLOCATION_STATE_UNSPECIFIED ||
           f.state == pb::ALLOCATION_STATE_ENDED;
  }
  static Query QueryFor(const Filter& f) {
    Query q;
    q.enterprise_id = f.enterprise_id;
    q.provider_id = f.provider_id;
    q.cluster_id = f.cluster_id;
    q.voucher_id = f.voucher_id;
    q.retired_from = f.retired_from;
    return q;
  }
  static Query ById(const std::string& id) {
    Query q;
    q.allocation_id = id;
    return q;
  }
  static absl::StatusOr<std::vector<Message>> Read(
      store::RetiredRecords& retired, const Query& q) {
    return retired.ReadRetired(q);
  }
  static std::string Id(const Message& a) { return a.allocation_id(); }
};

}  // namespace

absl::StatusOr<pb::Allocation> FindAllocation(const Sources& sources,
                                              const std::string& id,
                                              const AllocationFilter& filter) {
  return internal::FindLiveOrRetired<AllocationKind>(sources, id, filter);
}

absl::StatusOr<std::string> AllocationPage(
    const Sources& sources, const AllocationFilter& filter,
    const pb::PageRequest& page,
    google::protobuf::RepeatedPtrField<pb::Allocation>* out) {
  return internal::LiveOrRetiredPage<AllocationKind>(sources, filter, page,
                                                     out);
}

absl::Status ForEachAllocation(
    const Sources& sources, const AllocationFilter& filter,
    const std::function<void(const pb::Allocation&)>& fn) {
  std::vector<pb::Allocation> live;
  RETURN_IF_ERROR(sources.read_state([&](const core::StateMachine& s) {
    live.clear();
    for (const auto& [id, rec] : s.allocations()) {
      if (AllocationKind::Matches(filter, rec.allocation))
        live.push_back(s.AllocationViewOf(rec));
    }
  }));
  absl::flat_hash_set<std::string> seen;
  for (const pb::Allocation& a : live) {
    seen.insert(a.allocation_id());
    fn(a);
  }
  if (sources.retired == nullptr || !AllocationKind::RetiredCanMatch(filter))
    return absl::OkStatus();
  store::RetiredQuery q = AllocationKind::QueryFor(filter);
  q.limit = 10'000;
  while (true) {
    ASSIGN_OR_RETURN(const std::vector<pb::Allocation> retired,
                     sources.retired->ReadRetired(q));
    for (const pb::Allocation& a : retired) {
      // The view decides, should its columns disagree with it.
      if (!seen.contains(a.allocation_id()) &&
          AllocationKind::Matches(filter, a))
        fn(a);
    }
    if (retired.size() < static_cast<size_t>(q.limit)) break;
    q.after_id = retired.back().allocation_id();
  }
  return absl::OkStatus();
}

}  // namespace computevoucher::reports
