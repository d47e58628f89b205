#include "scheduler/store/internal/store_util.h"

#include <unistd.h>

#include <limits>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"

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

std::string RetiredVouchersTableSql(absl::string_view text,
                                    absl::string_view blob) {
  // As retired_allocations; listings go in id order, by enterprise.
  return absl::StrCat(R"sql(
CREATE TABLE retired_vouchers (
  voucher_id    )sql",
                      text, R"sql( PRIMARY KEY,
  program_id    )sql",
                      text, R"sql( NOT NULL,
  enterprise_id )sql",
                      text, R"sql( NOT NULL,
  state         )sql",
                      text, R"sql( NOT NULL,  -- e.g. VOUCHER_STATE_EXPIRED
  retired_ns    bigint NOT NULL,  -- retired_at, Unix nanoseconds (UTC)
  body          )sql",
                      blob, R"sql( NOT NULL   -- computevoucher.v1.Voucher
);
CREATE INDEX retired_vouchers_by_enterprise
  ON retired_vouchers (enterprise_id, voucher_id);
)sql");
}

RetiredRows RetiredRowsOf(const Batch& batch) {
  RetiredRows rows;
  for (const pb::Allocation& a : batch.retired) {
    rows.allocations.push_back(
        RetiredRow{{a.allocation_id(), a.enterprise_id(), a.provider_id(),
                    a.cluster_id(), a.voucher_id()},
                   NanosOf(a.retired_at()),
                   a.SerializeAsString()});
  }
  for (const pb::Voucher& v : batch.retired_vouchers) {
    rows.vouchers.push_back(
        RetiredRow{{v.voucher_id(), v.program_id(), v.enterprise_id(),
                    pb::VoucherState_Name(v.state())},
                   NanosOf(v.retired_at()),
                   v.SerializeAsString()});
  }
  return rows;
}

namespace {

// The SELECT of the bodies of `table` (id column `id_column`) whose
// columns equal the non-empty `filters`, retired in [from, until], with an
// id after `after`, in id order.
// The column of the time `from` and `until` bound, inclusive (retired
// records) or not (audit events, applied in a period).
struct TimeBounds {
  const char* column = "retired_ns";
  bool until_inclusive = true;
};

absl::StatusOr<RetiredSelect> SelectRetiredRows(
    absl::string_view table, absl::string_view id_column,
    absl::Span<const std::pair<const char*, const std::string*>> filters,
    const std::string& after, absl::Time from, absl::Time until, int limit,
    char marker, TimeBounds bounds = {}) {
  if (limit < 1 || limit > 10'000) {
    return absl::InvalidArgumentError(
        absl::StrCat(table, ": limit must be 1..10000, got ", limit));
  }
  RetiredSelect out;
  out.sql =
      absl::StrCat("SELECT body FROM ", table, " WHERE ", id_column, " > ");
  auto placeholder = [&](const std::string& value) {
    out.params.push_back(value);
    return absl::StrCat(std::string(1, marker), out.params.size());
  };
  absl::StrAppend(&out.sql, placeholder(after));
  for (const auto& [column, value] : filters) {
    if (value->empty()) continue;
    absl::StrAppend(&out.sql, " AND ", column, " = ", placeholder(*value));
  }
  // Bound as text, like the others, and cast where compared.
  if (from != absl::InfinitePast()) {
    absl::StrAppend(&out.sql, " AND ", bounds.column, " >= CAST(",
                    placeholder(absl::StrCat(ClampNanos(from))), " AS BIGINT)");
  }
  if (until != absl::InfiniteFuture()) {
    absl::StrAppend(&out.sql, " AND ", bounds.column,
                    bounds.until_inclusive ? " <= " : " < ", "CAST(",
                    placeholder(absl::StrCat(ClampNanos(until))),
                    " AS BIGINT)");
  }
  absl::StrAppend(&out.sql, " ORDER BY ", id_column, " LIMIT ", limit);
  return out;
}

}  // namespace

