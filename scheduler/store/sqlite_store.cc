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
#include "common/time_util.h"
#include "scheduler/store/internal/sqlite_snapshots.h"
#include "scheduler/store/internal/sqlite_util.h"
#include "scheduler/store/internal/store_util.h"

namespace computevoucher::store {
namespace {

using internal::ClampNanos;
using internal::Exec;
using internal::NanosOf;
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
      checkpointer_ = std::thread([this] { Checkpoint(); });
  }
  ~SqliteStore() override {
    stop_checkpoints_.Notify();
    if (checkpointer_.joinable()) checkpointer_.join();
    sqlite3_close(checkpoint_db_);
    {
      absl::MutexLock lock(&write_mu_);
      insert_command_.reset();
      insert_entry_.reset();
      insert_usage_.reset();
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
      insert_command_ = std::make_unique<Statement>();
      RETURN_IF_ERROR(insert_command_->Prepare(
          write_db_,
          "INSERT INTO commands (seq, time_ns, request_id, kind, body) VALUES "
          "(?,?,?,?,?)"));
      insert_entry_ = std::make_unique<Statement>();
      RETURN_IF_ERROR(insert_entry_->Prepare(
          write_db_,
          "INSERT INTO journal (seq, command_seq, kind, debit_account, "
          "credit_account, "
          "amount_fen, program_id, voucher_id, allocation_id, provider_id, "
          "usage_sequence, "
          "idempotency_key, time_ns, memo, hash) "
          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
      insert_usage_ = std::make_unique<Statement>();
      RETURN_IF_ERROR(insert_usage_->Prepare(
          write_db_,
          "INSERT INTO usage (end_ns, allocation_id, sequence, start_ns, "
          "gpu_ms, "
          "mean_utilization_bp, energy_mj, cost_fen, subsidy_fen, "
          "unsubsidised_gpu_ms, "
          "accepted_ns, evidence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"));
    }
    ASSIGN_OR_RETURN(const Head head, ReadHead());
    absl::MutexLock lock(&write_mu_);
    head_ = head;
    return absl::OkStatus();
  }

  absl::Status Append(const Batch& batch) override {
    absl::MutexLock lock(&write_mu_);
    RETURN_IF_ERROR(CheckWritableLocked());
    RETURN_IF_ERROR(internal::CheckContinues(head_, batch));
    RETURN_IF_ERROR(RunInTransaction(
        write_db_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
          return AppendLocked(batch);
        }));
    head_.command_sequence += static_cast<int64_t>(batch.commands.size());
    head_.journal_sequence += static_cast<int64_t>(batch.entries.size());
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
    Statement stmt;
    RETURN_IF_ERROR(stmt.Prepare(
        read_db_,
        "SELECT body FROM commands WHERE seq > ? ORDER BY seq LIMIT ?"));
    stmt.BindInt(1, after);
    stmt.BindInt(2, limit);
    std::vector<pb::Command> out;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      pb::Command& c = out.emplace_back();
      if (!c.ParseFromString(stmt.Column(0))) {
        return absl::DataLossError(
            absl::StrCat("commands: row after ", after, " does not parse"));
      }
    }
    if (rc != SQLITE_DONE) return SqliteError(read_db_, rc, "read commands");
    return out;
  }

  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    absl::MutexLock lock(&read_mu_);
    Statement stmt;
    RETURN_IF_ERROR(stmt.Prepare(
        read_db_,
        "SELECT seq, command_seq, kind, debit_account, credit_account, "
        "amount_fen, "
        "program_id, voucher_id, allocation_id, provider_id, usage_sequence, "
        "idempotency_key, time_ns, memo, hash "
        "FROM journal WHERE seq > ? ORDER BY seq LIMIT ?"));
    stmt.BindInt(1, after);
    stmt.BindInt(2, limit);
    std::string prev_hash(32, '\0');
    if (after > 0) {
      Statement previous;
      RETURN_IF_ERROR(
          previous.Prepare(read_db_, "SELECT hash FROM journal WHERE seq = ?"));
      previous.BindInt(1, after);
      if (sqlite3_step(previous.get()) == SQLITE_ROW)
        prev_hash = previous.Column(0);
    }
    std::vector<pb::JournalEntry> out;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      pb::JournalEntry& e = out.emplace_back();
      e.set_sequence(stmt.ColumnInt(0));
      e.set_command_sequence(stmt.ColumnInt(1));
      e.set_kind(static_cast<pb::EntryKind>(stmt.ColumnInt(2)));
      e.set_debit_account(stmt.Column(3));
      e.set_credit_account(stmt.Column(4));
      e.set_amount_fen(stmt.ColumnInt(5));
      e.set_program_id(stmt.Column(6));
      e.set_voucher_id(stmt.Column(7));
      e.set_allocation_id(stmt.Column(8));
      e.set_provider_id(stmt.Column(9));
      e.set_usage_sequence(stmt.ColumnInt(10));
      e.set_idempotency_key(stmt.Column(11));
      *e.mutable_time() = ToProto(absl::FromUnixNanos(stmt.ColumnInt(12)));
      e.set_memo(stmt.Column(13));
      e.set_prev_hash(prev_hash);
      e.set_hash(stmt.Column(14));
      prev_hash = e.hash();
    }
    if (rc != SQLITE_DONE) return SqliteError(read_db_, rc, "read journal");
    return out;
  }

  absl::StatusOr<Head> ReadHead() override {
    absl::MutexLock lock(&read_mu_);
    return ReadHeadLocked();
  }

  absl::StatusOr<Head> ReadHeadLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) {
    Head head;
    Statement stmt;
    RETURN_IF_ERROR(
        stmt.Prepare(read_db_,
                     "SELECT (SELECT IFNULL(MAX(seq), 0) FROM commands), "
                     "(SELECT IFNULL(MAX(seq), 0) FROM journal), "
                     "(SELECT hash FROM journal ORDER BY seq DESC LIMIT 1)"));
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
      return SqliteError(read_db_, SQLITE_ERROR, "read head");
    }
    head.command_sequence = stmt.ColumnInt(0);
    head.journal_sequence = stmt.ColumnInt(1);
    head.journal_hash = stmt.Column(2);
    return head;
  }

  absl::StatusOr<std::vector<UsageRow>> ReadUsage(
      const UsageQuery& q) override {
    absl::MutexLock lock(&read_mu_);
    std::vector<UsageRow> out;
    RETURN_IF_ERROR(ScanUsageLocked(q, [&](UsageRow row) {
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
    absl::Status s = ScanUsageLocked(q, [&fn](const UsageRow& row) {
      fn(row.usage);
      return true;
    });
    absl::StatusOr<Head> head = s.ok() ? ReadHeadLocked() : s;
    Exec(read_db_, "COMMIT").IgnoreError();
    return head;
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

  // The first position whose record was accepted at or after `t`, by
  // binary search: positions are contiguous from 1 and acceptance times never
  // decrease with them (records are appended in command order).
  absl::StatusOr<int64_t> FirstAcceptedAtOrAfter(int64_t t_ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) {
    Statement last;
    RETURN_IF_ERROR(
        last.Prepare(read_db_, "SELECT IFNULL(MAX(position), 0) FROM usage"));
    if (sqlite3_step(last.get()) != SQLITE_ROW)
      return SqliteError(read_db_, SQLITE_ERROR, "usage");
    int64_t lo = 1, hi = last.ColumnInt(0) + 1;
    Statement at;
    RETURN_IF_ERROR(at.Prepare(
        read_db_, "SELECT accepted_ns FROM usage WHERE position = ?"));
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      at.BindInt(1, mid);
      const int rc = sqlite3_step(at.get());
      const int64_t accepted = rc == SQLITE_ROW ? at.ColumnInt(0) : 0;
      sqlite3_reset(at.get());
      if (rc != SQLITE_ROW) return SqliteError(read_db_, rc, "usage position");
      if (accepted < t_ns) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  // Calls `fn` for each matching row in position order while it returns
  // true.
  absl::Status ScanUsageLocked(const UsageQuery& q,
                               const std::function<bool(UsageRow)>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) {
    int64_t after = q.after;
    if (q.period_start != absl::InfinitePast()) {
      // A record ends before it is accepted, give or take the clock skew
      // the caller tolerates, so none accepted earlier can end in the
      // period.
      ASSIGN_OR_RETURN(const int64_t first,
                       FirstAcceptedAtOrAfter(
                           ClampNanos(q.period_start - q.end_after_accept)));
      after = std::max(after, first - 1);
    }
    Statement stmt;
    RETURN_IF_ERROR(stmt.Prepare(
        read_db_,
        "SELECT position, allocation_id, sequence, start_ns, end_ns, gpu_ms, "
        "mean_utilization_bp, energy_mj, cost_fen, subsidy_fen, "
        "unsubsidised_gpu_ms, "
        "accepted_ns, evidence FROM usage WHERE position > ?1 AND "
        "end_ns >= ?2 AND "
        "end_ns < ?3 "
        "ORDER BY position"));
    stmt.BindInt(1, after);
    stmt.BindInt(2, ClampNanos(q.period_start));
    stmt.BindInt(3, ClampNanos(q.period_end));
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      UsageRow row;
      row.position = stmt.ColumnInt(0);
      pb::ChargedUsage& u = row.usage;
      pb::UsageRecord& r = *u.mutable_record();
      r.set_allocation_id(stmt.Column(1));
      if (q.allocation_ids && !q.allocation_ids->contains(r.allocation_id()))
        continue;
      r.set_sequence(stmt.ColumnInt(2));
      *r.mutable_start() = ToProto(absl::FromUnixNanos(stmt.ColumnInt(3)));
      *r.mutable_end() = ToProto(absl::FromUnixNanos(stmt.ColumnInt(4)));
      r.set_gpu_ms(stmt.ColumnInt(5));
      r.set_mean_utilization_bp(static_cast<int32_t>(stmt.ColumnInt(6)));
      r.set_energy_mj(stmt.ColumnInt(7));
      u.set_cost_fen(stmt.ColumnInt(8));
      u.set_subsidy_fen(stmt.ColumnInt(9));
      u.set_unsubsidised_gpu_ms(stmt.ColumnInt(10));
      *u.mutable_accepted_at() =
          ToProto(absl::FromUnixNanos(stmt.ColumnInt(11)));
      r.set_evidence(stmt.Column(12));
      if (!fn(std::move(row))) break;
    }
    return rc == SQLITE_DONE || rc == SQLITE_ROW
               ? absl::OkStatus()
               : SqliteError(read_db_, rc, "read usage");
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

  absl::Status AppendLocked(const Batch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    std::string body;
    for (const pb::Command& c : batch.commands) {
      Statement& s = *insert_command_;
      body.clear();
      c.SerializeToString(&body);
      const absl::StatusOr<absl::Time> time =
          FromProto("command.time", c.time());
      s.BindInt(1, c.sequence());
      s.BindInt(2, time.ok() ? absl::ToUnixNanos(*time) : 0);
      s.BindText(3, c.request_id());
      const auto* field = c.GetDescriptor()->FindFieldByNumber(c.body_case());
      static const std::string kNoBody;
      s.BindText(4, field != nullptr ? field->name() : kNoBody);
      s.BindBlob(5, body);
      RETURN_IF_ERROR(s.Run("insert command"));
    }
    for (const pb::JournalEntry& e : batch.entries) {
      Statement& s = *insert_entry_;
      s.BindInt(1, e.sequence());
      s.BindInt(2, e.command_sequence());
      s.BindInt(3, e.kind());
      s.BindText(4, e.debit_account());
      s.BindText(5, e.credit_account());
      s.BindInt(6, e.amount_fen());
      s.BindText(7, e.program_id());
      s.BindText(8, e.voucher_id());
      s.BindText(9, e.allocation_id());
      s.BindText(10, e.provider_id());
      s.BindInt(11, e.usage_sequence());
      s.BindText(12, e.idempotency_key());
      s.BindInt(13, NanosOf(e.time()));
      s.BindText(14, e.memo());
      s.BindBlob(15, e.hash());
      RETURN_IF_ERROR(s.Run("insert journal entry"));
    }
    for (const pb::ChargedUsage& u : batch.usage) {
      Statement& s = *insert_usage_;
      const pb::UsageRecord& r = u.record();
      s.BindInt(1, NanosOf(r.end()));
      s.BindText(2, r.allocation_id());
      s.BindInt(3, r.sequence());
      s.BindInt(4, NanosOf(r.start()));
      s.BindInt(5, r.gpu_ms());
      s.BindInt(6, r.mean_utilization_bp());
      s.BindInt(7, r.energy_mj());
      s.BindInt(8, u.cost_fen());
      s.BindInt(9, u.subsidy_fen());
      s.BindInt(10, u.unsubsidised_gpu_ms());
      s.BindInt(11, NanosOf(u.accepted_at()));
      s.BindText(12, r.evidence());
      RETURN_IF_ERROR(s.Run("insert usage"));
    }
    return absl::OkStatus();
  }

  const int lock_fd_;
  absl::Mutex write_mu_;
  sqlite3* const write_db_;  // null when read-only
  std::unique_ptr<Statement> insert_command_ ABSL_GUARDED_BY(write_mu_);
  std::unique_ptr<Statement> insert_entry_ ABSL_GUARDED_BY(write_mu_);
  std::unique_ptr<Statement> insert_usage_ ABSL_GUARDED_BY(write_mu_);
  Head head_ ABSL_GUARDED_BY(write_mu_);
  bool resigned_ ABSL_GUARDED_BY(write_mu_) = false;
  absl::Mutex read_mu_;
  sqlite3* const read_db_ ABSL_PT_GUARDED_BY(read_mu_);
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
      RETURN_IF_ERROR(Exec(db, kMigrations[v]));
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
