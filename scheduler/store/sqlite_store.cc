#include "scheduler/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "scheduler/store/internal/batch_rows.h"
#include "scheduler/store/internal/sqlite_rows.h"
#include "scheduler/store/internal/sqlite_snapshots.h"
#include "scheduler/store/internal/sqlite_util.h"
#include "scheduler/store/internal/store_util.h"

namespace computevoucher::store {
namespace {

using internal::BatchRow;
using internal::Exec;
using internal::InsertRow;
using internal::kInsertRow;
using internal::MakeRow;
using internal::ReadLastRow;
using internal::RowEnds;
using internal::RowReader;
using internal::RowsFrom;
using internal::RunInTransaction;
using internal::SqliteError;
using internal::Statement;

// Each migration takes the schema from version i to i + 1.
constexpr const char* kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE commands (
  seq        INTEGER PRIMARY KEY,  -- command sequence, from 1
  time_ns    INTEGER NOT NULL,     -- applied at, Unix nanoseconds (UTC)
  request_id TEXT    NOT NULL,
  kind       TEXT    NOT NULL,     -- body field name, for people reading it
  body       BLOB    NOT NULL      -- computevoucher.v1.Command
);
-- prev_hash is not stored: it is the previous row's hash.
CREATE TABLE journal (
  seq             INTEGER PRIMARY KEY,
  command_seq     INTEGER NOT NULL,
  kind            INTEGER NOT NULL,  -- computevoucher.v1.EntryKind
  debit_account   TEXT    NOT NULL,
  credit_account  TEXT    NOT NULL,
  amount_fen      INTEGER NOT NULL,
  program_id      TEXT    NOT NULL,
  voucher_id      TEXT    NOT NULL,
  allocation_id   TEXT    NOT NULL,
  provider_id     TEXT    NOT NULL,
  usage_sequence  INTEGER NOT NULL,
  idempotency_key TEXT    NOT NULL,
  time_ns         INTEGER NOT NULL,  -- Unix nanoseconds (UTC)
  memo            TEXT    NOT NULL,
  hash            BLOB    NOT NULL
);
)sql",
    // 1 -> 2: accepted usage records with what each was charged, for
    // usage listings, statements and settlement. Rows are only appended, in
    // the order they were accepted, with no index: every index tried (by
    // allocation, by enterprise, by time) cost a fifth to a half of ingest.
    // A period is found by a binary search on the acceptance time, which
    // grows with the position (see ScanUsageLocked). Who used a record
    // (enterprise, provider, program) follows from its allocation, which
    // the scheduler holds in memory. No (allocation, sequence) is stored
    // twice: the state machine accepts each once, and `verify` checks the
    // journal for double charges.
    R"sql(
CREATE TABLE usage (
  position            INTEGER PRIMARY KEY,
  allocation_id       TEXT    NOT NULL,
  sequence            INTEGER NOT NULL,
  start_ns            INTEGER NOT NULL,
  end_ns              INTEGER NOT NULL,
  gpu_ms              INTEGER NOT NULL,
  mean_utilization_bp INTEGER NOT NULL,
  energy_mj           INTEGER NOT NULL,
  cost_fen            INTEGER NOT NULL,
  subsidy_fen         INTEGER NOT NULL,
  unsubsidised_gpu_ms INTEGER NOT NULL,
  accepted_ns         INTEGER NOT NULL
);
)sql",
    // 2 -> 3: what the cluster's runtime said of the tenant's work in the
    // record's interval (UsageRecord.evidence, e.g. Slurm's steps).
    R"sql(
ALTER TABLE usage ADD COLUMN evidence TEXT NOT NULL DEFAULT '';
)sql",
    // 3 -> 4: the state at a position of the log (see
    // CommandLog::WriteSnapshot), so that a start replays only what follows.
    R"sql(
CREATE TABLE snapshots (
  position INTEGER PRIMARY KEY,  -- sequence of the last command included
  state    BLOB    NOT NULL,     -- core::StateMachine::Save
  digest   BLOB    NOT NULL      -- SHA-256 of state
);
)sql",
    // 4 -> 5: the table `batches` (internal::BatchesTableSql) replaces
    // commands, journal and usage, whose rows internal::ConvertToBatches
    // moves into it.
    nullptr,
    // 5 -> 6: retired allocations (internal::RetiredTableSql).
    nullptr,
    // 6 -> 7: archived history (internal::ArchiveTablesSql).
    nullptr,
    // 7 -> 8: retired vouchers (internal::RetiredVouchersTableSql).
    nullptr,
    // 8 -> 9: the audit log (internal::AuditTableSql).
    nullptr,
};
constexpr int kKnownVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kKnownVersion == kSqliteSchemaVersion);

