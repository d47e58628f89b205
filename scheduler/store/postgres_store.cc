#include "scheduler/store/postgres_store.h"

#include <endian.h>
#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "scheduler/store/internal/libpq.h"
#include "scheduler/store/internal/postgres_schema.h"
#include "scheduler/store/internal/store_util.h"

namespace computevoucher::store {
namespace {

using internal::BatchRow;
using internal::BytesAt;
using internal::CheckSchema;
using internal::Connect;
using internal::Connection;
using internal::CopyData;
using internal::CopyIn;
using internal::Exec;
using internal::InsertRowOn;
using internal::IntAt;
using internal::LeaseRow;
using internal::MakeRow;
using internal::Migrate;
using internal::Query;
using internal::ReadLastRowOn;
using internal::ReadLease;
using internal::Reconnect;
using internal::Result;
using internal::RowEnds;
using internal::RowReader;
using internal::RowsFrom;
using internal::SetUpWriterSession;

// Rows of `batches` fetched per query while reading (each holds a batch).
constexpr int kRowChunk = 16;

class PostgresStore final : public Store {
 public:
  PostgresStore(Connection write, Connection lease, Connection read)
      : lease_(std::move(lease)),
        write_(std::move(write)),
        read_(std::move(read)) {}

  ~PostgresStore() override {
    if (lease_ != nullptr) Resign().IgnoreError();
  }

  absl::Status Init() {
    absl::MutexLock lock(&write_mu_);
    if (write_ == nullptr) return absl::OkStatus();
    RETURN_IF_ERROR(SetUpWriterSession(write_.get(), session_timeout_));
    return ReadWriterHeadLocked();
  }

  absl::Status Append(const Batch& batch) override {
    absl::MutexLock lock(&write_mu_);
    RETURN_IF_ERROR(CheckWritableLocked());
    RETURN_IF_ERROR(internal::CheckContinues(ends_.head(), batch));
    const BatchRow row = MakeRow(ends_, batch);
    RETURN_IF_ERROR(LeaderTransactionLocked(
        "append", [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
          RETURN_IF_ERROR(InsertRowOn(write_.get(), row));
          const internal::RetiredRows retired = internal::RetiredRowsOf(batch);
          RETURN_IF_ERROR(
              InsertRetiredLocked("retired_allocations", retired.allocations));
          RETURN_IF_ERROR(
              InsertRetiredLocked("retired_vouchers", retired.vouchers));
          return InsertRetiredLocked("audit_log", internal::AuditRowsOf(batch));
        }));
    ends_ = row.end;
    return absl::OkStatus();
  }

  absl::Status WriteSnapshot(const Snapshot& snapshot, int keep) override {
    absl::MutexLock lock(&write_mu_);
    RETURN_IF_ERROR(CheckWritableLocked());
    return LeaderTransactionLocked(
        "write snapshot", [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
          return WriteSnapshotLocked(snapshot, keep);
        });
  }

  absl::StatusOr<std::vector<int64_t>> ListSnapshots() override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    ASSIGN_OR_RETURN(
        const Result result,
        Query(read_.get(),
              "SELECT position FROM snapshots ORDER BY position DESC", {},
              "list snapshots"));
    std::vector<int64_t> out(PQntuples(result.get()));
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = IntAt(result.get(), static_cast<int>(i), 0);
    }
    return out;
  }