absl::StatusOr<RetiredSelect> SelectRetired(const RetiredQuery& query,
                                            char marker) {
  const std::pair<const char*, const std::string*> filters[] = {
      {"allocation_id", &query.allocation_id},
      {"enterprise_id", &query.enterprise_id},
      {"provider_id", &query.provider_id},
      {"cluster_id", &query.cluster_id},
      {"voucher_id", &query.voucher_id}};
  return SelectRetiredRows("retired_allocations", "allocation_id", filters,
                           query.after_id, query.retired_from,
                           query.retired_until, query.limit, marker);
}

absl::StatusOr<RetiredSelect> SelectRetired(const RetiredVoucherQuery& query,
                                            char marker) {
  const std::pair<const char*, const std::string*> filters[] = {
      {"voucher_id", &query.voucher_id},
      {"program_id", &query.program_id},
      {"enterprise_id", &query.enterprise_id},
      {"state", &query.state}};
  return SelectRetiredRows("retired_vouchers", "voucher_id", filters,
                           query.after_id, query.retired_from,
                           query.retired_until, query.limit, marker);
}

std::string AuditTableSql(absl::string_view text, absl::string_view blob) {
  // Written with the command's batch, never updated; listed in log order,
  // all or by token or object.
  return absl::StrCat(R"sql(
CREATE TABLE audit_log (
  event_id  )sql",
                      text, R"sql( PRIMARY KEY,  -- the sequence, 19 digits
  token_id  )sql",
                      text, R"sql( NOT NULL,     -- empty: the scheduler
  object_id )sql",
                      text, R"sql( NOT NULL,
  method    )sql",
                      text, R"sql( NOT NULL,     -- e.g. issue_voucher
  time_ns   bigint NOT NULL,  -- applied at, Unix nanoseconds (UTC)
  body      )sql",
                      blob, R"sql( NOT NULL      -- computevoucher.v1.AuditEvent
);
CREATE INDEX audit_by_token ON audit_log (token_id, event_id);
CREATE INDEX audit_by_object ON audit_log (object_id, event_id);
CREATE INDEX audit_by_time ON audit_log (time_ns, event_id);
)sql");
}

std::string AuditId(int64_t sequence) {
  return absl::StrFormat("%019d", sequence);
}

std::vector<RetiredRow> AuditRowsOf(const Batch& batch) {
  std::vector<RetiredRow> rows;
  rows.reserve(batch.audit.size());
  for (const pb::AuditEvent& e : batch.audit) {
    rows.push_back(RetiredRow{{AuditId(e.sequence()), e.principal().token_id(),
                               e.object_id(), e.method()},
                              NanosOf(e.time()),
                              e.SerializeAsString()});
  }
  return rows;
}

absl::StatusOr<RetiredSelect> SelectRetired(const AuditQuery& query,
                                            char marker) {
  const std::pair<const char*, const std::string*> filters[] = {
      {"token_id", &query.token_id}, {"object_id", &query.object_id}};
  return SelectRetiredRows("audit_log", "event_id", filters,
                           AuditId(query.after), query.from, query.until,
                           query.limit, marker, TimeBounds{"time_ns", false});
}

std::string ArchiveTablesSql(absl::string_view text, absl::string_view blob) {
  return absl::StrCat(R"sql(
-- Where the archived range ends (voucher-scheduler archive): the ends of the
-- last batch dropped, from which the next batch starts. At most one row.
CREATE TABLE archive_horizon (
  row_id          bigint PRIMARY KEY,  -- the id of the last batch dropped
  command_end     bigint NOT NULL,
  entry_end       bigint NOT NULL,
  usage_end       bigint NOT NULL,
  accepted_end_ns bigint NOT NULL,
  entry_hash      )sql", blob, R"sql( NOT NULL,
  before_ns       bigint NOT NULL,  -- commands applied before it were asked for
  manifest_sha256 )sql", blob, R"sql( NOT NULL
);
-- Archived usage summed per allocation and Asia/Shanghai day of its end,
-- for statements and settlement of archived periods.
CREATE TABLE usage_days (
  allocation_id       )sql", text, R"sql( NOT NULL,
  day_ns              bigint NOT NULL,  -- the day's first instant
  records             bigint NOT NULL,
  gpu_ms              bigint NOT NULL,
  unsubsidised_gpu_ms bigint NOT NULL,
  cost_fen            bigint NOT NULL,
  subsidy_fen         bigint NOT NULL,
  PRIMARY KEY (allocation_id, day_ns)
);
CREATE INDEX usage_days_by_day ON usage_days (day_ns);
)sql");
}