absl::StatusOr<sqlite3*> OpenDb(const std::string& path, bool read_only) {
  sqlite3* db = nullptr;
  const int flags = read_only ? SQLITE_OPEN_READONLY
                              : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, rc, absl::StrCat("open ", path));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

absl::StatusOr<int> SchemaVersion(sqlite3* db) {
  Statement stmt;
  RETURN_IF_ERROR(stmt.Prepare(db, "PRAGMA user_version"));
  if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
    return SqliteError(db, SQLITE_ERROR, "read user_version");
  }
  return static_cast<int>(stmt.ColumnInt(0));
}

// WAL frames (pages) after which a fully copied WAL is rewound (about
// 16 MiB).
constexpr int kWalRestartFrames = 4096;
// WAL frames past which a restart is forced even if it has to wait for
// copying (about 256 MiB).
constexpr int kWalForceRestartFrames = 65536;

class SqliteStore final : public Store {
 public:
  SqliteStore(int lock_fd, sqlite3* write_db, sqlite3* read_db,
              sqlite3* checkpoint_db)
      : lock_fd_(lock_fd),
        write_db_(write_db),
        read_db_(read_db),
        checkpoint_db_(checkpoint_db) {
    // Checkpoints copy the WAL into the database file and sync it; done
    // inside a commit they would stall the writer, so a thread of their own
    // does them.
    if (checkpoint_db_ != nullptr)
      checkpointer_ =
          StartNamedThread("cv-checkpoint", [this] { Checkpoint(); });
  }
  ~SqliteStore() override {
    stop_checkpoints_.Notify();
    if (checkpointer_.joinable()) checkpointer_.join();
    sqlite3_close(checkpoint_db_);
    {
      absl::MutexLock lock(&write_mu_);
      insert_row_.reset();
      insert_retired_.reset();
      insert_retired_voucher_.reset();
      insert_audit_.reset();
      if (write_db_) sqlite3_close(write_db_);
    }
    {
      absl::MutexLock lock(&read_mu_);
      sqlite3_close(read_db_);
    }
    if (lock_fd_ >= 0) close(lock_fd_);
  }