  absl::StatusOr<Snapshot> ReadSnapshot(int64_t position) override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    ASSIGN_OR_RETURN(
        const Result result,
        Query(read_.get(),
              "SELECT state, digest FROM snapshots WHERE position = $1",
              {position}, "read snapshot"));
    if (PQntuples(result.get()) == 0) {
      return absl::NotFoundError(
          absl::StrCat("no snapshot at position ", position));
    }
    Snapshot snapshot;
    snapshot.position = position;
    snapshot.state = BytesAt(result.get(), 0, 0);
    snapshot.digest = BytesAt(result.get(), 0, 1);
    return snapshot;
  }

  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                        int limit) override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    return reader_.ReadCommands(after, limit);
  }

  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    return reader_.ReadJournal(after, limit);
  }

  void Recycle(std::vector<pb::JournalEntry> entries) override {
    absl::MutexLock lock(&read_mu_);
    reader_.Recycle(std::move(entries));
  }
  void DropReadCache() override {
    absl::MutexLock lock(&read_mu_);
    reader_.DropDecoded();
  }

  // A commit here is nine round trips, mostly a fixed cost: fewer records
  // each would take ingest toward issue 3's 50,000 records/s (59,011/s at
  // 500, docs/performance.md, "Smaller commits").
  int64_t DefaultBatchRecords() const override { return 500; }

  absl::StatusOr<Head> ReadHead() override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    ASSIGN_OR_RETURN(const RowEnds ends, ReadLastRowOn(read_.get()));
    return ends.head();
  }

  absl::StatusOr<std::vector<UsageRow>> ReadUsage(
      const UsageQuery& q) override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    std::vector<UsageRow> out;
    RETURN_IF_ERROR(reader_.ScanUsage(q, [&](UsageRow row) {
      out.push_back(std::move(row));
      return out.size() < static_cast<size_t>(q.limit);
    }));
    return out;
  }

  absl::StatusOr<Head> ScanUsage(
      const UsageQuery& q,
      const std::function<void(const pb::ChargedUsage&)>& fn) override {
    absl::MutexLock lock(&read_mu_);
    PGconn* conn = read_.get();
    RETURN_IF_ERROR(Reconnect(conn));
    // One snapshot for every chunk and the head.
    RETURN_IF_ERROR(Exec(
        conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "scan usage"));
    absl::Status s = reader_.ScanUsage(q, [&fn](const UsageRow& row) {
      fn(row.usage);
      return true;
    });
    absl::StatusOr<RowEnds> ends = s.ok() ? ReadLastRowOn(conn) : s;
    if (PQstatus(conn) == CONNECTION_OK) {
      Exec(conn, "COMMIT", "scan usage").IgnoreError();
    }
    if (!ends.ok()) return ends.status();
    return ends->head();
  }

  absl::StatusOr<std::vector<pb::Allocation>> ReadRetired(
      const RetiredQuery& query) override {
    return ReadRetiredRows<pb::Allocation>(query);
  }

  absl::StatusOr<std::vector<pb::Voucher>> ReadRetiredVouchers(
      const RetiredVoucherQuery& query) override {
    return ReadRetiredRows<pb::Voucher>(query);
  }

  absl::StatusOr<std::vector<pb::AuditEvent>> ReadAudit(
      const AuditQuery& query) override {
    return ReadRetiredRows<pb::AuditEvent>(query);
  }

  absl::StatusOr<std::optional<Horizon>> ReadHorizon() override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    ASSIGN_OR_RETURN(const Result result,
                     Query(read_.get(), archive_sql_.read_horizon.c_str(), {},
                           "read the horizon"));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    Horizon h;
    h.end = BatchEndAt(result.get());
    h.before = absl::FromUnixNanos(IntAt(result.get(), 0, 5));
    h.manifest_sha256 = BytesAt(result.get(), 0, 6);
    return h;
  }

  absl::StatusOr<BatchEnd> BatchEndAtOrBefore(int64_t command) override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    ASSIGN_OR_RETURN(const Result result,
                     Query(read_.get(), archive_sql_.batch_end.c_str(),
                           {command}, "read batches"));
    if (PQntuples(result.get()) == 0) {
      return absl::NotFoundError(absl::StrCat(
          "no stored batch ends at or before command ", command));
    }
    return BatchEndAt(result.get());
  }

  absl::Status DropArchived(const Horizon& horizon,
                            const std::vector<UsageDay>& days) override {
    absl::MutexLock lock(&write_mu_);
    RETURN_IF_ERROR(CheckWritableLocked());
    return LeaderTransactionLocked(
        "drop archived rows", [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
          PGconn* conn = write_.get();
          const BatchEnd& end = horizon.end;
          ASSIGN_OR_RETURN(
              const Result found,
              Query(conn, archive_sql_.find_batch.c_str(),
                    {end.command, end.entry, end.usage,
                     internal::Bytea{end.entry_hash}},
                    "find the batch to archive"));
          const bool stored = PQntuples(found.get()) == 1;
          RETURN_IF_ERROR(internal::CheckDroppable(
              end, stored, stored ? IntAt(found.get(), 0, 1) : 0,
              stored ? IntAt(found.get(), 0, 2) : 0));
          const int64_t row_id = IntAt(found.get(), 0, 0);
          RETURN_IF_ERROR(Query(conn, archive_sql_.drop_batches.c_str(),
                                {row_id}, "drop archived batches")
                              .status());
          RETURN_IF_ERROR(Query(conn, archive_sql_.drop_snapshots.c_str(),
                                {end.command}, "drop archived snapshots")
                              .status());
          RETURN_IF_ERROR(
              Exec(conn, archive_sql_.drop_horizon.c_str(), "drop horizon"));
          RETURN_IF_ERROR(
              Query(conn, archive_sql_.insert_horizon.c_str(),
                    {row_id, end.command, end.entry, end.usage,
                     end.accepted_ns, internal::Bytea{end.entry_hash},
                     internal::ClampNanos(horizon.before),
                     internal::Bytea{horizon.manifest_sha256}},
                    "store the horizon")
                  .status());
          for (const UsageDay& d : days) {
            RETURN_IF_ERROR(
                Query(conn, archive_sql_.add_day.c_str(),
                      {d.allocation_id, internal::ClampNanos(d.day), d.records,
                       d.gpu_ms, d.unsubsidised_gpu_ms, d.cost_fen,
                       d.subsidy_fen},
                      "store archived usage days")
                    .status());
          }
          return absl::OkStatus();
        });
  }

  absl::Status ScanUsageDays(
      const UsageQuery& query,
      const std::function<void(const UsageDay&)>& fn) override {
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    ASSIGN_OR_RETURN(const Result result,
                     Query(read_.get(), archive_sql_.scan_days.c_str(),
                           {internal::ClampNanos(query.period_start),
                            internal::ClampNanos(query.period_end)},
                           "read usage days"));
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      UsageDay d;
      d.allocation_id = BytesAt(result.get(), i, 0);
      d.day = absl::FromUnixNanos(IntAt(result.get(), i, 1));
      d.records = IntAt(result.get(), i, 2);
      d.gpu_ms = IntAt(result.get(), i, 3);
      d.unsubsidised_gpu_ms = IntAt(result.get(), i, 4);
      d.cost_fen = IntAt(result.get(), i, 5);
      d.subsidy_fen = IntAt(result.get(), i, 6);
      if (internal::WantsDay(query, d)) fn(d);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Leadership> Campaign(const Candidate& candidate,
                                      absl::Duration lease) override {
    absl::MutexLock lock(&lease_mu_);
    if (lease_ == nullptr) {
      return absl::FailedPreconditionError("store opened read-only");
    }
    PGconn* conn = lease_.get();
    RETURN_IF_ERROR(Reconnect(conn));
    int64_t held;
    {
      absl::MutexLock write_lock(&write_mu_);
      held = token_;
    }
    // Waiting for a row lock is bounded: a former leader stuck inside an
    // append must not stall this replica's loop (the server ends that
    // transaction after the lease; see SetUpWriterSession).
    const int64_t wait_ms =
        std::clamp<int64_t>(absl::ToInt64Milliseconds(lease / 2), 100, 5000);
    // Nor may this replica, paused inside a campaign, stall the others.
    const std::string begin =
        absl::StrCat("SET idle_in_transaction_session_timeout = ", wait_ms,
                     "; BEGIN; SET LOCAL lock_timeout = ", wait_ms,
                     "; SET LOCAL statement_timeout = ", wait_ms);
    RETURN_IF_ERROR(Exec(conn, begin.c_str(), "campaign"));
    // Renew our own lease, or take an expired one with the next token.
    absl::StatusOr<Result> taken = Query(
        conn,
        "UPDATE leader_lease SET fencing_token = CASE WHEN holder = $1 AND "
        "fencing_token = $3 THEN fencing_token ELSE fencing_token + 1 END, "
        "holder = $1, address = $2, expires_at = clock_timestamp() + "
        "make_interval(secs => $4::float8 / 1000000) WHERE (holder = $1 AND "
        "fencing_token = $3) OR expires_at <= clock_timestamp() "
        "RETURNING fencing_token",
        {candidate.id, candidate.address, held,
         absl::ToInt64Microseconds(lease)},
        "campaign");
    const bool won = taken.ok() && PQntuples(taken->get()) == 1;
    // Who holds it, when not us.
    absl::StatusOr<LeaseRow> row = LeaseRow();
    if (!taken.ok()) {
      row = taken.status();
    } else if (!won) {
      row = ReadLease(conn, "");
    }
    absl::Status status = row.status();
    if (status.ok()) status = Exec(conn, "COMMIT", "campaign");
    if (!status.ok()) {
      if (PQstatus(conn) == CONNECTION_OK) {
        Exec(conn, "ROLLBACK", "campaign").IgnoreError();
      }
      // A lock timeout means an append holds the row: this round decides
      // nothing, whoever leads.
      if (IsLockTimeout(status)) {
        return absl::UnavailableError(
            absl::StrCat("campaign: the lease is busy: ", status.message()));
      }
      return status;
    }
    Leadership out;
    absl::MutexLock write_lock(&write_mu_);
    if (!won) {
      out.fencing_token = row->fencing_token;
      if (!row->expired) {
        out.leader_id = row->holder;
        out.leader_address = row->address;
      }
      token_ = 0;
      return out;
    }
    out.leading = true;
    out.fencing_token = IntAt(taken->get(), 0, 0);
    out.leader_id = candidate.id;
    out.leader_address = candidate.address;
    out.valid_for = lease;
    if (out.fencing_token != token_) {
      // A new term: the former leader may have moved the head, and can no
      // longer move it.
      session_timeout_ = lease;
      token_ = 0;
      RETURN_IF_ERROR(Reconnect(write_.get()));
      RETURN_IF_ERROR(SetUpWriterSession(write_.get(), session_timeout_));
      RETURN_IF_ERROR(ReadWriterHeadLocked());
      token_ = out.fencing_token;
    }
    return out;
  }

  absl::Status Resign() override {
    absl::MutexLock lock(&lease_mu_);
    if (lease_ == nullptr) return absl::OkStatus();
    int64_t held;
    {
      absl::MutexLock write_lock(&write_mu_);
      held = std::exchange(token_, 0);
    }
    if (held == 0) return absl::OkStatus();
    RETURN_IF_ERROR(Reconnect(lease_.get()));
    return Query(lease_.get(),
                 "UPDATE leader_lease SET expires_at = '-infinity' WHERE "
                 "fencing_token = $1",
                 {held}, "resign")
        .status();
  }

 private:
  static bool IsLockTimeout(const absl::Status& status) {
    // SQLSTATE 55P03 lock_not_available and 57014 query_canceled (the
    // statement timeout) are both reported with their text.
    return absl::StrContains(status.message(), "lock timeout") ||
           absl::StrContains(status.message(), "statement timeout");
  }

  // Writes are refused on a read-only store and by a replica that does not
  // hold the lease; after a broken connection, reads the head again.
  absl::Status CheckWritableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    if (write_ == nullptr) {
      return absl::FailedPreconditionError("store opened read-only");
    }
    if (token_ == 0) {
      return absl::FailedPreconditionError(
          "not the leader: this scheduler replica does not hold the lease");
    }
    return ReconnectWriterLocked();
  }

  // A BatchEnd from columns 0..4 of the first row of `result`.
  static BatchEnd BatchEndAt(const PGresult* result) {
    BatchEnd end;
    end.command = IntAt(result, 0, 0);
    end.entry = IntAt(result, 0, 1);
    end.usage = IntAt(result, 0, 2);
    end.accepted_ns = IntAt(result, 0, 3);
    end.entry_hash = BytesAt(result, 0, 4);
    return end;
  }

  // Runs `fn` in one transaction on the writer's connection, after checking
  // there that the lease is still ours; on error nothing `fn` did is stored.
  absl::Status LeaderTransactionLocked(absl::string_view what,
                                       const std::function<absl::Status()>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    PGconn* conn = write_.get();
    RETURN_IF_ERROR(Exec(conn, "BEGIN", what));
    absl::Status status = CheckLeaseLocked();
    if (status.ok()) status = fn();
    if (status.ok()) status = Exec(conn, "COMMIT", "commit");
    if (!status.ok() && PQstatus(conn) == CONNECTION_OK) {
      Exec(conn, "ROLLBACK", "rollback").IgnoreError();
    }
    return status;
  }

  // Inside a transaction: the snapshot row, checked against the stored
  // commands and snapshots, and the pruning of the oldest.
  // Inside an append's transaction.
  // The retired Messages (allocations or vouchers) that `query` selects.
  template <typename Message, typename Selection>
  absl::StatusOr<std::vector<Message>> ReadRetiredRows(const Selection& query) {
    ASSIGN_OR_RETURN(const internal::RetiredSelect select,
                     internal::SelectRetired(query, '$'));
    absl::MutexLock lock(&read_mu_);
    RETURN_IF_ERROR(Reconnect(read_.get()));
    ASSIGN_OR_RETURN(const Result result,
                     Query(read_.get(), select.sql.c_str(),
                           std::vector<internal::Param>(select.params.begin(),
                                                        select.params.end()),
                           "read retired"));
    std::vector<Message> out;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      ASSIGN_OR_RETURN(out.emplace_back(), internal::ParseRetired<Message>(
                                               BytesAt(result.get(), i, 0)));
    }
    return out;
  }

  // Inside an append's transaction: `rows` into `table`.
  absl::Status InsertRetiredLocked(
      const char* table, const std::vector<internal::RetiredRow>& rows)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    if (rows.empty()) return absl::OkStatus();
    CopyData data(static_cast<int16_t>(rows.front().text.size() + 2));
    for (const internal::RetiredRow& row : rows) {
      data.StartRow();
      for (const std::string& text : row.text) data.Bytes(text);
      data.Int(row.retired_ns);
      data.Bytes(row.body);
    }
    return CopyIn(
        write_.get(),
        absl::StrCat("COPY ", table, " FROM STDIN (FORMAT binary)").c_str(),
        data, absl::StrCat("insert into ", table));
  }

  absl::Status WriteSnapshotLocked(const Snapshot& snapshot, int keep)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    PGconn* conn = write_.get();
    ASSIGN_OR_RETURN(
        const Result bounds,
        Query(conn,
              "SELECT (SELECT COALESCE(MAX(command_end), 0) FROM batches), "
              "(SELECT COALESCE(MAX(position), 0) FROM snapshots)",
              {}, "read snapshot bounds"));
    RETURN_IF_ERROR(internal::CheckSnapshot(snapshot.position, keep,
                                            IntAt(bounds.get(), 0, 0),
                                            IntAt(bounds.get(), 0, 1)));
    CopyData row(3);
    row.StartRow();
    row.Int(snapshot.position);
    row.Bytes(snapshot.state);
    row.Bytes(snapshot.digest);
    RETURN_IF_ERROR(CopyIn(conn,
                           "COPY snapshots (position, state, digest) FROM "
                           "STDIN (FORMAT binary)",
                           row, "insert snapshot"));
    return Query(conn,
                 "DELETE FROM snapshots WHERE position NOT IN (SELECT "
                 "position FROM snapshots ORDER BY position DESC LIMIT $1)",
                 {int64_t{keep}}, "drop old snapshots")
        .status();
  }

  // Inside an append's transaction: the lease is still ours. The shared row
  // lock keeps it ours until the commit, since a takeover's UPDATE waits
  // for it; a takeover that came first has changed the token.
  absl::Status CheckLeaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    ASSIGN_OR_RETURN(const LeaseRow row, ReadLease(write_.get(), "FOR SHARE"));
    if (row.fencing_token == token_) return absl::OkStatus();
    const int64_t mine = std::exchange(token_, 0);
    return absl::FailedPreconditionError(
        absl::StrCat("fenced: this scheduler replica's lease (token ", mine,
                     ") was taken over by ", row.holder, " at ", row.address,
                     " (token ", row.fencing_token, "); it writes no more"));
  }

  // RowReader's ScanRows, reading kRowChunk rows at a time.
  absl::Status ScanRowsLocked(const RowsFrom& from,
                              const std::function<bool(BatchRow)>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) {
    const std::string sql = internal::ScanRowsSql(from, "$", kRowChunk);
    int64_t last = 0;
    while (true) {
      ASSIGN_OR_RETURN(const Result result,
                       Query(read_.get(), sql.c_str(),
                             {from.after, from.accepted_from, last},
                             "read batches"));
      const PGresult* r = result.get();
      const int rows = PQntuples(r);
      for (int i = 0; i < rows; ++i) {
        BatchRow row = internal::RowAt(r, i);
        last = row.end.id;
        if (!fn(std::move(row))) return absl::OkStatus();
      }
      if (rows < kRowChunk) return absl::OkStatus();
    }
  }

  // The head as stored, read by the writer's own connection.
  absl::Status ReadWriterHeadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    ASSIGN_OR_RETURN(ends_, ReadLastRowOn(write_.get()));
    return absl::OkStatus();
  }

  // After a broken connection the last commit may or may not have
  // happened: read the head from the database again.
  absl::Status ReconnectWriterLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    if (PQstatus(write_.get()) == CONNECTION_OK) return absl::OkStatus();
    RETURN_IF_ERROR(Reconnect(write_.get()));
    RETURN_IF_ERROR(SetUpWriterSession(write_.get(), session_timeout_));
    return ReadWriterHeadLocked();
  }

  // Lock order: lease_mu_, then write_mu_.
  const internal::ArchiveSql archive_sql_ = internal::ArchiveStatements('$');
  absl::Mutex lease_mu_;
  Connection lease_ ABSL_GUARDED_BY(lease_mu_);  // null when read-only
  absl::Mutex write_mu_;
  Connection write_ ABSL_GUARDED_BY(write_mu_);  // null when read-only
  // The fencing token of the lease this store holds; 0 when it holds none.
  int64_t token_ ABSL_GUARDED_BY(write_mu_) = 0;
  absl::Duration session_timeout_ ABSL_GUARDED_BY(write_mu_) = kDefaultLease;
  // Where the last stored row ends.
  RowEnds ends_ ABSL_GUARDED_BY(write_mu_);
  absl::Mutex read_mu_;
  Connection read_ ABSL_GUARDED_BY(read_mu_);
  RowReader reader_ ABSL_GUARDED_BY(read_mu_){
      [this](const RowsFrom& from, const std::function<bool(BatchRow)>& fn)
          ABSL_NO_THREAD_SAFETY_ANALYSIS {  // called by reader_, under read_mu_
            return ScanRowsLocked(from, fn);
          }};
};

}  // namespace

