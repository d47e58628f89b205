#include "scheduler/store/internal/store_util.h"

#include <unistd.h>

#include <limits>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"

namespace computevoucher::store {

std::string NewCandidateId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::random_device random;
  return absl::StrCat(host, "/", getpid(), "/",
                      absl::Hex(random(), absl::kZeroPad8));
}

namespace internal {

absl::Status CheckContinues(const Head& head, const Batch& batch) {
  int64_t next_command = head.command_sequence + 1;
  for (const pb::Command& c : batch.commands) {
    if (c.sequence() != next_command++) {
      return absl::FailedPreconditionError(
          absl::StrCat("append: command sequence ", c.sequence(),
                       " does not follow ", next_command - 2));
    }
  }
  int64_t next_entry = head.journal_sequence + 1;
  for (const pb::JournalEntry& e : batch.entries) {
    if (e.sequence() != next_entry++) {
      return absl::FailedPreconditionError(
          absl::StrCat("append: journal sequence ", e.sequence(),
                       " does not follow ", next_entry - 2));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSnapshot(int64_t position, int keep, int64_t last_command,
                           int64_t newest) {
  if (keep < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot keep: must be >= 1, got ", keep));
  }
  if (position < 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot position ", position, ": must be >= 1"));
  }
  if (position > last_command) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot position ", position,
                     " is after the last stored command ", last_command));
  }
  if (position == newest) {
    return absl::AlreadyExistsError(
        absl::StrCat("snapshot position ", position, " is already stored"));
  }
  if (position < newest) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot position ", position,
                     " is older than the newest stored snapshot ", newest));
  }
  return absl::OkStatus();
}

int64_t NanosOf(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1'000'000'000 + ts.nanos();
}

int64_t ClampNanos(absl::Time t) {
  if (t <= absl::FromUnixNanos(std::numeric_limits<int64_t>::min())) {
    return std::numeric_limits<int64_t>::min();
  }
  if (t >= absl::FromUnixNanos(std::numeric_limits<int64_t>::max())) {
    return std::numeric_limits<int64_t>::max();
  }
  return absl::ToUnixNanos(t);
}

std::string RetiredTableSql(absl::string_view text, absl::string_view blob) {
  // Written in the transaction of the command that retired each one, never
  // updated. Listings go in id order, by enterprise or by provider.
  return absl::StrCat(R"sql(
CREATE TABLE retired_allocations (
  allocation_id )sql", text, R"sql( PRIMARY KEY,
  enterprise_id )sql", text, R"sql( NOT NULL,
  provider_id   )sql", text, R"sql( NOT NULL,  -- empty: never placed
  cluster_id    )sql", text, R"sql( NOT NULL,
  voucher_id    )sql", text, R"sql( NOT NULL,
  retired_ns    bigint NOT NULL,  -- retired_at, Unix nanoseconds (UTC)
  body          )sql", blob, R"sql( NOT NULL   -- computevoucher.v1.Allocation
);
CREATE INDEX retired_by_enterprise
  ON retired_allocations (enterprise_id, allocation_id);
CREATE INDEX retired_by_provider
  ON retired_allocations (provider_id, allocation_id);
)sql");
}

absl::StatusOr<RetiredSelect> SelectRetired(const RetiredQuery& query,
                                            char marker) {
  if (query.limit < 1 || query.limit > 10'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("retired allocations: limit must be 1..10000, got ",
                     query.limit));
  }
  RetiredSelect out;
  out.sql = "SELECT body FROM retired_allocations WHERE allocation_id > ";
  auto placeholder = [&](const std::string& value) {
    out.params.push_back(value);
    return absl::StrCat(std::string(1, marker), out.params.size());
  };
  absl::StrAppend(&out.sql, placeholder(query.after_id));
  const std::pair<const char*, const std::string*> filters[] = {
      {"allocation_id", &query.allocation_id},
      {"enterprise_id", &query.enterprise_id},
      {"provider_id", &query.provider_id},
      {"cluster_id", &query.cluster_id},
      {"voucher_id", &query.voucher_id}};
  for (const auto& [column, value] : filters) {
    if (value->empty()) continue;
    absl::StrAppend(&out.sql, " AND ", column, " = ", placeholder(*value));
  }
  // Bound as text, like the others, and cast where compared.
  if (query.retired_from != absl::InfinitePast()) {
    absl::StrAppend(&out.sql, " AND retired_ns >= CAST(",
                    placeholder(absl::StrCat(ClampNanos(query.retired_from))),
                    " AS BIGINT)");
  }
  if (query.retired_until != absl::InfiniteFuture()) {
    absl::StrAppend(&out.sql, " AND retired_ns <= CAST(",
                    placeholder(absl::StrCat(ClampNanos(query.retired_until))),
                    " AS BIGINT)");
  }
  absl::StrAppend(&out.sql, " ORDER BY allocation_id LIMIT ", query.limit);
  return out;
}

absl::StatusOr<pb::Allocation> ParseRetired(absl::string_view body) {
  pb::Allocation a;
  if (!a.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return absl::DataLossError(
        "retired_allocations: a stored allocation does not parse");
  }
  return a;
}

}  // namespace internal
}  // namespace computevoucher::store