  absl::Status Init() {
    if (write_db_ != nullptr) {
      absl::MutexLock lock(&write_mu_);
      insert_row_ = std::make_unique<Statement>();
      RETURN_IF_ERROR(insert_row_->Prepare(write_db_, kInsertRow));
      insert_retired_ = std::make_unique<Statement>();
      RETURN_IF_ERROR(insert_retired_->Prepare(
          write_db_,
          "INSERT INTO retired_allocations VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
          "?7)"));
      insert_retired_voucher_ = std::make_unique<Statement>();
      RETURN_IF_ERROR(insert_retired_voucher_->Prepare(
          write_db_,
          "INSERT INTO retired_vouchers VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
      insert_audit_ = std::make_unique<Statement>();
      RETURN_IF_ERROR(insert_audit_->Prepare(
          write_db_, "INSERT INTO audit_log VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
      ASSIGN_OR_RETURN(ends_, ReadLastRow(write_db_));
    }
    return absl::OkStatus();
  }

  absl::Status Append(const Batch& batch) override {
    absl::MutexLock lock(&write_mu_);
    RETURN_IF_ERROR(CheckWritableLocked());
    RETURN_IF_ERROR(internal::CheckContinues(ends_.head(), batch));
    const BatchRow row = MakeRow(ends_, batch);
    RETURN_IF_ERROR(RunInTransaction(
        write_db_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
          RETURN_IF_ERROR(InsertRow(*insert_row_, row));
          const internal::RetiredRows retired = internal::RetiredRowsOf(batch);
          RETURN_IF_ERROR(InsertRetired(*insert_retired_, retired.allocations));
          RETURN_IF_ERROR(
              InsertRetired(*insert_retired_voucher_, retired.vouchers));
          return InsertRetired(*insert_audit_, internal::AuditRowsOf(batch));
        }));
    ends_ = row.end;
    return absl::OkStatus();
  }

  absl::Status WriteSnapshot(const Snapshot& snapshot, int keep) override {
    absl::MutexLock lock(&write_mu_);
    RETURN_IF_ERROR(CheckWritableLocked());
    return internal::WriteSqliteSnapshot(write_db_, snapshot, keep);
  }

  absl::StatusOr<std::vector<int64_t>> ListSnapshots() override {
    absl::MutexLock lock(&read_mu_);
    return internal::ListSqliteSnapshots(read_db_);
  }

  absl::StatusOr<Snapshot> ReadSnapshot(int64_t position) override {
    absl::MutexLock lock(&read_mu_);
    return internal::ReadSqliteSnapshot(read_db_, position);
  }

  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t after,
                                                        int limit) override {
    absl::MutexLock lock(&read_mu_);
    return reader_.ReadCommands(after, limit);
  }

  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    absl::MutexLock lock(&read_mu_);
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

  // A commit here is one sync: smaller commits bound how long an Allocate
  // waits behind a flood of usage, for about a quarter more CPU per record
  // (docs/performance.md, "Smaller commits" and "The embedded store commits
  // 200 usage records at most").
  int64_t DefaultBatchRecords() const override { return 200; }

  absl::StatusOr<Head> ReadHead() override {
    absl::MutexLock lock(&read_mu_);
    ASSIGN_OR_RETURN(const RowEnds ends, ReadLastRow(read_db_));
    return ends.head();
  }

  absl::StatusOr<std::vector<UsageRow>> ReadUsage(
      const UsageQuery& q) override {
    absl::MutexLock lock(&read_mu_);
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
    // One read transaction: the rows and the head come from one snapshot.
    RETURN_IF_ERROR(Exec(read_db_, "BEGIN"));
    absl::Status s = reader_.ScanUsage(q, [&fn](const UsageRow& row) {
      fn(row.usage);
      return true;
    });
    absl::StatusOr<RowEnds> ends = s.ok() ? ReadLastRow(read_db_) : s;
    Exec(read_db_, "COMMIT").IgnoreError();
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
    Statement stmt;
    RETURN_IF_ERROR(stmt.Prepare(read_db_, archive_sql_.read_horizon.c_str()));
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) return SqliteError(read_db_, rc, "read the horizon");
    Horizon h;
    h.end = BatchEndAt(stmt);
    h.before = absl::FromUnixNanos(stmt.ColumnInt(5));
    h.manifest_sha256 = stmt.Column(6);
    return h;
  }

  absl::StatusOr<BatchEnd> BatchEndAtOrBefore(int64_t command) override {
    absl::MutexLock lock(&read_mu_);
    Statement stmt;
    RETURN_IF_ERROR(stmt.Prepare(read_db_, archive_sql_.batch_end.c_str()));
    stmt.BindInt(1, command);
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) {
      return absl::NotFoundError(absl::StrCat(
          "no stored batch ends at or before command ", command));
    }
    if (rc != SQLITE_ROW) return SqliteError(read_db_, rc, "read batches");
    return BatchEndAt(stmt);
  }

