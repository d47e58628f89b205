#include "scheduler/reports/allocations.h"

#include <iterator>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "scheduler/reports/paging.h"

namespace computevoucher::reports {
namespace {

bool Matches(const AllocationFilter& f, const pb::Allocation& a) {
  return (f.enterprise_id.empty() || a.enterprise_id() == f.enterprise_id) &&
         (f.provider_id.empty() || a.provider_id() == f.provider_id) &&
         (f.cluster_id.empty() || a.cluster_id() == f.cluster_id) &&
         (f.voucher_id.empty() || a.voucher_id() == f.voucher_id) &&
         (f.state == pb::ALLOCATION_STATE_UNSPECIFIED || a.state() == f.state);
}

// Whether retired allocations (all ended) can match `f`.
bool RetiredCanMatch(const Sources& sources, const AllocationFilter& f) {
  return sources.retired != nullptr &&
         (f.state == pb::ALLOCATION_STATE_UNSPECIFIED ||
          f.state == pb::ALLOCATION_STATE_ENDED);
}

store::RetiredQuery QueryFor(const AllocationFilter& f) {
  store::RetiredQuery q;
  q.enterprise_id = f.enterprise_id;
  q.provider_id = f.provider_id;
  q.cluster_id = f.cluster_id;
  q.voucher_id = f.voucher_id;
  q.retired_from = f.retired_from;
  return q;
}

// Up to `limit` live allocations matching `filter` with ids after `after`,
// in id order.
absl::StatusOr<std::vector<pb::Allocation>> LiveAllocations(
    const Sources& sources, const AllocationFilter& filter,
    const std::string& after, size_t limit) {
  std::vector<pb::Allocation> out;
  RETURN_IF_ERROR(sources.read_state([&](const core::StateMachine& s) {
    out.clear();
    const auto& all = s.allocations();
    for (auto it = after.empty() ? all.begin() : all.upper_bound(after);
         it != all.end() && out.size() < limit; ++it) {
      if (Matches(filter, it->second.allocation))
        out.push_back(s.AllocationViewOf(it->second));
    }
  }));
  return out;
}

}  // namespace

absl::StatusOr<pb::Allocation> FindAllocation(const Sources& sources,
                                              const std::string& id,
                                              const AllocationFilter& filter) {
  std::optional<pb::Allocation> found;
  RETURN_IF_ERROR(sources.read_state([&](const core::StateMachine& s) {
    found.reset();
    auto it = s.allocations().find(id);
    if (it != s.allocations().end()) found = s.AllocationViewOf(it->second);
  }));
  if (!found && sources.retired != nullptr) {
    store::RetiredQuery q;
    q.allocation_id = id;
    q.limit = 1;
    ASSIGN_OR_RETURN(std::vector<pb::Allocation> retired,
                     sources.retired->ReadRetired(q));
    if (!retired.empty()) found = std::move(retired.front());
  }
  if (!found || !Matches(filter, *found)) {
    return absl::NotFoundError(
        absl::StrCat("allocation_id: allocation ", id, " not found"));
  }
  return *std::move(found);
}

absl::StatusOr<std::string> AllocationPage(
    const Sources& sources, const AllocationFilter& filter,
    const pb::PageRequest& page,
    google::protobuf::RepeatedPtrField<pb::Allocation>* out) {
  ASSIGN_OR_RETURN(const int64_t size, PageSize(page));
  if (page.page_token().size() > 128) {
    return absl::InvalidArgumentError(
        "page.page_token: not a token this server issued");
  }
  // One more than a page from each, to know whether another page follows.
  const size_t wanted = static_cast<size_t>(size) + 1;
  std::map<std::string, pb::Allocation> merged;
  ASSIGN_OR_RETURN(std::vector<pb::Allocation> live,
                   LiveAllocations(sources, filter, page.page_token(), wanted));
  for (pb::Allocation& a : live) {
    std::string id = a.allocation_id();
    merged.insert_or_assign(std::move(id), std::move(a));
  }
  if (RetiredCanMatch(sources, filter)) {
    store::RetiredQuery q = QueryFor(filter);
    q.after_id = page.page_token();
    q.limit = static_cast<int>(wanted);
    ASSIGN_OR_RETURN(std::vector<pb::Allocation> retired,
                     sources.retired->ReadRetired(q));
    // One retired since the state was read is in both, the same; the
    // state's view wins.
    for (pb::Allocation& a : retired) {
      if (!Matches(filter, a)) continue;  // its columns and view disagree
      std::string id = a.allocation_id();
      merged.try_emplace(std::move(id), std::move(a));
    }
  }
  std::string last;
  for (auto& [id, a] : merged) {
    if (out->size() == size) return last;  // another page follows
    last = id;
    *out->Add() = std::move(a);
  }
  return std::string();
}

absl::Status ForEachAllocation(
    const Sources& sources, const AllocationFilter& filter,
    const std::function<void(const pb::Allocation&)>& fn) {
  std::vector<pb::Allocation> live;
  RETURN_IF_ERROR(sources.read_state([&](const core::StateMachine& s) {
    live.clear();
    for (const auto& [id, rec] : s.allocations()) {
      if (Matches(filter, rec.allocation))
        live.push_back(s.AllocationViewOf(rec));
    }
  }));
  absl::flat_hash_set<std::string> seen;
  for (const pb::Allocation& a : live) {
    seen.insert(a.allocation_id());
    fn(a);
  }
  if (!RetiredCanMatch(sources, filter)) return absl::OkStatus();
  store::RetiredQuery q = QueryFor(filter);
  q.limit = 10'000;
  while (true) {
    ASSIGN_OR_RETURN(const std::vector<pb::Allocation> retired,
                     sources.retired->ReadRetired(q));
    for (const pb::Allocation& a : retired) {
      // The view decides, should its columns disagree with it.
      if (!seen.contains(a.allocation_id()) && Matches(filter, a)) fn(a);
    }
    if (retired.size() < static_cast<size_t>(q.limit)) break;
    q.after_id = retired.back().allocation_id();
  }
  return absl::OkStatus();
}

}  // namespace computevoucher::reports