std::string DescribePostgresUrl(const std::string& url) {
  PQconninfoOption* options = PQconninfoParse(url.c_str(), nullptr);
  if (options == nullptr) return "(unparsable URL)";
  std::string user, host, port, dbname;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    const std::string value = o->val != nullptr ? o->val : "";
    const absl::string_view key = o->keyword;
    if (key == "user") user = value;
    if (key == "host" || (key == "hostaddr" && host.empty())) host = value;
    if (key == "port") port = value;
    if (key == "dbname") dbname = value;
  }
  PQconninfoFree(options);
  return absl::StrCat(user.empty() ? "" : user + "@",
                      host.empty() ? "localhost" : host,
                      port.empty() ? "" : ":" + port, "/", dbname);
}

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                         OpenMode mode) {
  ASSIGN_OR_RETURN(Connection read, Connect(url));
  Connection write;
  Connection lease;
  if (mode == OpenMode::kReadOnly) {
    RETURN_IF_ERROR(CheckSchema(read.get()));
  } else {
    ASSIGN_OR_RETURN(write, Connect(url));
    ASSIGN_OR_RETURN(lease, Connect(url));
    RETURN_IF_ERROR(Migrate(write.get()));
  }
  auto store = std::make_unique<PostgresStore>(
      std::move(write), std::move(lease), std::move(read));
  RETURN_IF_ERROR(store->Init());
  if (mode == OpenMode::kReadWrite) {
    ASSIGN_OR_RETURN(const Leadership won,
                     store->Campaign({NewCandidateId(), ""}, kDefaultLease));
    if (!won.leading) {
      return absl::FailedPreconditionError(absl::StrCat(
          "postgres ", DescribePostgresUrl(url),
          ": database is in use by another scheduler (", won.leader_id,
          won.leader_address.empty() ? "" : " at " + won.leader_address,
          " holds the lease)"));
    }
  }
  return store;
}

}  // namespace computevoucher::store