  absl::Status DropArchived(const Horizon& horizon,
                            const std::vector<UsageDay>& days) override {
    absl::MutexLock lock(&write_mu_);
    RETURN_IF_ERROR(CheckWritableLocked());
    return RunInTransaction(write_db_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                                           write_mu_) -> absl::Status {
      Statement find;
      RETURN_IF_ERROR(find.Prepare(write_db_, archive_sql_.find_batch.c_str()));
      find.BindInt(1, horizon.end.command);
      find.BindInt(2, horizon.end.entry);
      find.BindInt(3, horizon.end.usage);
      find.BindBlob(4, horizon.end.entry_hash);
      const int rc = sqlite3_step(find.get());
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return SqliteError(write_db_, rc, "find the batch to archive");
      const bool found = rc == SQLITE_ROW;
      RETURN_IF_ERROR(internal::CheckDroppable(
          horizon.end, found, found ? find.ColumnInt(1) : 0,
          found ? find.ColumnInt(2) : 0));
      const int64_t row_id = find.ColumnInt(0);
      for (const std::string* sql :
           {&archive_sql_.drop_batches, &archive_sql_.drop_snapshots}) {
        Statement drop;
        RETURN_IF_ERROR(drop.Prepare(write_db_, sql->c_str()));
        drop.BindInt(1, sql == &archive_sql_.drop_batches ? row_id
                                                           : horizon.end.command);
        RETURN_IF_ERROR(drop.Run("drop archived rows"));
      }
      RETURN_IF_ERROR(Exec(write_db_, archive_sql_.drop_horizon.c_str()));
      Statement insert;
      RETURN_IF_ERROR(
          insert.Prepare(write_db_, archive_sql_.insert_horizon.c_str()));
      insert.BindInt(1, row_id);
      insert.BindInt(2, horizon.end.command);
      insert.BindInt(3, horizon.end.entry);
      insert.BindInt(4, horizon.end.usage);
      insert.BindInt(5, horizon.end.accepted_ns);
      insert.BindBlob(6, horizon.end.entry_hash);
      insert.BindInt(7, internal::ClampNanos(horizon.before));
      insert.BindBlob(8, horizon.manifest_sha256);
      RETURN_IF_ERROR(insert.Run("store the horizon"));
      Statement add;
      RETURN_IF_ERROR(add.Prepare(write_db_, archive_sql_.add_day.c_str()));
      for (const UsageDay& d : days) {
        add.BindText(1, d.allocation_id);
        add.BindInt(2, internal::ClampNanos(d.day));
        add.BindInt(3, d.records);
        add.BindInt(4, d.gpu_ms);
        add.BindInt(5, d.unsubsidised_gpu_ms);
        add.BindInt(6, d.cost_fen);
        add.BindInt(7, d.subsidy_fen);
        RETURN_IF_ERROR(add.Run("store archived usage days"));
      }
      return absl::OkStatus();
    });
  }

  absl::Status ScanUsageDays(
      const UsageQuery& query,
      const std::function<void(const UsageDay&)>& fn) override {
    absl::MutexLock lock(&read_mu_);
    Statement stmt;
    RETURN_IF_ERROR(stmt.Prepare(read_db_, archive_sql_.scan_days.c_str()));
    stmt.BindInt(1, internal::ClampNanos(query.period_start));
    stmt.BindInt(2, internal::ClampNanos(query.period_end));
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      UsageDay d;
      d.allocation_id = stmt.Column(0);
      d.day = absl::FromUnixNanos(stmt.ColumnInt(1));
      d.records = stmt.ColumnInt(2);
      d.gpu_ms = stmt.ColumnInt(3);
      d.unsubsidised_gpu_ms = stmt.ColumnInt(4);
      d.cost_fen = stmt.ColumnInt(5);
      d.subsidy_fen = stmt.ColumnInt(6);
      if (internal::WantsDay(query, d)) fn(d);
    }
    return rc == SQLITE_DONE ? absl::OkStatus()
                             : SqliteError(read_db_, rc, "read usage days");
  }

  // One process opens the directory for writing (its LOCK file), so that
  // process always leads, for as long as it keeps the store open.
  absl::StatusOr<Leadership> Campaign(const Candidate& candidate,
                                      absl::Duration) override {
    absl::MutexLock lock(&write_mu_);
    if (write_db_ == nullptr) {
      return absl::FailedPreconditionError("store opened read-only");
    }
    resigned_ = false;
    Leadership won;
    won.leading = true;
    won.fencing_token = 1;
    won.leader_id = candidate.id;
    won.leader_address = candidate.address;
    won.valid_for = absl::InfiniteDuration();
    return won;
  }

  absl::Status Resign() override {
    absl::MutexLock lock(&write_mu_);
    resigned_ = true;
    return absl::OkStatus();
  }

 private:
  // Inserts `rows` with `insert`, prepared for their table.
  static absl::Status InsertRetired(
      Statement& insert, const std::vector<internal::RetiredRow>& rows) {
    for (const internal::RetiredRow& row : rows) {
      int column = 0;
      for (const std::string& text : row.text) insert.BindText(++column, text);
      insert.BindInt(++column, row.retired_ns);
      insert.BindBlob(++column, row.body);
      RETURN_IF_ERROR(insert.Run("insert a retired record"));
    }
    return absl::OkStatus();
  }

  // The retired Messages (allocations or vouchers) that `query` selects.
  template <typename Message, typename Selection>
  absl::StatusOr<std::vector<Message>> ReadRetiredRows(const Selection& query) {
    ASSIGN_OR_RETURN(const internal::RetiredSelect select,
                     internal::SelectRetired(query, '?'));
    absl::MutexLock lock(&read_mu_);
    Statement stmt;
    RETURN_IF_ERROR(stmt.Prepare(read_db_, select.sql.c_str()));
    for (size_t i = 0; i < select.params.size(); ++i)
      stmt.BindText(static_cast<int>(i + 1), select.params[i]);
    std::vector<Message> out;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      ASSIGN_OR_RETURN(out.emplace_back(),
                       internal::ParseRetired<Message>(stmt.Column(0)));
    }
    if (rc != SQLITE_DONE) return SqliteError(read_db_, rc, "read retired");
    return out;
  }

  // Append and WriteSnapshot are refused on a read-only store and after
  // Resign.
  absl::Status CheckWritableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    if (write_db_ == nullptr) {
      return absl::FailedPreconditionError("store opened read-only");
    }
    if (resigned_) {
      return absl::FailedPreconditionError(
          "store resigned: this scheduler is stopping and writes no more");
    }
    return absl::OkStatus();
  }

  // A BatchEnd from columns 0..4 of `stmt`.
  static BatchEnd BatchEndAt(Statement& stmt) {
    BatchEnd end;
    end.command = stmt.ColumnInt(0);
    end.entry = stmt.ColumnInt(1);
    end.usage = stmt.ColumnInt(2);
    end.accepted_ns = stmt.ColumnInt(3);
    end.entry_hash = stmt.Column(4);
    return end;
  }

  // RowReader's ScanRows.
  absl::Status ScanRowsLocked(const RowsFrom& from,
                              const std::function<bool(BatchRow)>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) {
    Statement stmt;
    // SQLite steps through the rows as they are asked for: no limit.
    RETURN_IF_ERROR(
        stmt.Prepare(read_db_, internal::ScanRowsSql(from, "?", -1).c_str()));
    stmt.BindInt(1, from.after);
    stmt.BindInt(2, from.accepted_from);
    stmt.BindInt(3, 0);
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      BatchRow row = internal::RowAt(stmt);
      if (!fn(std::move(row))) return absl::OkStatus();
    }
    return rc == SQLITE_DONE ? absl::OkStatus()
                             : SqliteError(read_db_, rc, "read batches");
  }

  void Checkpoint() {
    while (!stop_checkpoints_.WaitForNotificationWithTimeout(
        absl::Milliseconds(100))) {
      int log_frames = 0, copied = 0;
      if (sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr,
                                    SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                    &copied) != SQLITE_OK) {
        continue;  // busy or failing: the next round tries again
      }
      // A passive checkpoint never rewinds the WAL, which would only grow.
      // Rewind it once everything was copied (then the restart only waits
      // for the commit in progress), or, if copying cannot keep up, past a
      // hard bound.
      if ((log_frames > kWalRestartFrames && copied == log_frames) ||
          log_frames > kWalForceRestartFrames) {
        sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr,
                                  SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
      }
    }
  }

  const int lock_fd_;
  const internal::ArchiveSql archive_sql_ = internal::ArchiveStatements('?');
  absl::Mutex write_mu_;
  sqlite3* const write_db_;  // null when read-only
  std::unique_ptr<Statement> insert_row_ ABSL_GUARDED_BY(write_mu_);
  std::unique_ptr<Statement> insert_retired_ ABSL_GUARDED_BY(write_mu_);
  std::unique_ptr<Statement> insert_retired_voucher_ ABSL_GUARDED_BY(write_mu_);
  std::unique_ptr<Statement> insert_audit_ ABSL_GUARDED_BY(write_mu_);
  // Where the last stored row ends.
  RowEnds ends_ ABSL_GUARDED_BY(write_mu_);
  bool resigned_ ABSL_GUARDED_BY(write_mu_) = false;
  absl::Mutex read_mu_;
  sqlite3* const read_db_ ABSL_PT_GUARDED_BY(read_mu_);
  RowReader reader_ ABSL_GUARDED_BY(read_mu_){
      [this](const RowsFrom& from, const std::function<bool(BatchRow)>& fn)
          ABSL_NO_THREAD_SAFETY_ANALYSIS {  // called by reader_, under read_mu_
            return ScanRowsLocked(from, fn);
          }};
  sqlite3* const checkpoint_db_;  // used by the checkpointer thread only
  absl::Notification stop_checkpoints_;
  std::thread checkpointer_;
};