ArchiveSql ArchiveStatements(char marker) {
  auto p = [marker](int i) { return absl::StrCat(std::string(1, marker), i); };
  ArchiveSql out;
  out.batch_end = absl::StrCat(
      "SELECT command_end, entry_end, usage_end, accepted_end_ns, entry_hash "
      "FROM batches WHERE command_end <= ",
      p(1), " ORDER BY id DESC LIMIT 1");
  out.find_batch = absl::StrCat(
      "SELECT b.id, (SELECT count(*) FROM batches a WHERE a.id > b.id), "
      "(SELECT count(*) FROM snapshots WHERE position >= b.command_end) FROM "
      "batches b WHERE b.command_end = ",
      p(1), " AND b.entry_end = ", p(2), " AND b.usage_end = ", p(3),
      " AND b.entry_hash = ", p(4), " ORDER BY b.id DESC LIMIT 1");
  out.drop_batches = absl::StrCat("DELETE FROM batches WHERE id <= ", p(1));
  out.drop_snapshots =
      absl::StrCat("DELETE FROM snapshots WHERE position < ", p(1));
  out.drop_horizon = "DELETE FROM archive_horizon";
  out.insert_horizon = absl::StrCat(
      "INSERT INTO archive_horizon (row_id, command_end, entry_end, "
      "usage_end, accepted_end_ns, entry_hash, before_ns, manifest_sha256) "
      "VALUES (",
      p(1), ", ", p(2), ", ", p(3), ", ", p(4), ", ", p(5), ", ", p(6), ", ",
      p(7), ", ", p(8), ")");
  out.read_horizon =
      "SELECT command_end, entry_end, usage_end, accepted_end_ns, entry_hash, "
      "before_ns, manifest_sha256 FROM archive_horizon";
  out.add_day = absl::StrCat(
      "INSERT INTO usage_days (allocation_id, day_ns, records, gpu_ms, "
      "unsubsidised_gpu_ms, cost_fen, subsidy_fen) VALUES (",
      p(1), ", ", p(2), ", ", p(3), ", ", p(4), ", ", p(5), ", ", p(6), ", ",
      p(7),
      ") ON CONFLICT (allocation_id, day_ns) DO UPDATE SET records = "
      "usage_days.records + excluded.records, gpu_ms = usage_days.gpu_ms + "
      "excluded.gpu_ms, unsubsidised_gpu_ms = usage_days.unsubsidised_gpu_ms "
      "+ excluded.unsubsidised_gpu_ms, cost_fen = usage_days.cost_fen + "
      "excluded.cost_fen, subsidy_fen = usage_days.subsidy_fen + "
      "excluded.subsidy_fen");
  out.scan_days = absl::StrCat(
      "SELECT allocation_id, day_ns, records, gpu_ms, unsubsidised_gpu_ms, "
      "cost_fen, subsidy_fen FROM usage_days WHERE day_ns >= ",
      p(1), " AND day_ns < ", p(2), " ORDER BY allocation_id, day_ns");
  return out;
}

absl::Status CheckDroppable(const BatchEnd& end, bool found, int64_t later,
                            int64_t snapshots) {
  const std::string batch =
      absl::StrCat("the batch ending at command ", end.command, ", entry ",
                   end.entry, " and usage record ", end.usage);
  if (!found) {
    return absl::FailedPreconditionError(absl::StrCat(
        "archive: ", batch, " (with that entry hash) is not stored"));
  }
  if (later == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "archive: ", batch, " is the last one: the log's head stays stored"));
  }
  if (snapshots == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "archive: no snapshot is stored at or after command ", end.command,
        ": start-up would need what is dropped"));
  }
  return absl::OkStatus();
}

bool WantsDay(const UsageQuery& query, const UsageDay& day) {
  return !query.allocation_ids ||
         query.allocation_ids->contains(day.allocation_id);
}

}  // namespace internal
}  // namespace computevoucher::store
