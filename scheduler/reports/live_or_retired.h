// Records kept in two places: in the state while they live, in the store
// once retired (allocations, reports/allocations.h; vouchers,
// reports/vouchers.h). The state is read first, then the store: a record
// retired between the two reads is found in both (and answered once, from
// the state), never in neither. A stored view decides over the columns it
// was found by.
//
// `Kind` describes one sort of record:
//   Message, Filter, Query (the store's), kName ("allocation"),
//   Live(state) -> the state's map of records by id,
//   View(state, record) -> Message, Raw(record) -> the Message to match,
//   Matches(filter, message), RetiredCanMatch(filter),
//   QueryFor(filter) -> Query, ById(id) -> Query,
//   Read(store::RetiredRecords&, query) -> StatusOr<vector<Message>>,
//   Id(message) -> its id.
// Internal to reports/.
#ifndef COMPUTEVOUCHER_SCHEDULER_REPORTS_LIVE_OR_RETIRED_H_
#define COMPUTEVOUCHER_SCHEDULER_REPORTS_LIVE_OR_RETIRED_H_

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/repeated_field.h"
#include "scheduler/reports/paging.h"
#include "scheduler/reports/sources.h"

namespace computevoucher::reports::internal {

// The record `id` (its view) when it matches `filter`; NotFound otherwise,
// a missing one and another enterprise's alike.
template <typename Kind>
absl::StatusOr<typename Kind::Message> FindLiveOrRetired(
    const Sources& sources, const std::string& id,
    const typename Kind::Filter& filter) {
  using Message = typename Kind::Message;
  std::optional<Message> found;
  RETURN_IF_ERROR(sources.read_state([&](const core::StateMachine& s) {
    found.reset();
    auto it = Kind::Live(s).find(id);
    if (it != Kind::Live(s).end()) found = Kind::View(s, it->second);
  }));
  if (!found && sources.retired != nullptr) {
    typename Kind::Query q = Kind::ById(id);
    q.limit = 1;
    ASSIGN_OR_RETURN(std::vector<Message> retired,
                     Kind::Read(*sources.retired, q));
    if (!retired.empty()) found = std::move(retired.front());
  }
  if (!found || !Kind::Matches(filter, *found)) {
    return absl::NotFoundError(
        absl::StrCat(Kind::kName, "_id: ", Kind::kName, " ", id, " not found"));
  }
  return *std::move(found);
}

// The page of records matching `filter` after `page.page_token()`, in id
// order, added to `out`; returns the next page token ("" at the end).
template <typename Kind>
absl::StatusOr<std::string> LiveOrRetiredPage(
    const Sources& sources, const typename Kind::Filter& filter,
    const pb::PageRequest& page,
    google::protobuf::RepeatedPtrField<typename Kind::Message>* out) {
  using Message = typename Kind::Message;
  ASSIGN_OR_RETURN(const int64_t size, PageSize(page));
  const std::string& after = page.page_token();
  if (after.size() > 128) {
    return absl::InvalidArgumentError(
        "page.page_token: not a token this server issued");
  }
  // One more than a page from each, to know whether another page follows.
  const size_t wanted = static_cast<size_t>(size) + 1;
  std::vector<Message> live;
  RETURN_IF_ERROR(sources.read_state([&](const core::StateMachine& s) {
    live.clear();
    const auto& all = Kind::Live(s);
    for (auto it = after.empty() ? all.begin() : all.upper_bound(after);
         it != all.end() && live.size() < wanted; ++it) {
      if (Kind::Matches(filter, Kind::Raw(it->second)))
        live.push_back(Kind::View(s, it->second));
    }
  }));
  std::vector<Message> retired;
  if (sources.retired != nullptr && Kind::RetiredCanMatch(filter)) {
    typename Kind::Query q = Kind::QueryFor(filter);
    q.after_id = after;
    q.limit = static_cast<int>(wanted);
    ASSIGN_OR_RETURN(retired, Kind::Read(*sources.retired, q));
    retired.erase(std::remove_if(retired.begin(), retired.end(),
                                 [&filter](const Message& m) {
                                   return !Kind::Matches(filter, m);
                                 }),
                  retired.end());
  }
  std::map<std::string, Message> merged;
  for (Message& m : live) {
    std::string id = Kind::Id(m);
    merged.insert_or_assign(std::move(id), std::move(m));
  }
  for (Message& m : retired) {
    std::string id = Kind::Id(m);
    merged.try_emplace(std::move(id), std::move(m));  // the state's wins
  }
  std::string last;
  for (auto& [id, m] : merged) {
    if (out->size() == size) return last;  // another page follows
    last = id;
    *out->Add() = std::move(m);
  }
  return std::string();
}

}  // namespace computevoucher::reports::internal

#endif  // COMPUTEVOUCHER_SCHEDULER_REPORTS_LIVE_OR_RETIRED_H_