absl::Status Migrate(sqlite3* db) {
  ASSIGN_OR_RETURN(const int version, SchemaVersion(db));
  if (version > kKnownVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data directory has schema version ", version,
        ", this build knows up to ", kKnownVersion, "; upgrade the scheduler"));
  }
  for (int v = version; v < kKnownVersion; ++v) {
    RETURN_IF_ERROR(RunInTransaction(db, [db, v] {
      RETURN_IF_ERROR(
          kMigrations[v] != nullptr ? Exec(db, kMigrations[v])
          : v == 4                  ? internal::ConvertToBatches(db)
          : v == 5 ? Exec(db, internal::RetiredTableSql("TEXT", "BLOB").c_str())
          : v == 6
              ? Exec(db, internal::ArchiveTablesSql("TEXT", "BLOB").c_str())
          : v == 7
              ? Exec(db,
                     internal::RetiredVouchersTableSql("TEXT", "BLOB").c_str())
              : Exec(db, internal::AuditTableSql("TEXT", "BLOB").c_str()));
      return Exec(db, absl::StrCat("PRAGMA user_version = ", v + 1).c_str());
    }));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(
    const std::string& data_dir, OpenMode mode) {
  // Only one process can open the directory for writing: it always leads.
  if (mode == OpenMode::kReplica) mode = OpenMode::kReadWrite;
  const std::string path = absl::StrCat(data_dir, "/scheduler.db");
  int lock_fd = -1;
  auto close_lock = absl::MakeCleanup([&lock_fd] {
    if (lock_fd >= 0) close(lock_fd);
  });
  sqlite3* write_db = nullptr;
  if (mode == OpenMode::kReadWrite) {
    if (mkdir(data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", data_dir, ": ", std::strerror(errno)));
    }
    const std::string lock_path = absl::StrCat(data_dir, "/LOCK");
    lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(lock_path, ": ", std::strerror(errno)));
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", data_dir, " is in use by another scheduler (",
          lock_path, " is locked)"));
    }
    ASSIGN_OR_RETURN(write_db, OpenDb(path, /*read_only=*/false));
    absl::Status s = Exec(write_db, "PRAGMA journal_mode=WAL");
    if (s.ok()) s = Exec(write_db, "PRAGMA synchronous=FULL");
    if (s.ok()) s = Exec(write_db, "PRAGMA wal_autocheckpoint=0");
    if (s.ok()) s = Migrate(write_db);
    if (!s.ok()) {
      sqlite3_close(write_db);
      return s;
    }
  } else if (access(path.c_str(), R_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no scheduler database at ", path));
  }
  absl::StatusOr<sqlite3*> read_db = OpenDb(path, mode == OpenMode::kReadOnly);
  if (!read_db.ok()) {
    sqlite3_close(write_db);
    return read_db.status();
  }
  if (mode == OpenMode::kReadOnly) {
    absl::StatusOr<int> version = SchemaVersion(*read_db);
    if (!version.ok() || *version != kKnownVersion) {
      sqlite3_close(*read_db);
      return version.ok()
                 ? absl::FailedPreconditionError(absl::StrCat(
                       path, ": schema version ", *version, ", expected ",
                       kKnownVersion, " (start the scheduler once to migrate)"))
                 : version.status();
    }
  }
  sqlite3* checkpoint_db = nullptr;
  if (mode == OpenMode::kReadWrite) {
    absl::StatusOr<sqlite3*> db = OpenDb(path, /*read_only=*/false);
    if (!db.ok()) {
      sqlite3_close(write_db);
      sqlite3_close(*read_db);
      return db.status();
    }
    checkpoint_db = *db;
  }
  auto store = std::make_unique<SqliteStore>(std::exchange(lock_fd, -1),
                                             write_db, *read_db, checkpoint_db);
  RETURN_IF_ERROR(store->Init());
  return store;
}

}  // namespace computevoucher::store
